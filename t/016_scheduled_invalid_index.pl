# Scheduled statements (SPEC section 1, statements that cannot run in a
# transaction block) and INVALID indexes, as a DBA meets them:
#  - an INVALID index left by somebody's failed manual concurrent build has
#    the name a migration builds: the worker drops it first, so neither
#    "already exists" nor, with IF NOT EXISTS, a silently skipped build
#    (migration applied, no usable unique index);
#  - while somebody holds a lock a build in progress would hold, that
#    INVALID index is left alone, and an IF NOT EXISTS build that skipped
#    it fails the migration with a clear error instead of "applied";
#  - apply() of a concurrent build in a transaction the caller rolls back
#    records nothing and builds nothing.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('scheduled_invalid_index', conf => q{
migration_tools.scheduled_retry_delay = '200ms'
});
$node->safe_psql('postgres', q{
CREATE TABLE u (id int PRIMARY KEY, v int);
INSERT INTO u SELECT g, g % 10 FROM generate_series(1, 1000) g;
});

# somebody's manual builds fail on duplicates and leave INVALID indexes
for my $name (qw(u_v_a u_v_b u_v_c))
{
	my ($ret, $out, $err) = $node->psql('postgres',
		"CREATE UNIQUE INDEX CONCURRENTLY $name ON u (v)");
	like($err, qr/could not create unique index/, "manual build of $name failed");
}
$node->safe_psql('postgres', 'UPDATE u SET v = id');
is($node->safe_psql('postgres',
	"SELECT string_agg(indexrelid::regclass || ':' || indisvalid, ',' ORDER BY 1)
	 FROM pg_index WHERE indrelid = 'u'::regclass AND NOT indisvalid"),
	'u_v_a:false,u_v_b:false,u_v_c:false', 'three INVALID leftovers');

sub wait_done
{
	my ($version) = @_;
	return mt_poll($node, 'postgres',
		"SELECT state <> 'scheduled' FROM migration_tools.status WHERE version = '$version'",
		't', 60);
}

# 1. IF NOT EXISTS over the leftover: built, valid, applied.
$node->safe_psql('postgres',
	"SELECT migration_tools.apply('a', 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u_v_a ON u (v)')");
ok(wait_done('a'), 'migration a done');
is($node->safe_psql('postgres',
	"SELECT state, indisvalid FROM migration_tools.status, pg_index
	 WHERE version = 'a' AND indexrelid = 'u_v_a'::regclass"),
	'applied|t', 'IF NOT EXISTS over an INVALID leftover: applied with a VALID index');

# 2. the plain build over the leftover: no "already exists".
$node->safe_psql('postgres',
	"SELECT migration_tools.apply('b', 'CREATE UNIQUE INDEX CONCURRENTLY u_v_b ON u (v)')");
ok(wait_done('b'), 'migration b done');
is($node->safe_psql('postgres',
	"SELECT state, coalesce(error, ''), indisvalid FROM migration_tools.status, pg_index
	 WHERE version = 'b' AND indexrelid = 'u_v_b'::regclass"),
	'applied||t', 'plain build over an INVALID leftover: applied with a VALID index');
# the worker's DROP INDEX of the leftover is logged with the migration's
# version and the statement it ran
is($node->safe_psql('postgres',
	"SELECT migration_version, statement FROM migration_tools.ddl_log
	 WHERE event = 'sql_drop' AND object_identity = 'public.u_v_b'"),
	'b|DROP INDEX CONCURRENTLY IF EXISTS public.u_v_b',
	'the cleanup DROP INDEX is logged with the version of migration b');

# 3. someone holds SHARE UPDATE EXCLUSIVE (as a build in progress would):
#    the leftover is not touched; the IF NOT EXISTS build runs once the lock
#    is gone, skips the INVALID index, and the migration fails, saying why.
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK u IN SHARE UPDATE EXCLUSIVE MODE');
$node->safe_psql('postgres',
	"SELECT migration_tools.apply('c', 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u_v_c ON u (v)')");
ok(mt_poll($node, 'postgres',
	"SELECT count(*) > 0 FROM pg_stat_activity
	 WHERE backend_type <> 'client backend' AND query LIKE 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u_v_c%'
	   AND wait_event_type = 'Lock'", 't', 60),
	'the build waits for the holder');
# meanwhile schema_drift() says that a migration is still being built
my ($dret, $dout, $derr) = $node->psql('postgres', 'SELECT count(*) >= 0 FROM migration_tools.schema_drift()');
like($derr, qr/migration "c" is scheduled: what its statements change shows as drift until it is done/,
	'schema_drift() names the migration still scheduled');
$holder->query_safe('COMMIT');
$holder->quit;
ok(wait_done('c'), 'migration c done');
my $c = $node->safe_psql('postgres',
	"SELECT state || ' ' || error FROM migration_tools.status WHERE version = 'c'");
like($c, qr/^failed .*index "u_v_c" exists but is INVALID/,
	'an IF NOT EXISTS build that skipped an INVALID index fails the migration');
is($node->safe_psql('postgres', "SELECT indisvalid FROM pg_index WHERE indexrelid = 'u_v_c'::regclass"),
	'f', 'the INVALID index it did not build is left alone');

# once the DBA dropped it, the failed migration applies
$node->safe_psql('postgres', 'DROP INDEX CONCURRENTLY u_v_c');
$node->safe_psql('postgres',
	"SELECT migration_tools.apply('c', 'CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS u_v_c ON u (v)')");
ok(wait_done('c'), 'migration c done again');
is($node->safe_psql('postgres',
	"SELECT state, indisvalid FROM migration_tools.status, pg_index
	 WHERE version = 'c' AND indexrelid = 'u_v_c'::regclass"),
	'applied|t', 'applied after the leftover was dropped');

# 4. apply() in a transaction the caller rolls back: nothing recorded,
#    nothing scheduled, nothing built.
$node->safe_psql('postgres', q{
BEGIN;
SELECT migration_tools.apply('d', 'CREATE INDEX CONCURRENTLY u_v_d ON u (v)');
ROLLBACK;
});
sleep 2;
is($node->safe_psql('postgres',
	"SELECT (SELECT count(*) FROM migration_tools.migrations WHERE version = 'd') || ' ' ||
	        (SELECT count(*) FROM migration_tools.scheduled_statements WHERE version = 'd') || ' ' ||
	        (to_regclass('u_v_d') IS NULL)"),
	'0 0 true', 'rolled back apply(): no row, no scheduled statement, no index');

# no INVALID index is left anywhere
is($node->safe_psql('postgres',
	"SELECT count(*) FROM pg_index WHERE indrelid = 'u'::regclass AND NOT indisvalid"),
	'0', 'no INVALID index left');

$node->stop;
done_testing();
