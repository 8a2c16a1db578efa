# A batch that takes its worker down every time (here: the
# worker is killed -9 each time it is inside the batch, as the OOM killer
# would kill a worker whose batch eats the memory, or a batch that crashes
# the server) must not restart the server forever.  The job is taken up
# after each crash, from its checkpoint; after 5 take-overs in a row
# without a committed batch it fails, with a last_error that says so.
# Nothing was applied twice, retry() takes it up from the checkpoint and,
# once the cause is gone, completes exactly once.  Kills with progress in
# between (t/030_backfill_crash.pl) never fail a job.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('backfill_crashloop');

mt_make_table($node, 'postgres', 'cl', 2000);
$node->safe_psql('postgres', q{
CREATE TABLE gate (open boolean NOT NULL);
INSERT INTO gate VALUES (false);
CREATE FUNCTION gate_wait() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	WHILE NOT (SELECT open FROM gate) LOOP
		PERFORM pg_sleep(0.02);
	END LOOP;
	RETURN 1;
END $$;
});

# 500 rows go through, then every batch waits at the gate
my $job = mt_queue($node, 'postgres', 'cl',
	'counter = counter + CASE WHEN id <= 500 THEN 1 ELSE gate_wait() END', undef,
	"batch_size => 100, target_batch_time => '10s'");

my $kills = 0;
my $last_pid = 0;
for (1 .. 10)
{
	# the job's worker waits at the gate, or the job has failed
	ok(mt_poll($node, 'postgres', qq{
		SELECT p.state = 'failed' OR EXISTS (SELECT FROM pg_stat_activity a
			WHERE a.pid = p.worker_pid AND a.pid <> $last_pid
			  AND a.wait_event = 'PgSleep')
		FROM migration_tools.backfill_progress p WHERE p.job_id = $job}),
		"round $_: the worker is stuck in its batch, or the job failed");
	my ($state, $pid) = split /\|/, $node->safe_psql('postgres',
		"SELECT state, worker_pid FROM migration_tools.backfill_progress WHERE job_id = $job");
	last if $state eq 'failed';
	# flush the WAL of the batches committed so far (they commit
	# asynchronously): the crash must not take them back.  A synchronous
	# commit that wrote WAL flushes everything before it.
	$node->safe_psql('postgres', 'UPDATE gate SET open = false');
	$kills++ if kill('KILL', $pid);
	$last_pid = $pid;
}
is($kills, 6, 'the job failed after its sixth worker was killed (5 take-overs without a batch)');
like(mt_job_field($node, 'postgres', $job, 'last_error'),
	qr/the workers running this job stopped 5 times in a row before committing a batch/,
	'last_error says why');
is($node->safe_psql('postgres', qq{SELECT rows_done || '/' ||
	(SELECT count(*) FROM cl WHERE counter = 1) || '/' ||
	(SELECT count(*) FROM cl WHERE counter > 1)
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'500/500/0', 'the batches before the trouble stay done, nothing twice');
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 0 FROM migration_tools.worker_processes()
	WHERE kind = 'worker'}), 'no worker runs it any more');

# the cause removed: retry goes on from the checkpoint
$node->safe_psql('postgres', 'UPDATE gate SET open = true');
is($node->safe_psql('postgres', "SELECT migration_tools.retry($job)"), 'queued', 'retry');
mt_check_exactly_once($node, 'postgres', 'cl', $job, 2000, 'after retry');

$node->stop;
done_testing();
