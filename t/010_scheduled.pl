# Scheduled statements: what apply() cannot run in a transaction block runs
# in the background worker, top level, after commit.  A concurrent index
# build ends 'applied' with a valid index; a failed unique build fails the
# migration and leaves no INVALID index; lock timeouts are retried; a
# statement interrupted by an immediate shutdown is resumed after restart.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('scheduled');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
migration_tools.scheduled_retry_delay = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION migration_tools;
CREATE ROLE app LOGIN;
GRANT CREATE ON SCHEMA public TO app;
CREATE TABLE items (id int PRIMARY KEY, v int, w int);
ALTER TABLE items OWNER TO app;
INSERT INTO items SELECT g, g, g % 10 FROM generate_series(1, 10000) g;
});

# Queue a scheduled migration the way apply() does: the migration row in
# state 'scheduled', one row per statement, then a nudge for the worker.
my $rank = 0;
sub schedule
{
	my ($version, @statements) = @_;
	my $sql = qq{
BEGIN;
INSERT INTO migration_tools.migrations (version, checksum, up_sql, state, applied_by)
VALUES ('$version', 'test', 'scheduled by the test', 'scheduled', 'app');
};
	my $seq = 0;
	foreach my $s (@statements)
	{
		$seq++;
		$s =~ s/'/''/g;
		$sql .= qq{
INSERT INTO migration_tools.scheduled_statements (version, seq, statement_no, sql, run_as)
VALUES ('$version', $seq, $seq, '$s', 'app');
};
	}
	$sql .= "SELECT migration_tools._wakeup();\nCOMMIT;";
	$node->safe_psql('postgres', $sql);
}

sub migration_done
{
	my ($version) = @_;
	return $node->poll_query_until('postgres',
		"SELECT state IN ('applied', 'failed') FROM migration_tools.migrations WHERE version = '$version'");
}

sub state_of
{
	my ($version) = @_;
	return $node->safe_psql('postgres',
		"SELECT state FROM migration_tools.migrations WHERE version = '$version'");
}

my $invalid_sql = q{SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass AND NOT indisvalid};

# 1. A concurrent build, then a VACUUM: both top level, in order.
schedule('1', 'CREATE INDEX CONCURRENTLY items_v ON items (v)', 'VACUUM items');
ok(migration_done('1'), 'migration 1 finished');
is(state_of('1'), 'applied', 'CREATE INDEX CONCURRENTLY migration is applied');
is($node->safe_psql('postgres',
		q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_v'::regclass}),
	't', 'the index is valid');
is($node->safe_psql('postgres',
		q{SELECT string_agg(state || '/' || attempts, ',' ORDER BY seq)
		  FROM migration_tools.scheduled_statements WHERE version = '1'}),
	'done/1,done/1', 'both statements done in one attempt');
is($node->safe_psql('postgres',
		q{SELECT finished_at IS NOT NULL AND execution_time IS NOT NULL
		         AND catalog_fingerprint::jsonb ? 'index:public.items_v'
		  FROM migration_tools.migrations WHERE version = '1'}),
	't', 'finished_at, execution_time and a fingerprint with the new index are recorded');
is($node->safe_psql('postgres',
		q{SELECT relowner::regrole FROM pg_class WHERE relname = 'items_v'}),
	'app', 'the statement ran as the role that queued it');

# 2. A unique build over duplicate values fails for good: the migration is
# failed with the error, and the INVALID index the build left is dropped.
schedule('2', 'CREATE UNIQUE INDEX CONCURRENTLY items_w_key ON items (w)', 'VACUUM items');
ok(migration_done('2'), 'migration 2 finished');
is(state_of('2'), 'failed', 'unique build over duplicates fails the migration');
like($node->safe_psql('postgres',
		q{SELECT error FROM migration_tools.migrations WHERE version = '2'}),
	qr/scheduled statement 1 failed: could not create unique index "items_w_key"/,
	'the migration records the error');
is($node->safe_psql('postgres',
		q{SELECT state || '/' || attempts FROM migration_tools.scheduled_statements
		  WHERE version = '2' AND seq = 1}),
	'failed/1', 'not retried: a unique violation will not go away by itself');
is($node->safe_psql('postgres', $invalid_sql), '0', 'no INVALID index is left');
is($node->safe_psql('postgres', q{SELECT to_regclass('items_w_key') IS NULL}),
	't', 'the failed index is gone');

# 3. Lock timeouts are retried with back-off until the lock is free.
$node->safe_psql('postgres', q{
ALTER SYSTEM SET migration_tools.scheduled_lock_timeout = '100ms';
ALTER SYSTEM SET migration_tools.scheduled_retries = 50;
SELECT pg_reload_conf();
});
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN; LOCK TABLE items IN SHARE MODE;');
schedule('3', 'CREATE INDEX CONCURRENTLY items_w ON items (w)');
ok($node->poll_query_until('postgres',
		q{SELECT attempts >= 2 AND state = 'pending' AND error LIKE '%lock timeout%'
		  FROM migration_tools.scheduled_statements WHERE version = '3'}),
	'a lock timeout puts the statement back to pending with the error');
$holder->query_safe('COMMIT;');
ok(migration_done('3'), 'migration 3 finished');
is(state_of('3'), 'applied', 'applied once the lock is released');
is($node->safe_psql('postgres', $invalid_sql), '0', 'no INVALID index after the retries');

# ... but not forever: scheduled_retries attempts, then failed.
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET migration_tools.scheduled_retries; SELECT pg_reload_conf()");
$holder->query_safe('BEGIN; LOCK TABLE items IN SHARE MODE;');
schedule('4', 'CREATE INDEX CONCURRENTLY items_vw ON items (v, w)');
ok(migration_done('4'), 'migration 4 finished');
is($node->safe_psql('postgres',
		q{SELECT m.state || '/' || s.attempts
		  FROM migration_tools.migrations m JOIN migration_tools.scheduled_statements s USING (version)
		  WHERE version = '4'}),
	'failed/3', 'fails after migration_tools.scheduled_retries (3) attempts');
$holder->query_safe('COMMIT;');
$holder->quit;
$node->safe_psql('postgres',
	"ALTER SYSTEM RESET migration_tools.scheduled_lock_timeout; SELECT pg_reload_conf()");
is($node->safe_psql('postgres', $invalid_sql), '0', 'no INVALID index after the last attempt');

# 5. A dropped role: a clear error, at once.
$node->safe_psql('postgres', 'CREATE ROLE gone');
$node->safe_psql('postgres', q{
INSERT INTO migration_tools.migrations (version, checksum, up_sql, state)
VALUES ('5', 'test', 'test', 'scheduled');
INSERT INTO migration_tools.scheduled_statements (version, seq, statement_no, sql, run_as)
VALUES ('5', 1, 1, 'VACUUM items', 'gone');
DROP ROLE gone;
SELECT migration_tools._wakeup();
});
ok(migration_done('5'), 'migration 5 finished');
like($node->safe_psql('postgres',
		q{SELECT state || ': ' || error FROM migration_tools.migrations WHERE version = '5'}),
	qr/^failed: .*role "gone" that scheduled this statement does not exist/,
	'a statement whose role was dropped fails clearly');

# 6. An immediate shutdown while a concurrent build waits for an old
# snapshot: after restart the statement is taken up again, the INVALID
# index of the interrupted build is dropped first, and the build completes.
my $old = $node->background_psql('postgres');
$old->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM items;');
schedule('6', 'CREATE INDEX CONCURRENTLY items_id_v ON items (id, v)');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_progress_create_index p
		  JOIN pg_stat_activity a USING (pid)
		  WHERE a.backend_type = 'migration_tools worker'
		    AND p.phase LIKE 'waiting for %'}),
	'the build waits for the old snapshot');
is($node->safe_psql('postgres',
		q{SELECT state FROM migration_tools.scheduled_statements WHERE version = '6'}),
	'running', 'the statement is running');
$node->stop('immediate');
eval { $old->quit; };
$node->start;
ok(migration_done('6'), 'migration 6 finished after the restart');
is(state_of('6'), 'applied', 'the interrupted build is applied after restart');
is($node->safe_psql('postgres',
		q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_id_v'::regclass}),
	't', 'the rebuilt index is valid');
is($node->safe_psql('postgres', $invalid_sql), '0', 'no INVALID index left');
is($node->safe_psql('postgres',
		q{SELECT attempts FROM migration_tools.scheduled_statements WHERE version = '6'}),
	'2', 'it took a second attempt');
ok($node->log_contains('resuming scheduled statement 1 of migration "6"'),
	'the log says the statement was resumed');

# 7. Through apply(): the script's transactional part runs in the caller's
# transaction, the concurrent build after commit; the DDL log shows the
# worker's statement with the migration version and the role.
my $out = $node->safe_psql('postgres', q{
SELECT migration_tools.apply('7',
    'CREATE TABLE orders (id int PRIMARY KEY, v int);
     CREATE INDEX CONCURRENTLY orders_v ON orders (v)');
});
is($out, 'scheduled', 'apply() returns scheduled');
ok(migration_done('7'), 'migration 7 finished');
is(state_of('7'), 'applied', 'the scheduled part of an apply()ed migration is applied');
is($node->safe_psql('postgres', q{
SELECT string_agg(command_tag || ' ' || object_identity || ' ' || current_user_name, ', ' ORDER BY id)
FROM migration_tools.ddl_log WHERE migration_version = '7'}),
	'CREATE TABLE public.orders postgres, CREATE INDEX public.orders_pkey postgres, CREATE INDEX public.orders_v postgres',
	'the DDL log has both parts with the version');
is($node->safe_psql('postgres', q{SELECT count(*) FROM migration_tools.schema_drift()}),
	'0', 'no drift right after the migration');
$node->safe_psql('postgres', 'CREATE INDEX orders_id_v ON orders (id, v)');
is($node->safe_psql('postgres', q{SELECT object || ' ' || change || ' since ' || since_version FROM migration_tools.schema_drift()}),
	'public.orders_id_v added since 7', 'schema_drift() names an index created outside migrations');

# 7b. A statement whose worker died in each of its attempts (perhaps it
# takes the server down) is not run yet again: failed.
$node->safe_psql('postgres', q{
INSERT INTO migration_tools.migrations (version, checksum, up_sql, state)
VALUES ('crashy', 'test', 'test', 'scheduled');
INSERT INTO migration_tools.scheduled_statements (version, seq, statement_no, sql, run_as, state, attempts)
VALUES ('crashy', 1, 1, 'VACUUM items', 'app', 'running', 5);
SELECT migration_tools._wakeup();
});
ok(migration_done('crashy'), 'migration crashy finished');
like($node->safe_psql('postgres',
		q{SELECT state || ': ' || error FROM migration_tools.migrations WHERE version = 'crashy'}),
	qr/^failed: scheduled statement 1 failed: the worker stopped while running this statement in each of its 5 attempts/,
	'an orphan interrupted too often is failed, not run again');

# 7c. The worker stopped after the build committed but before recording
# it: the VALID index is taken as the statement's work, not built again.
$node->safe_psql('postgres', q{
CREATE INDEX items_built ON items (w, v);
INSERT INTO migration_tools.migrations (version, checksum, up_sql, state)
VALUES ('built', 'test', 'test', 'scheduled');
INSERT INTO migration_tools.scheduled_statements (version, seq, statement_no, sql, run_as, state, attempts)
VALUES ('built', 1, 1, 'CREATE INDEX CONCURRENTLY items_built ON items (w, v)', 'app', 'running', 1);
SELECT migration_tools._wakeup();
});
ok(migration_done('built'), 'migration built finished');
is(state_of('built'), 'applied', 'an orphaned build whose index is there and valid is done');
ok($node->log_contains('index "items_built" of scheduled statement 1 of migration "built" was already built'),
	'the log says so');

# 8. Names resolve with the database's search_path (as for a new session of
# the role), while the worker's own queries never use it.
$node->safe_psql('postgres', q{
CREATE SCHEMA shop AUTHORIZATION app;
CREATE TABLE shop.things (x int);
ALTER TABLE shop.things OWNER TO app;
INSERT INTO shop.things SELECT g % 3 FROM generate_series(1, 100) g;
ALTER DATABASE postgres SET search_path = shop, public;
});
schedule('8', 'CREATE UNIQUE INDEX CONCURRENTLY things_x ON things (x)');
ok(migration_done('8'), 'migration 8 finished');
like($node->safe_psql('postgres',
		q{SELECT state || ': ' || error FROM migration_tools.migrations WHERE version = '8'}),
	qr/^failed: scheduled statement 1 failed: could not create unique index "things_x"/,
	'an unqualified name resolves with the database search_path');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_index WHERE indrelid = 'shop.things'::regclass AND NOT indisvalid}),
	'0', 'and its INVALID index is dropped');
$node->safe_psql('postgres', 'ALTER DATABASE postgres RESET search_path');

# 9. REINDEX CONCURRENTLY cancelled while it waits: its INVALID "_ccnew"
# copy is dropped and the retry succeeds.
my $snap = $node->background_psql('postgres');
$snap->query_safe('BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM items;');
schedule('9', 'REINDEX INDEX CONCURRENTLY items_v');
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_index WHERE indrelid = 'items'::regclass
		    AND NOT indisvalid AND indexrelid::regclass::text LIKE 'items_v_ccnew%'}),
	'REINDEX CONCURRENTLY has made its INVALID copy');
$node->safe_psql('postgres',
	q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE backend_type = 'migration_tools worker'});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 1 FROM pg_stat_activity
		  WHERE backend_type = 'migration_tools worker'
		    AND query LIKE 'DROP INDEX CONCURRENTLY IF EXISTS public.items_v_ccnew%'}),
	'after the cancel the worker drops the INVALID copy (waiting for the old snapshot too)');
$snap->query_safe('COMMIT;');
$snap->quit;
ok(migration_done('9'), 'migration 9 finished');
is(state_of('9'), 'applied', 'the REINDEX is applied on retry');
is($node->safe_psql('postgres', $invalid_sql), '0', 'no INVALID _ccnew index is left');
is($node->safe_psql('postgres',
		q{SELECT attempts FROM migration_tools.scheduled_statements WHERE version = '9'}),
	'2', 'the cancelled attempt was retried once');

$node->stop;
done_testing();
