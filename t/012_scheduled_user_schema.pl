# Scheduled statements resolve names as the role that queued them: with
# the default search_path ("$user", public), an unqualified table in the
# role's own schema is the one the statement builds on, and the one whose
# INVALID leftovers are dropped after a failed concurrent build.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

# a node with the library preloaded and the extension created
my $node = mt_node('scheduled_user_schema');
$node->safe_psql('postgres', q{
CREATE ROLE owner_app LOGIN;
CREATE SCHEMA owner_app AUTHORIZATION owner_app;
CREATE TABLE owner_app.things (id int PRIMARY KEY, k int);
ALTER TABLE owner_app.things OWNER TO owner_app;
INSERT INTO owner_app.things SELECT g, g % 10 FROM generate_series(1, 1000) g;
});

# Queued the way apply() does: the migration 'scheduled', its statement,
# then a nudge for the worker.  The table is not qualified.
$node->safe_psql('postgres', q{
BEGIN;
INSERT INTO migration_tools.migrations (version, checksum, up_sql, state, applied_by)
VALUES ('u1', 'test', 'scheduled by the test', 'scheduled', 'owner_app');
INSERT INTO migration_tools.scheduled_statements (version, seq, statement_no, sql, run_as)
VALUES ('u1', 1, 1, 'CREATE UNIQUE INDEX CONCURRENTLY things_k ON things (k)', 'owner_app');
SELECT migration_tools._wakeup();
COMMIT;
});

ok($node->poll_query_until('postgres',
		q{SELECT state IN ('applied', 'failed') FROM migration_tools.migrations WHERE version = 'u1'}),
	'migration u1 finished');
is($node->safe_psql('postgres',
		q{SELECT state FROM migration_tools.migrations WHERE version = 'u1'}),
	'failed', 'a unique build over duplicates fails the migration');
like($node->safe_psql('postgres',
		q{SELECT error FROM migration_tools.migrations WHERE version = 'u1'}),
	qr/could not create unique index "things_k"/,
	'the build ran on the table of the role\'s own schema');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_index WHERE indrelid = 'owner_app.things'::regclass AND NOT indisvalid}),
	'0', 'the INVALID index the build left in that schema is dropped');

$node->stop;
done_testing();
