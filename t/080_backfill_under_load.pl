# Backfills (SPEC section 2) under concurrency and crashes, as a DBA runs
# them on a live server:
# - max_workers = 1, three databases, more jobs than workers, two jobs on
#   the same table in each: every job completes (none fails for lack of a
#   slot), never more than one worker at a time, one job per table at a
#   time, each row changed once per job;
# - run_batched deleting in batches (logging what it deletes in the same
#   statement) while an application inserts and updates rows of the same
#   table, and the worker is killed -9 mid-job: no row deleted twice, none
#   lost (every row is either deleted and logged once, or still there),
#   every row that was there at the start and matched is gone;
# - a backfill of every row while the application updates rows: the job
#   records the lock waits it suffered.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use MtBackfill;

my $node = mt_node('backfill_under_load', conf => "migration_tools.max_workers = 1\n");

# --- max_workers = 1, three databases, more jobs than workers ---
my %jobs;
for my $db ('acc4_a', 'acc4_b', 'acc4_c')
{
	$node->safe_psql('postgres', "CREATE DATABASE $db");
	$node->safe_psql($db, 'CREATE EXTENSION migration_tools');
	mt_make_table($node, $db, 't_two', 3000);
	mt_make_table($node, $db, 't_one', 3000);
}
for my $db ('acc4_a', 'acc4_b', 'acc4_c')
{
	push @{ $jobs{$db} },
	  mt_queue($node, $db, 't_two', 'counter = counter + 1', undef,
		"batch_size => 300, batch_sleep => '20ms'"),
	  mt_queue($node, $db, 't_two', 'counter = counter + 1', undef,
		"batch_size => 300, batch_sleep => '20ms'"),
	  mt_queue($node, $db, 't_one', 'counter = counter + 1', undef,
		"batch_size => 300, batch_sleep => '20ms'");
}

# while they run: never more than one worker
my $max_workers_seen = 0;
my $deadline = time() + 120;
while (time() < $deadline)
{
	my $n = $node->safe_psql('postgres',
		"SELECT count(*) FROM migration_tools.worker_processes() WHERE kind = 'worker'");
	$max_workers_seen = $n if $n > $max_workers_seen;
	my $left = 0;
	for my $db (keys %jobs)
	{
		$left += $node->safe_psql($db,
			"SELECT count(*) FROM migration_tools.backfill_progress WHERE state IN ('queued', 'running')");
	}
	last if $left == 0;
	usleep(50_000);
}
cmp_ok($max_workers_seen, '<=', 1, 'max_workers = 1: never more than one worker');
for my $db (sort keys %jobs)
{
	for my $j (@{ $jobs{$db} })
	{
		is(mt_wait_job($node, $db, $j), 'completed', "$db: job $j completed");
	}
	is($node->safe_psql($db,
			"SELECT count(*) FILTER (WHERE counter = 2) || '/' || count(*) FROM t_two"),
		'3000/3000', "$db: two jobs on one table, each row changed twice");
	is($node->safe_psql($db,
			"SELECT count(*) FILTER (WHERE counter = 1) || '/' || count(*) FROM t_one"),
		'3000/3000', "$db: each row changed once");
	is($node->safe_psql($db, q{
			SELECT count(*) FROM migration_tools.backfill_progress a
			JOIN migration_tools.backfill_progress b
			  ON a.relation = b.relation AND a.job_id < b.job_id
			WHERE a.started_at < b.finished_at AND b.started_at < a.finished_at}),
		'0', "$db: one job per table at a time");
	is($node->safe_psql($db,
			"SELECT string_agg(DISTINCT coalesce(last_error, 'none'), ',') FROM migration_tools.backfill_progress"),
		'none', "$db: no job saw an error");
}

# --- deleting in batches under an application, with a crash ---
$node->safe_psql('postgres', q{
CREATE TABLE ev (id bigint PRIMARY KEY, kind int NOT NULL, payload text NOT NULL DEFAULT 'x');
INSERT INTO ev (id, kind) SELECT g * 10, g % 3 FROM generate_series(1, 30000) g;
CREATE TABLE ev_start AS SELECT id FROM ev WHERE kind = 0;
CREATE SEQUENCE ev_new START 1000000;
CREATE SEQUENCE ev_mid START 5 INCREMENT 10;
CREATE TABLE ev_deleted (id bigint, kind int);
ANALYZE ev;
});

# the application: new rows at the end and between the keys already
# there (ahead of and behind the job's checkpoint), updates
my $app_sql = q{
\echo app started
DO $$
BEGIN
    FOR i IN 1 .. 3000 LOOP
        INSERT INTO ev (id, kind) VALUES (nextval('ev_new'), i % 3);
        INSERT INTO ev (id, kind) VALUES (nextval('ev_mid'), 0);
        UPDATE ev SET payload = payload || 'u' WHERE id = 10 * (1 + (i * 7919) % 30000);
        COMMIT;
    END LOOP;
END $$;
\echo app finished
};
my $app = $node->background_psql('postgres', on_error_stop => 0);
mt_send($app, qr/app started/, $app_sql);

my $job = $node->safe_psql('postgres', q{
SELECT migration_tools.run_batched('ev',
  'WITH d AS (DELETE FROM ev WHERE id BETWEEN $1 AND $2 AND kind = 0 RETURNING id, kind)
   INSERT INTO ev_deleted SELECT * FROM d',
  batch_size => 200, batch_sleep => '5ms')});
my $pid = mt_running_pid($node, 'postgres', $job, 2000);
is(kill('KILL', $pid), 1, 'delete job: kill -9 the worker mid-job');
# the crash ends the application's session too; it reconnects and goes on
eval { $app->quit; };
ok(mt_poll($node, 'postgres', 'SELECT true'), 'the server is back after the crash');
$app = $node->background_psql('postgres', on_error_stop => 0);
mt_send($app, qr/app started/, $app_sql);
mt_collect($app, qr/app finished/);
$app->quit;
is(mt_wait_job($node, 'postgres', $job, '120s'), 'completed', 'delete job: completed after the crash');
is($node->safe_psql('postgres', 'SELECT count(*) - count(DISTINCT id) FROM ev_deleted'),
	'0', 'delete job: no row deleted twice');
is($node->safe_psql('postgres', 'SELECT count(*) FROM ev_deleted WHERE kind <> 0'),
	'0', 'delete job: only matching rows deleted');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ev_start s
	WHERE NOT EXISTS (SELECT FROM ev_deleted d WHERE d.id = s.id)}),
	'0', 'delete job: every matching row there at the start was deleted and logged');
is($node->safe_psql('postgres', q{
	SELECT count(*) FROM ev e JOIN ev_deleted d USING (id)}),
	'0', 'delete job: nothing logged as deleted is still there');
is($node->safe_psql('postgres', q{
	SELECT rows_done = (SELECT count(*) FROM ev_deleted) FROM migration_tools.backfill_progress
	WHERE job_id = } . $job),
	't', 'delete job: rows_done is the number of rows deleted');

# --- the lock waits a job suffers under an application's updates ---
mt_make_table($node, 'postgres', 't_app', 20000);
my $holder = $node->background_psql('postgres', on_error_stop => 0);
mt_send($holder, qr/held/, q{
BEGIN;
UPDATE t_app SET payload = 'held' WHERE id IN (5000, 15000);
\echo held
});
$job = mt_queue($node, 'postgres', 't_app', 'counter = counter + 1', undef,
	'batch_size => 1000');
# until the worker waits for the holder, then a little longer
ok(mt_poll($node, 'postgres', q{
	SELECT count(*) > 0 FROM migration_tools.lock_waits
	WHERE waiting_application_name = 'migration_tools worker'}),
	'the worker waits for the application');
usleep(300_000);
$holder->query_safe('COMMIT');
$holder->quit;
mt_check_exactly_once($node, 'postgres', 't_app', $job, 20000, 'job under a row lock');
is($node->safe_psql('postgres', qq{
	SELECT lock_waits_suffered >= 1 AND lock_wait_suffered_ms >= 250
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	't', 'the job records the lock wait it suffered');

# --- lock_waits and lock_tree seen from another database ---
my $lholder = $node->background_psql('acc4_a', on_error_stop => 0);
$lholder->query_safe('BEGIN; LOCK t_one IN ACCESS EXCLUSIVE MODE;');
my $lwaiter = $node->background_psql('acc4_a', on_error_stop => 0);
mt_send($lwaiter, qr/sent/, q{
SET application_name = 'acc4_xdb';
\echo sent
SELECT count(*) FROM t_one;
\echo done
});
ok(mt_poll($node, 'postgres', q{
	SELECT count(*) = 1 FROM migration_tools.lock_waits WHERE waiting_application_name = 'acc4_xdb'}),
	'a wait in another database is listed');
my $t_one_oid = $node->safe_psql('acc4_a', "SELECT 't_one'::regclass::oid");
is($node->safe_psql('postgres', qq{
	SELECT locktype || ' ' || mode || ' relation=' || coalesce(relation::text, 'NULL') || ' ' ||
	       (relation_oid = $t_one_oid)::text || ' ' ||
	       (SELECT datname FROM pg_database d WHERE d.oid = w.database) || ' depth=' || depth
	FROM migration_tools.lock_waits w WHERE waiting_application_name = 'acc4_xdb'}),
	'relation AccessShareLock relation=NULL true acc4_a depth=1',
	'other database: no regclass, its OID, the database and the depth');
like($node->safe_psql('postgres', q{SELECT string_agg(t, ' | ') FROM migration_tools.lock_tree() t}),
	qr/\[acc4_xdb\] .* waits \S+ for AccessShareLock on relation \d+ in database acc4_a \(hard: holds AccessExclusiveLock\)/,
	'lock_tree names the other database');
$lholder->query_safe('COMMIT');
mt_collect($lwaiter, qr/done/);
$lwaiter->quit;
$lholder->quit;

$node->stop;
done_testing();
