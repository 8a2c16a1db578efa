/* migration_tools install script: lint */

-- lint() and script_statements() deliberately run with the caller's
-- search_path: they resolve the script's table and function names as the
-- script itself would.  They only read the catalogs and never run the script.

CREATE FUNCTION migration_tools.lint(
    sql text, in_transaction boolean DEFAULT false,
    OUT statement integer, OUT rule text, OUT severity text,
    OUT message text, OUT hint text, OUT relation text, OUT lock_mode text,
    OUT rewrites boolean, OUT estimated_rows bigint, OUT location integer)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lint'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.lint(text, boolean) IS
'Check a migration script for statements that take long locks or rewrite tables, without running it';
GRANT EXECUTE ON FUNCTION migration_tools.lint(text, boolean) TO PUBLIC;

CREATE FUNCTION migration_tools.script_statements(
    sql text,
    OUT statement integer, OUT location integer, OUT length integer,
    OUT command_tag text, OUT is_ddl boolean, OUT needs_top_level boolean,
    OUT is_transaction_control boolean, OUT locks text[], OUT statement_sql text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_script_statements'
LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION migration_tools.script_statements(text) IS
'Split a script into statements with the server''s parser and tell the locks each would take, without running it';
GRANT EXECUTE ON FUNCTION migration_tools.script_statements(text) TO PUBLIC;

CREATE FUNCTION migration_tools.lint_rules(
    OUT rule text, OUT severity text, OUT summary text)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mt_lint_rules'
LANGUAGE C IMMUTABLE;
COMMENT ON FUNCTION migration_tools.lint_rules() IS
'The rules of lint(): id, severity and what each catches (the README has the safe recipes)';
GRANT EXECUTE ON FUNCTION migration_tools.lint_rules() TO PUBLIC;
