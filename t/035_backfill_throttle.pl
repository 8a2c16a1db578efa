# Adaptive batches and throttling, each ending exactly once: a batch that
# hits its statement timeout is halved and retried; a batch that waits on
# a row lock longer than migration_tools.batch_lock_timeout is halved and
# retried until the lock goes; sessions that wait on a batch's locks make
# the next batch smaller; a row the set clause fails on fails the job
# after max_attempts, and retry() finishes it once the row is fixed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('throttle');
$node->safe_psql('postgres', q{
CREATE FUNCTION slow_one(seconds float8) RETURNS int LANGUAGE sql VOLATILE
	AS $$ SELECT 1 FROM pg_sleep(seconds) $$;
});

# Statement timeout: 100 rows at 20 ms each take 2 s, over the 1 s timeout
# of a batch (10 x target_batch_time, at least 1 s).
mt_make_table($node, 'postgres', 't_slow', 100);
my $job = mt_queue($node, 'postgres', 't_slow', 'counter = counter + slow_one(0.02)', undef,
	"batch_size => 100, target_batch_time => '100ms', max_attempts => 10");
mt_check_exactly_once($node, 'postgres', 't_slow', $job, 100, 'statement timeouts');
is($node->safe_psql('postgres', qq{
	SELECT count(*) > 0 FROM migration_tools.backfill_batch_history
	WHERE job_id = $job AND attempt > 0 AND batch_size = 100
	  AND error ~ 'statement timeout'}),
	't', 'the batch of 100 rows hit its statement timeout');
is($node->safe_psql('postgres', qq{
	SELECT max(batch_size) < 100 FROM migration_tools.backfill_batch_history
	WHERE job_id = $job AND attempt = 0}),
	't', 'the batches that committed were halved');

# A row lock held longer than the batch lock timeout (1 s).
mt_make_table($node, 'postgres', 't_rowlock', 2000);
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN');
$locker->query_safe('SELECT id FROM t_rowlock WHERE id = 500 FOR UPDATE');
$job = mt_queue($node, 'postgres', 't_rowlock', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '10ms', max_attempts => 100");
ok(mt_poll($node, 'postgres', qq{SELECT attempts >= 2 AND state = 'running'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'the batch that meets the locked row fails and is retried');
like(mt_job_field($node, 'postgres', $job, 'last_error'), qr/lock timeout/,
	'last_error tells the lock timeout');
cmp_ok(mt_job_field($node, 'postgres', $job, 'rows_done'), '<', 500,
	'the job does not get past the locked row');
$locker->query_safe('COMMIT');
$locker->quit;
mt_check_exactly_once($node, 'postgres', 't_rowlock', $job, 2000, 'row lock released');
is(mt_job_field($node, 'postgres', $job, 'attempts'), '0',
	'attempts count from 0 again after a success');

# Sessions waiting on a batch: LOCK TABLE ... IN SHARE MODE waits for the
# batch's ROW EXCLUSIVE lock; the worker sees the waiter before it commits,
# counts it and halves the next batch.
mt_make_table($node, 'postgres', 't_waiters', 5000);
$job = mt_queue($node, 'postgres', 't_waiters', 'counter = counter + slow_one(0.0002)', undef,
	"batch_size => 1000");
mt_running_pid($node, 'postgres', $job, 0);
ok(mt_poll($node, 'postgres', qq{
	BEGIN; LOCK TABLE t_waiters IN SHARE MODE; COMMIT;
	SELECT lock_waiters_caused > 0 OR state <> 'running'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'a session waits on a batch');
mt_check_exactly_once($node, 'postgres', 't_waiters', $job, 5000, 'lock waiters');
cmp_ok(mt_job_field($node, 'postgres', $job, 'lock_waiters_caused'), '>', 0,
	'the job counted the sessions that waited on it');
is($node->safe_psql('postgres', qq{
	SELECT count(*) > 0 FROM migration_tools.backfill_batch_history w
	JOIN migration_tools.backfill_batch_history n
	  ON n.job_id = w.job_id AND n.batch_no = w.batch_no + 1 AND n.attempt = 0
	WHERE w.job_id = $job AND w.attempt = 0 AND w.lock_waiters_caused > 0
	  AND n.batch_size < w.batch_size}),
	't', 'the batch after one that made others wait is smaller');

# After a batch that made sessions wait, the size grows back by a quarter
# per batch (for 5 s), not double: doubling went straight back to a size
# that made them wait.
mt_make_table($node, 'postgres', 't_regrow', 30000);
$job = mt_queue($node, 'postgres', 't_regrow', 'counter = counter + slow_one(0.0001)', undef,
	"batch_size => 2000");
mt_running_pid($node, 'postgres', $job, 0);
ok(mt_poll($node, 'postgres', qq{
	BEGIN; LOCK TABLE t_regrow IN SHARE MODE; COMMIT;
	SELECT lock_waiters_caused > 0 OR state <> 'running'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'a session waits on a batch of the regrowing job');
mt_check_exactly_once($node, 'postgres', 't_regrow', $job, 30000, 'regrowth');
is($node->safe_psql('postgres', qq{
	WITH b AS (
		SELECT batch_no, batch_size, lock_waiters_caused, finished_at
		FROM migration_tools.backfill_batch_history WHERE job_id = $job AND attempt = 0),
	pairs AS (
		SELECT a.batch_size AS before, n.batch_size AS after
		FROM b a JOIN b n ON n.batch_no = a.batch_no + 1
		WHERE a.lock_waiters_caused = 0
		  AND EXISTS (SELECT FROM b w WHERE w.lock_waiters_caused > 0
		              AND w.batch_no < a.batch_no
		              AND n.finished_at - w.finished_at < interval '4 s'))
	SELECT count(*) > 0, count(*) FILTER (WHERE after > before * 1.25 + 1)
	FROM pairs}),
	't|0', 'after a batch that made others wait, no batch grows by more than a quarter');

# A row the set clause fails on: the batch holding it fails max_attempts
# times (no halving: not a timeout), the job fails with that error, the
# batches before it stay done; once the row is fixed, retry() goes on from
# the checkpoint and every row ends up incremented once.
$node->safe_psql('postgres', q{
CREATE TABLE t_bad (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0,
                    divisor int NOT NULL DEFAULT 1);
INSERT INTO t_bad (id) SELECT g FROM generate_series(1, 3000) g;
UPDATE t_bad SET divisor = 0 WHERE id = 1550;
});
$job = mt_queue($node, 'postgres', 't_bad', 'counter = counter + 1 / divisor', undef,
	"batch_size => 100, max_attempts => 3");
is(mt_wait_job($node, 'postgres', $job), 'failed', 'a job failing on one row fails');
like(mt_job_field($node, 'postgres', $job, 'last_error'), qr/division by zero/,
	'last_error is the row\'s error');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE attempt > 0), min(batch_size) FILTER (WHERE attempt > 0)
	FROM migration_tools.backfill_batch_history WHERE job_id = $job}),
	'3|100', 'three attempts of the same batch, not halved');
is($node->safe_psql('postgres', qq{
	SELECT count(*) FILTER (WHERE counter = 1) = (SELECT rows_done FROM migration_tools.backfill_progress WHERE job_id = $job),
	       count(*) FILTER (WHERE counter = 1 AND id >= 1550), count(*) FILTER (WHERE counter > 1)
	FROM t_bad}),
	't|0|0', 'the batches before the bad row are done, none after, none twice');
$node->safe_psql('postgres', 'UPDATE t_bad SET divisor = 1 WHERE id = 1550');
is($node->safe_psql('postgres', "SELECT migration_tools.retry($job)"), 'queued', 'retry');
mt_check_exactly_once($node, 'postgres', 't_bad', $job, 3000, 'fixed and retried');
is(mt_job_field($node, 'postgres', $job, 'last_error IS NULL'), 't',
	'retry cleared last_error');

$node->stop;
done_testing();
