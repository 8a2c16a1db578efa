# More ways to interrupt a job, each checked for exactly-once results:
# run_batched (INSERT ... SELECT into a table without a key, where a
# repeated batch would show as duplicates) and the ctid strategy (a
# trigger counts the updates each row gets) under kill -9; a composite
# primary key under kill -9; adaptive batches under repeated
# pg_terminate_backend; a paused job stays paused through an immediate
# shutdown and completes once resumed; a cancelled job keeps what it did
# and completes once retried.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 20000;
my $slow = "batch_size => 100, batch_sleep => '20ms'";
my $node = mt_node('interrupts');

# The worker running $job, to be gone: wait until no worker runs it.
sub job_has_no_worker
{
	my ($job) = @_;
	return mt_poll($node, 'postgres', qq{SELECT count(*) = 0 FROM migration_tools.workers
		WHERE running = 'backfill' AND running_id = $job});
}

# run_batched: a copy into a table without a key.
$node->safe_psql('postgres', qq{
CREATE TABLE src (id int PRIMARY KEY, payload text NOT NULL);
INSERT INTO src SELECT g, 'p' || g FROM generate_series(1, $nrows) g;
CREATE TABLE dst (id int, payload text);
});
my $job = $node->safe_psql('postgres', qq{
SELECT migration_tools.run_batched('src',
	'INSERT INTO public.dst SELECT id, payload FROM public.src WHERE id BETWEEN \$1 AND \$2',
	$slow)});
my $pid = mt_running_pid($node, 'postgres', $job, 1000);
is(kill('KILL', $pid), 1, 'run_batched: kill -9 the worker');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'run_batched: completes');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM dst'),
	"$nrows|$nrows", 'run_batched: every row copied exactly once');
is($node->safe_psql('postgres',
		'SELECT count(*) FROM src FULL JOIN dst USING (id) WHERE src.payload IS DISTINCT FROM dst.payload'),
	'0', 'run_batched: the copy equals the source');
is(mt_job_field($node, 'postgres', $job, 'rows_done'), $nrows,
	'run_batched: rows_done counts the rows inserted');

# ctid strategy under kill -9: a trigger counts the updates of each row.
# Packed pages make every update move its row, so the job meets the rows
# it moved itself; the guard must skip them.
$node->safe_psql('postgres', qq{
CREATE TABLE tc (id int, v int, hits int NOT NULL DEFAULT 0, pad text NOT NULL)
	WITH (fillfactor = 100, autovacuum_enabled = off);
CREATE FUNCTION tc_hit() RETURNS trigger LANGUAGE plpgsql AS
	\$\$ BEGIN NEW.hits := OLD.hits + 1; RETURN NEW; END \$\$;
CREATE TRIGGER tc_hit BEFORE UPDATE ON tc FOR EACH ROW EXECUTE FUNCTION tc_hit();
INSERT INTO tc (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $nrows) g;
ANALYZE tc;
});
$job = mt_queue($node, 'postgres', 'tc', 'v = id * 2', undef, "$slow, strategy => 'ctid'");
$pid = mt_running_pid($node, 'postgres', $job, 1000);
is(kill('KILL', $pid), 1, 'ctid: kill -9 the worker');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM tc}),
	"0|0|$nrows", 'ctid: every row updated exactly once');
is(mt_job_field($node, 'postgres', $job, 'rows_done'), $nrows,
	'ctid: rows_done equals the row count');

# ctid strategy killed during its sweep passes, then a VACUUM FULL (every
# row gets a new ctid) while the resumed job runs.  Still exactly once.
$node->safe_psql('postgres', qq{
CREATE TABLE ts (id int, v int, hits int NOT NULL DEFAULT 0, pad text NOT NULL)
	WITH (fillfactor = 100, autovacuum_enabled = off);
CREATE TRIGGER ts_hit BEFORE UPDATE ON ts FOR EACH ROW EXECUTE FUNCTION tc_hit();
INSERT INTO ts (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $nrows) g;
ANALYZE ts;
});
$job = mt_queue($node, 'postgres', 'ts', 'v = id * 2', undef, "$slow, strategy => 'ctid'");
# another transaction id while the main pass runs: it must sweep
mt_running_pid($node, 'postgres', $job, 100);
$node->safe_psql('postgres', 'SELECT pg_current_xact_id()');
ok(mt_poll($node, 'postgres', qq{SELECT phase = 'sweep' AND state = 'running'
	AND worker_pid IS NOT NULL
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'ctid: the job reaches its sweep');
$pid = mt_job_field($node, 'postgres', $job, 'worker_pid');
is(kill('KILL', $pid), 1, 'ctid: kill -9 the worker during the sweep');
mt_poll($node, 'postgres', qq{SELECT state = 'completed' OR worker_pid IS NOT NULL
	FROM migration_tools.backfill_progress WHERE job_id = $job});
$node->safe_psql('postgres', 'VACUUM FULL ts');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid sweep: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM ts}),
	"0|0|$nrows", 'ctid sweep: every row updated exactly once');

# A quiet main pass: no other transaction holds or gets a transaction id
# while it runs (autovacuum off, nothing else writes), so no row can have
# moved: the job ends without a sweep pass, every row updated once.  The
# trigger only changes the row it fires for, which the job checks too.
$node->safe_psql('postgres', 'ALTER SYSTEM SET autovacuum = off');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');
mt_poll($node, 'postgres', q{SELECT count(*) = 0 FROM pg_stat_activity
	WHERE backend_type = 'autovacuum worker'});
$node->safe_psql('postgres', qq{
CREATE TABLE tq (id int NOT NULL, v int, hits int NOT NULL DEFAULT 0, pad text NOT NULL)
	WITH (fillfactor = 100);
CREATE TRIGGER tq_hit BEFORE UPDATE ON tq FOR EACH ROW EXECUTE FUNCTION tc_hit();
INSERT INTO tq (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, 6000) g;
ANALYZE tq;
});
$job = mt_queue($node, 'postgres', 'tq', 'v = id * 2', 'v IS NULL',
	"batch_size => 500, strategy => 'ctid'");
is(mt_wait_job($node, 'postgres', $job), 'completed', 'quiet ctid job: completes');
is($node->safe_psql('postgres',
		"SELECT phase, sweep_pass FROM migration_tools.backfill_jobs WHERE job_id = $job"),
	'done|0', 'quiet ctid job: no sweep pass');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM tq}),
	"0|0|6000", 'quiet ctid job: every row updated exactly once');
$node->safe_psql('postgres', 'ALTER SYSTEM RESET autovacuum');
$node->safe_psql('postgres', 'SELECT pg_reload_conf()');

# The same with the guard dropped by the job (its where_clause "v IS NULL"
# already excludes every row done, since id * 2 is never NULL): killed in
# the main pass and in the sweep, a VACUUM FULL in between.  Still exactly
# once.
$node->safe_psql('postgres', qq{
CREATE TABLE tn (id int NOT NULL, v int, hits int NOT NULL DEFAULT 0, pad text NOT NULL)
	WITH (fillfactor = 100, autovacuum_enabled = off);
CREATE TRIGGER tn_hit BEFORE UPDATE ON tn FOR EACH ROW EXECUTE FUNCTION tc_hit();
INSERT INTO tn (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, 6000) g;
ANALYZE tn;
});
$job = mt_queue($node, 'postgres', 'tn', 'v = id * 2', 'v IS NULL', "$slow, strategy => 'ctid'");
is($node->safe_psql('postgres',
		"SELECT guard_clause IS NULL FROM migration_tools.backfill_jobs WHERE job_id = $job"), 't',
	'ctid without guard: the job dropped its guard');
$pid = mt_running_pid($node, 'postgres', $job, 1000);
is(kill('KILL', $pid), 1, 'ctid without guard: kill -9 the worker');
ok(mt_poll($node, 'postgres', qq{SELECT phase = 'sweep' AND state = 'running'
	AND worker_pid IS NOT NULL
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'ctid without guard: the job reaches its sweep');
$pid = mt_job_field($node, 'postgres', $job, 'worker_pid');
is(kill('KILL', $pid), 1, 'ctid without guard: kill -9 the worker during the sweep');
mt_poll($node, 'postgres', qq{SELECT state = 'completed' OR worker_pid IS NOT NULL
	FROM migration_tools.backfill_progress WHERE job_id = $job});
$node->safe_psql('postgres', 'VACUUM FULL tn');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid without guard: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM tn}),
	"0|0|6000", 'ctid without guard: every row updated exactly once');

# A composite primary key under kill -9.
$node->safe_psql('postgres', qq{
CREATE TABLE tk (a int, b int, counter int NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
INSERT INTO tk (a, b) SELECT g % 7, g FROM generate_series(1, $nrows) g;
ANALYZE tk;
});
$job = mt_queue($node, 'postgres', 'tk', 'counter = counter + 1', undef, $slow);
$pid = mt_running_pid($node, 'postgres', $job, 1000);
is(kill('KILL', $pid), 1, 'composite key: kill -9 the worker');
mt_check_exactly_once($node, 'postgres', 'tk', $job, $nrows, 'composite key');

# Adaptive batches, the worker terminated again and again (as long as the
# job has not completed: adaptive batches grow quickly).
mt_make_table($node, 'postgres', 'ta', $nrows);
$job = mt_queue($node, 'postgres', 'ta', 'counter = counter + 1', undef,
	"target_batch_time => '20ms', batch_sleep => '100ms'");
my $done = 0;
my $terminated = 0;
my $last_pid = 0;
for my $round (1 .. 6)
{
	# progress by a new worker (the terminated one may still commit the
	# batch it was running)
	mt_poll($node, 'postgres', qq{SELECT state = 'completed'
		OR (state = 'running' AND worker_pid IS NOT NULL AND worker_pid <> $last_pid
			AND rows_done > $done)
		FROM migration_tools.backfill_progress WHERE job_id = $job});
	my ($state, $wpid);
	($state, $wpid, $done) = split /\|/, $node->safe_psql('postgres',
		"SELECT state, worker_pid, rows_done FROM migration_tools.backfill_progress WHERE job_id = $job");
	last if $state eq 'completed' || $wpid eq '';
	$terminated++
	  if $node->safe_psql('postgres', "SELECT pg_terminate_backend($wpid)") eq 't';
	$last_pid = $wpid;
	job_has_no_worker($job);
}
cmp_ok($terminated, '>=', 2, 'the worker was terminated mid-job more than once');
mt_check_exactly_once($node, 'postgres', 'ta', $job, $nrows,
	'adaptive batches, worker terminated repeatedly');

# Paused mid-job, then an immediate shutdown: the job stays paused after
# the restart (nobody runs it), and completes once resumed.
mt_make_table($node, 'postgres', 'tp', $nrows);
$job = mt_queue($node, 'postgres', 'tp', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job, 1000);
is($node->safe_psql('postgres', "SELECT migration_tools.pause($job)"), 'paused',
	'pause returns paused');
ok(job_has_no_worker($job), 'paused: the worker stops running the job');
$done = mt_job_field($node, 'postgres', $job, 'rows_done');
cmp_ok($done, '<', $nrows, 'paused mid-way');
is($node->safe_psql('postgres', 'SELECT count(*) FROM tp WHERE counter = 1'),
	$done, 'paused: rows_done matches the rows done');
$node->stop('immediate');
$node->start;
is($node->safe_psql('postgres', "SELECT migration_tools.wait($job, '2s')"), 'paused',
	'after an immediate shutdown and restart, the job is still paused');
is(mt_job_field($node, 'postgres', $job, 'rows_done'), $done,
	'a paused job makes no progress');
is($node->safe_psql('postgres', "SELECT migration_tools.resume($job)"), 'queued',
	'resume queues the job again');
mt_check_exactly_once($node, 'postgres', 'tp', $job, $nrows, 'paused, restarted, resumed');

# Cancelled mid-job: what was done stays done; retry goes on from there.
mt_make_table($node, 'postgres', 'tx', $nrows);
$job = mt_queue($node, 'postgres', 'tx', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job, 1000);
is($node->safe_psql('postgres', "SELECT migration_tools.cancel($job)"), 'cancelled',
	'cancel returns cancelled');
is($node->safe_psql('postgres', "SELECT migration_tools.wait($job)"), 'cancelled',
	'wait() returns cancelled');
ok(job_has_no_worker($job), 'cancelled: the worker stops running the job');
$done = mt_job_field($node, 'postgres', $job, 'rows_done');
cmp_ok($done, '<', $nrows, 'cancelled mid-way');
is($node->safe_psql('postgres',
		'SELECT count(*) FILTER (WHERE counter = 1), count(*) FILTER (WHERE counter > 1) FROM tx'),
	"$done|0", 'cancelled: the rows done are kept, none twice');
is($node->safe_psql('postgres', "SELECT migration_tools.retry($job)"), 'queued',
	'retry queues the job again');
mt_check_exactly_once($node, 'postgres', 'tx', $job, $nrows, 'cancelled then retried');

$node->stop;
done_testing();
