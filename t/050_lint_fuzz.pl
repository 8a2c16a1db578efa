# Fuzz the linter: thousands of mutated migration statements, random text,
# deeply nested expressions and a 1 MB script go through lint() and
# script_statements() in one session, then the inputs that parse run under
# the guard.  Last, lint() must not wait for locks on the tables it reads
# about.  Each input may fail with an ERROR
# (a syntax error, a stack depth error) but must never crash the server:
# afterwards the postmaster is the same process and no backend died.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $seed = $ENV{MT_FUZZ_SEED} // 20261125;
srand($seed);
note "fuzz seed $seed";

my $node = PostgreSQL::Test::Cluster->new('lint_fuzz');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
max_prepared_transactions = 2
});
$node->start;

sub postmaster_pid
{
	open(my $fh, '<', $node->data_dir . '/postmaster.pid') or die "postmaster.pid: $!";
	my $pid = <$fh>;
	close($fh);
	chomp $pid;
	return $pid;
}
my $pm_pid = postmaster_pid();

# Tables the corpus names, with rows and statistics, so that the
# catalog-aware paths (row estimates, column types, constraints) run.
$node->safe_psql('postgres', q{
CREATE EXTENSION migration_tools;
CREATE TABLE accounts (id bigint PRIMARY KEY, email varchar(100), status int,
                       balance numeric(12,2), created timestamp, note text);
INSERT INTO accounts SELECT g, 'u' || g, g % 5, g, now(), NULL FROM generate_series(1, 20000) g;
CREATE TABLE orders (id int PRIMARY KEY, account_id bigint, total numeric, at date);
INSERT INTO orders SELECT g, g % 20000 + 1, g, '2024-01-01' FROM generate_series(1, 5000) g;
CREATE INDEX orders_at ON orders (at);
CREATE MATERIALIZED VIEW totals AS SELECT account_id, sum(total) FROM orders GROUP BY 1;
CREATE TABLE events (id bigint, at date) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE DOMAIN positive AS int;
ANALYZE;
CREATE TABLE fuzz_inputs (n serial PRIMARY KEY, sql text NOT NULL);
CREATE TABLE fuzz_parsed (n int PRIMARY KEY);
});

my @corpus = (
	q{CREATE INDEX accounts_email ON accounts (email)},
	q{CREATE INDEX CONCURRENTLY IF NOT EXISTS accounts_status ON accounts USING btree (status) WHERE note IS NULL},
	q{CREATE UNIQUE INDEX CONCURRENTLY accounts_email_key ON accounts (lower(email)) INCLUDE (status)},
	q{DROP INDEX orders_at},
	q{DROP INDEX CONCURRENTLY IF EXISTS orders_at},
	q{ALTER TABLE accounts ADD COLUMN flag boolean NOT NULL},
	q{ALTER TABLE accounts ADD COLUMN token uuid DEFAULT gen_random_uuid()},
	q{ALTER TABLE accounts ADD COLUMN seen timestamptz DEFAULT now() NOT NULL},
	q{ALTER TABLE orders ADD CONSTRAINT orders_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE},
	q{ALTER TABLE orders ADD CONSTRAINT orders_account_fk FOREIGN KEY (account_id) REFERENCES accounts (id) NOT VALID},
	q{ALTER TABLE orders VALIDATE CONSTRAINT orders_account_fk},
	q{ALTER TABLE accounts ADD CONSTRAINT status_ok CHECK (status BETWEEN 0 AND 9)},
	q{ALTER TABLE accounts ADD CONSTRAINT email_nn CHECK (email IS NOT NULL) NOT VALID},
	q{ALTER TABLE accounts ALTER COLUMN email SET NOT NULL, ALTER COLUMN status DROP NOT NULL},
	q{ALTER TABLE accounts ALTER COLUMN email TYPE varchar(200)},
	q{ALTER TABLE accounts ALTER COLUMN email TYPE text COLLATE "C"},
	q{ALTER TABLE orders ALTER COLUMN id TYPE bigint},
	q{ALTER TABLE accounts ALTER COLUMN balance TYPE numeric(14,2) USING balance::numeric(14,2)},
	q{ALTER TABLE accounts RENAME COLUMN note TO remark},
	q{ALTER TABLE orders RENAME TO purchases},
	q{ALTER TABLE accounts DROP COLUMN IF EXISTS note CASCADE},
	q{DROP TABLE IF EXISTS orders, accounts CASCADE},
	q{ALTER TABLE accounts ADD CONSTRAINT accounts_email_uq UNIQUE (email)},
	q{ALTER TABLE accounts ADD CONSTRAINT accounts_email_uq UNIQUE USING INDEX accounts_email_key},
	q{ALTER TABLE orders ADD PRIMARY KEY (id, account_id)},
	q{VACUUM (FULL, ANALYZE, VERBOSE) accounts},
	q{CLUSTER accounts USING accounts_pkey},
	q{REFRESH MATERIALIZED VIEW totals},
	q{LOCK TABLE accounts, orders IN SHARE ROW EXCLUSIVE MODE NOWAIT},
	q{UPDATE accounts SET status = 1 WHERE status = 2 AND (email LIKE 'a%' OR id IN (1, 2, 3))},
	q{UPDATE accounts a SET note = o.total::text FROM orders o WHERE o.account_id = a.id},
	q{DELETE FROM orders WHERE at < '2024-06-01' OR total IS NULL},
	q{DELETE FROM accounts WHERE NOT (id BETWEEN 10 AND 20) AND status IS DISTINCT FROM 3},
	q{TRUNCATE orders RESTART IDENTITY CASCADE},
	q{BEGIN; CREATE INDEX CONCURRENTLY ON orders (total); COMMIT},
	q{REINDEX (VERBOSE) TABLE CONCURRENTLY accounts},
	q{REINDEX INDEX orders_at},
	q{ALTER TABLE events ATTACH PARTITION events_2025 FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')},
	q{ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY},
	q{ALTER TABLE accounts ADD COLUMN doubled numeric GENERATED ALWAYS AS (balance * 2) STORED},
	q{ALTER TABLE orders ADD CONSTRAINT no_overlap EXCLUDE USING gist (at WITH =)},
	q{ALTER TABLE accounts ADD COLUMN seq bigserial, ADD COLUMN ident int GENERATED BY DEFAULT AS IDENTITY (START 10)},
	q{ALTER DOMAIN positive ADD CONSTRAINT positive_check CHECK (VALUE > 0)},
	q{CREATE TABLE t (id serial PRIMARY KEY, doc json, name varchar(20), at timestamp, ref_id int REFERENCES accounts)},
	q{SET lock_timeout = '2s'; SET LOCAL statement_timeout TO DEFAULT},
	q{SET search_path = pg_temp, "$user", public; ALTER TABLE accounts ADD COLUMN x int; RESET search_path},
	q{SET LOCAL search_path TO DEFAULT; SELECT set_config('lock_timeout', '0', true)},
	q{CREATE TABLE IF NOT EXISTS t2 AS SELECT * FROM accounts WITH NO DATA},
	q{INSERT INTO orders SELECT g, 1, 2, now() FROM generate_series(1, 10) g ON CONFLICT (id) DO UPDATE SET total = excluded.total},
	q{MERGE INTO accounts a USING orders o ON a.id = o.account_id WHEN MATCHED THEN UPDATE SET status = 0},
	q{WITH x AS (SELECT id FROM accounts FOR UPDATE SKIP LOCKED) DELETE FROM accounts USING x WHERE accounts.id = x.id},
	q{DO $$ BEGIN PERFORM 1; END $$},
	q{DO $$ DECLARE r record; BEGIN FOR r IN SELECT id FROM accounts LIMIT 5 LOOP UPDATE accounts SET status = 1 WHERE id = r.id; END LOOP; END $$},
	q{DO $$ BEGIN IF (SELECT count(*) FROM orders) > 0 THEN EXECUTE 'CREATE INDEX ON orders (total)'; ELSE ALTER TABLE orders ADD COLUMN x int NOT NULL; END IF; END $$},
	q{DO $$ DECLARE t text := 'orders'; BEGIN EXECUTE format('ALTER TABLE %I ADD COLUMN y int', t); RETURN; EXCEPTION WHEN others THEN RAISE NOTICE '%', SQLERRM; END $$},
	q{DO $d$ <<blk>> DECLARE n int := 0; BEGIN WHILE n < 3 LOOP n := n + 1; END LOOP; CASE n WHEN 3 THEN DELETE FROM orders WHERE id = blk.n; ELSE NULL; END CASE; END $d$},
	q{DO LANGUAGE plpgsql 'BEGIN EXECUTE ''VACUUM FULL orders''; COMMIT; END'},
	q{CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $f$ SELECT 1 $f$},
	q{COMMENT ON TABLE accounts IS 'x'; GRANT SELECT ON accounts TO PUBLIC},
	q{ALTER TABLE ONLY accounts ALTER status SET DEFAULT 0, ALTER status SET STATISTICS 500, SET (fillfactor = 90)},
	q{ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh' BEFORE 'sad'},
	q{EXPLAIN (ANALYZE false) UPDATE accounts SET status = 2},
	q{COPY accounts (id) FROM STDIN},
	q{CREATE TRIGGER trg BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION f()},
	q{CREATE DATABASE x; ALTER SYSTEM SET work_mem = '4MB'; VACUUM; CLUSTER; DISCARD ALL},
	q{SELECT migration_tools.lint('CREATE INDEX ON accounts (id)')},
);

my @tokens = ('(', ')', ',', ';', "'", '"', '$$', '$1', ' NOT ', ' NULL ', ' CONCURRENTLY ',
	' ALTER ', ' TABLE ', '--', '/*', '*/', ' CHECK (', ' DEFAULT ', ' USING ', '::',
	'[', ']', ' ', '\\', "E'", 'U&"', ' ONLY ', '.', '*', ' ADD ', ' COLUMN ', ' TYPE ',
	' WHERE ', ' AND ', ' OR ', ' 1 ', '-1', '1e999', ' CASCADE ', ' VALID ', '=', '<>');

sub random_char
{
	my $r = rand();
	return chr(32 + int(rand(95))) if $r < 0.85;
	return chr(1 + int(rand(31))) if $r < 0.93;
	return chr(0x80 + int(rand(0x2000)));
}

sub mutate
{
	my ($s) = @_;
	my $ops = 1 + int(rand(5));
	for (1 .. $ops)
	{
		my $op = int(rand(5));
		my $pos = int(rand(length($s) + 1));
		if ($op == 0)
		{
			substr($s, $pos, 1 + int(rand(6)), '') if $pos < length($s);
		}
		elsif ($op == 1)
		{
			substr($s, $pos, 0, $tokens[ int(rand(@tokens)) ]);
		}
		elsif ($op == 2)
		{
			substr($s, $pos, 1, random_char()) if $pos < length($s);
		}
		elsif ($op == 3)
		{
			my $len = int(rand(20));
			substr($s, $pos, 0, substr($s, int(rand(length($s))), $len));
		}
		else
		{
			$s .= '; ' . $corpus[ int(rand(@corpus)) ];
		}
	}
	return $s;
}

my @inputs = @corpus;
push @inputs, mutate($corpus[ int(rand(@corpus)) ]) for 1 .. 3000;
push @inputs, join('', map { random_char() } 1 .. (1 + int(rand(200)))) for 1 .. 300;
push @inputs,
  'SELECT ' . ('(' x 5000) . '1' . (')' x 5000),
  'SELECT ' . join('+', (1) x 30000),
  'ALTER TABLE accounts ADD COLUMN deep int DEFAULT ' . join('+', (1) x 30000),
  'UPDATE accounts SET status = 1 WHERE ' . join(' OR ', ('status = 1') x 20000),
  'UPDATE accounts SET status = 1 WHERE ' . ('NOT ' x 20000) . 'true',
  'DELETE FROM accounts WHERE id IN (SELECT id FROM (' x 200 . 'SELECT 1 AS id' . ') s' x 200 . ')',
  'ALTER TABLE accounts ADD CHECK (' . ('NOT ' x 5000) . 'true)',
  'SELECT ' . ('ARRAY[' x 3000) . '1' . (']' x 3000),
  'SELECT CASE ' . ('WHEN true THEN CASE ' x 2000) . 'WHEN true THEN 1 END' . (' END' x 2000);

# A 1 MB script of corpus statements, and one with a garbage tail.
my $big = '';
$big .= $corpus[ int(rand(@corpus)) ] . ";\n" while length($big) < 1024 * 1024;
push @inputs, $big, $big . ' ) garbage (';

my $file = $node->basedir . '/fuzz_inputs.copy';
open(my $fh, '>:encoding(UTF-8)', $file) or die "$file: $!";
foreach my $s (@inputs)
{
	(my $e = $s) =~ s/\\/\\\\/g;
	$e =~ s/\n/\\n/g;
	$e =~ s/\r/\\r/g;
	$e =~ s/\t/\\t/g;
	print $fh "$e\n";
}
close($fh);
$node->safe_psql('postgres', "COPY fuzz_inputs (sql) FROM '$file'");
is($node->safe_psql('postgres', 'SELECT count(*) FROM fuzz_inputs'),
	scalar(@inputs), 'fuzz inputs loaded');

# One session, one loop: every input through both functions, errors caught.
my $started = time();
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
SET client_min_messages = notice;
SET migration_tools.lint_large_rows = 1000;
DO $$
DECLARE
    r record;
    ok int := 0;
    failed int := 0;
    internal int := 0;
    codes jsonb := '{}';
    findings bigint := 0;
    cnt bigint;
BEGIN
    FOR r IN SELECT f.n AS k, f.sql FROM fuzz_inputs f ORDER BY f.n LOOP
        BEGIN
            SELECT count(*) INTO cnt FROM migration_tools.lint(r.sql);
            findings := findings + cnt;
            SELECT count(*) INTO cnt FROM migration_tools.script_statements(r.sql);
            ok := ok + 1;
            INSERT INTO fuzz_parsed VALUES (r.k);
        EXCEPTION WHEN OTHERS THEN
            failed := failed + 1;
            codes := jsonb_set(codes, ARRAY[SQLSTATE],
                               to_jsonb(coalesce((codes->>SQLSTATE)::int, 0) + 1));
            IF SQLSTATE LIKE 'XX%' THEN
                internal := internal + 1;
                RAISE NOTICE 'internal error on input %: %', r.k, SQLERRM;
            END IF;
        END;
    END LOOP;
    RAISE NOTICE 'fuzz: % ok, % errors, % findings', ok, failed, findings;
    RAISE NOTICE 'fuzz error codes: %', codes;
    RAISE NOTICE 'fuzz internal errors: %', internal;
END
$$;
});
my $elapsed = time() - $started;
note "fuzz run took ${elapsed}s";
note $stderr;
is($ret, 0, 'fuzz loop completed in one session');
like($stderr, qr/fuzz: \d+ ok, \d+ errors, \d+ findings/, 'fuzz loop reported its counts');
my ($okcount, $errcount) = $stderr =~ /fuzz: (\d+) ok, (\d+) errors/;
cmp_ok($okcount // 0, '>', 100, 'many inputs linted without error');
cmp_ok($errcount // 0, '>', 100, 'many inputs rejected with an error');
like($stderr, qr/fuzz internal errors: 0\b/, 'no internal error (elog) on any input');

# The guard on utility trees as the server hands them over: every input
# that parsed really runs, once with the guard off and once on, each time
# in a subtransaction that is always rolled back.  The guard may refuse a
# statement (55000) but must never make it fail in any other way.
# One top-level statement per run, so that statement_timeout bounds each
# (a mutation can turn an UPDATE ... FROM into a long cross join).
my @parsed = split /\n/, $node->safe_psql('postgres',
	'SELECT n FROM fuzz_parsed JOIN fuzz_inputs USING (n) WHERE length(sql) < 2000 ORDER BY n');
my $guard_sql = q{
SET client_min_messages = warning;
SET statement_timeout = '3s';
SET lock_timeout = '100ms';
CREATE TABLE fuzz_guard (n int, guard boolean, state text);
CREATE FUNCTION pg_temp.run_rolled_back(script text, guard boolean) RETURNS text
LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM set_config('migration_tools.guard', guard::text, true);
    EXECUTE script;
    RAISE EXCEPTION USING ERRCODE = 'P0004', MESSAGE = 'roll back';
EXCEPTION
    WHEN assert_failure THEN RETURN 'ok';
    WHEN query_canceled THEN RETURN SQLSTATE;
    WHEN OTHERS THEN RETURN SQLSTATE;
END
$f$;
};
foreach my $n (@parsed)
{
	foreach my $g ('false', 'true')
	{
		$guard_sql .= "INSERT INTO fuzz_guard SELECT n, $g, pg_temp.run_rolled_back(sql, $g) FROM fuzz_inputs WHERE n = $n;\n";
	}
}
$guard_sql .= q{
SELECT format('guard fuzz: %s ran, %s refused, %s other errors, %s internal, %s broken',
    count(*) FILTER (WHERE g.state = 'ok'),
    count(*) FILTER (WHERE g.state = '55000' AND o.state <> '55000'),
    count(*) FILTER (WHERE g.state NOT IN ('ok', '55000')),
    count(*) FILTER (WHERE g.state LIKE 'XX%' OR o.state LIKE 'XX%'),
    /* the guard may refuse a statement, never make it fail otherwise */
    count(*) FILTER (WHERE g.state <> o.state AND g.state <> '55000'
                     AND '57014' NOT IN (g.state, o.state)))
FROM fuzz_guard g JOIN fuzz_guard o ON o.n = g.n AND NOT o.guard
WHERE g.guard;
SELECT format('guard changed input %s from %s to %s', g.n, o.state, g.state)
FROM fuzz_guard g JOIN fuzz_guard o ON o.n = g.n AND NOT o.guard
WHERE g.guard AND (g.state LIKE 'XX%' OR o.state LIKE 'XX%' OR
      (g.state <> o.state AND g.state <> '55000' AND '57014' NOT IN (g.state, o.state)));
};
my ($gret, $gout, $gerr) = $node->psql('postgres', $guard_sql);
note $gout;
is($gret, 0, 'guard fuzz completed in one session') or note $gerr;
like($gout, qr/guard fuzz: \d+ ran, [1-9]\d* refused, \d+ other errors, 0 internal, 0 broken/,
	'the guard refused statements, failed none otherwise, raised no internal error');

# The server is the same: no crash, no restart, no backend killed.
is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server still answers');
is(postmaster_pid(), $pm_pid, 'postmaster was not restarted');
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated|server process .* exited with exit code [1-9]/,
	'no backend died');
unlike($log, qr/all server processes terminated; reinitializing/, 'no crash recovery');

# lint() never ran them; the guard loop rolled back what it ran.
is($node->safe_psql('postgres', 'SELECT count(*) FROM accounts'), '20000',
	'the fuzz inputs left no trace');

# lint() and script_statements() take no lock on the tables they read
# about: they run while a prepared transaction holds ACCESS EXCLUSIVE.
$node->safe_psql('postgres', q{
BEGIN;
LOCK TABLE accounts, orders IN ACCESS EXCLUSIVE MODE;
PREPARE TRANSACTION 'lint_fuzz_hold';
});
my $script = q{ALTER TABLE accounts ALTER COLUMN email SET NOT NULL;
UPDATE accounts SET status = 1 WHERE status = 2;
ALTER TABLE orders ADD FOREIGN KEY (account_id) REFERENCES accounts (id);
CREATE INDEX ON orders (total)};
my ($lret, $lout, $lerr) = $node->psql('postgres',
	"SET lock_timeout = '1s'; SELECT string_agg(rule, ',' ORDER BY statement, rule COLLATE \"C\") FROM migration_tools.lint(\$\$$script\$\$);"
	  . " SELECT count(*) FROM migration_tools.script_statements(\$\$$script\$\$);");
is($lret, 0, 'lint runs while the tables are locked ACCESS EXCLUSIVE') or note $lerr;
is($lout,
	"require-lock-timeout,set-not-null,add-foreign-key-validated,create-index-non-concurrently\n4",
	'and finds what it finds without the lock');
$node->safe_psql('postgres', "ROLLBACK PREPARED 'lint_fuzz_hold'");

$node->stop;
done_testing();
