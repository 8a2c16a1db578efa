# Queueing edge cases: a job queued in a transaction that rolls back never
# runs; one queued in a prepared transaction runs once COMMIT PREPARED
# makes it visible; many jobs at once, several on the same table, all
# complete with max_workers = 2, each table's jobs one after the other;
# wait() goes on waiting through the termination of the job's worker and
# can be cancelled; storms of pause/resume and cancel/retry change
# nothing to exactly-once; with a single free background worker slot, jobs of two
# databases take turns.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use MtBackfill;

my $node = mt_node('queue', conf => "max_prepared_transactions = 5\n");

# Rolled back: no job.
mt_make_table($node, 'postgres', 't_rb', 100);
$node->safe_psql('postgres', q{
BEGIN;
SELECT migration_tools.backfill('t_rb', 'counter = counter + 1');
ROLLBACK;
});
is($node->safe_psql('postgres',
		"SELECT count(*) FROM migration_tools.backfill_progress WHERE relation = 't_rb'::regclass"),
	'0', 'a rolled back backfill() leaves no job');

# Prepared: the job exists once committed, and runs.
mt_make_table($node, 'postgres', 't_2pc', 1000);
$node->safe_psql('postgres', q{
BEGIN;
SELECT migration_tools.backfill('t_2pc', 'counter = counter + 1');
PREPARE TRANSACTION 'queue_job';
});
is($node->safe_psql('postgres',
		"SELECT count(*) FROM migration_tools.backfill_progress WHERE relation = 't_2pc'::regclass"),
	'0', 'a prepared backfill() is not visible yet');
$node->safe_psql('postgres', "COMMIT PREPARED 'queue_job'");
my $job = $node->safe_psql('postgres',
	"SELECT job_id FROM migration_tools.backfill_progress WHERE relation = 't_2pc'::regclass");
mt_check_exactly_once($node, 'postgres', 't_2pc', $job, 1000, 'committed prepared job');

# Many jobs at once: ten tables, and three jobs on one more table.
my @jobs;
for my $i (1 .. 10)
{
	mt_make_table($node, 'postgres', "t_many$i", 2000);
}
mt_make_table($node, 'postgres', 't_same', 2000);
for my $i (1 .. 10)
{
	push @jobs, [ "t_many$i", mt_queue($node, 'postgres', "t_many$i", 'counter = counter + 1',
		undef, 'batch_size => 500') ];
}
my @same = map {
	mt_queue($node, 'postgres', 't_same', 'counter = counter + 1', undef, 'batch_size => 500')
} 1 .. 3;
for my $j (@jobs)
{
	is(mt_wait_job($node, 'postgres', $j->[1]), 'completed', "$j->[0]: completed");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $j->[0] WHERE counter <> 1"),
		'0', "$j->[0]: exactly once");
}
is(join(',', map { mt_wait_job($node, 'postgres', $_) } @same),
	'completed,completed,completed', 'three jobs on one table complete');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t_same WHERE counter <> 3'),
	'0', 'three jobs on one table: each applied once');
is($node->safe_psql('postgres', qq{
	SELECT bool_and(a.finished_at <= b.started_at)
	FROM migration_tools.backfill_progress a
	JOIN migration_tools.backfill_progress b ON b.job_id > a.job_id
	WHERE a.job_id IN ($same[0], $same[1], $same[2])
	  AND b.job_id IN ($same[0], $same[1], $same[2])}),
	't', 'jobs on the same table ran one after the other');

# wait() through a terminated worker, and wait() cancelled.
mt_make_table($node, 'postgres', 't_wait', 20000);
$job = mt_queue($node, 'postgres', 't_wait', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '20ms'");
my $waiter = $node->background_psql('postgres');
$waiter->query_until(qr/waiting/, qq{\\echo waiting\nSELECT migration_tools.wait($job);\n});
my $pid = mt_running_pid($node, 'postgres', $job, 1000);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
mt_poll($node, 'postgres', qq{SELECT state = 'completed'
	FROM migration_tools.backfill_progress WHERE job_id = $job});
like($waiter->query('SELECT 1'), qr/^completed\n1$/,
	'wait() returned completed after the worker was terminated and replaced');
$waiter->quit;
is($node->safe_psql('postgres', 'SELECT count(*) FROM t_wait WHERE counter <> 1'),
	'0', 'exactly once');

# wait() is interruptible: a statement timeout cancels it, the job goes on.
mt_make_table($node, 'postgres', 't_cancelwait', 20000);
$job = mt_queue($node, 'postgres', 't_cancelwait', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '20ms'");
mt_running_pid($node, 'postgres', $job, 100);
my ($ret, $stdout, $stderr) = $node->psql('postgres', qq{
SET statement_timeout = '500ms';
SELECT migration_tools.wait($job);
});
like($stderr, qr/canceling statement due to statement timeout/, 'wait() can be cancelled');
mt_check_exactly_once($node, 'postgres', 't_cancelwait', $job, 20000,
	'the job whose waiter was cancelled');

# Control storms while two jobs run: pause/resume forty times, then
# cancel/retry twenty times (calls on a job that has just ended are
# refused, which is fine).  Still exactly once.
mt_make_table($node, 'postgres', 't_storm1', 20000);
mt_make_table($node, 'postgres', 't_storm2', 20000);
my $s1 = mt_queue($node, 'postgres', 't_storm1', 'counter = counter + 1', undef,
	"batch_size => 50, batch_sleep => '30ms'");
my $s2 = mt_queue($node, 'postgres', 't_storm2', 'counter = counter + 1', undef,
	"batch_size => 50, batch_sleep => '30ms'");
mt_running_pid($node, 'postgres', $s1, 100);
for my $i (1 .. 40)
{
	$node->psql('postgres', "SELECT migration_tools.pause($s1), migration_tools.pause($s2)");
	usleep(int(rand(100_000)));
	$node->psql('postgres', "SELECT migration_tools.resume($s1), migration_tools.resume($s2)");
	usleep(int(rand(100_000)));
}
for my $i (1 .. 20)
{
	$node->psql('postgres', "SELECT migration_tools.cancel($s1)");
	usleep(int(rand(50_000)));
	$node->psql('postgres', "SELECT migration_tools.retry($s1)");
	usleep(int(rand(50_000)));
}
mt_check_exactly_once($node, 'postgres', 't_storm1', $s1, 20000, 'pause/resume then cancel/retry storm');
mt_check_exactly_once($node, 'postgres', 't_storm2', $s2, 20000, 'pause/resume storm');

$node->stop;

# Fewer background worker slots than max_workers: the launcher and the
# logical replication launcher take two of max_worker_processes = 3, so one
# worker at a time can start.  Jobs of two databases wait, never fail, and
# both complete.
my $tight = mt_node('tight', conf => "max_worker_processes = 3\nmax_parallel_workers = 0\n");
$tight->safe_psql('postgres', 'CREATE DATABASE other');
$tight->safe_psql('other', 'CREATE EXTENSION migration_tools');
mt_make_table($tight, 'postgres', 't', 3000);
mt_make_table($tight, 'other', 't', 3000);
my $j1 = mt_queue($tight, 'postgres', 't', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '10ms'");
my $j2 = mt_queue($tight, 'other', 't', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '10ms'");
mt_check_exactly_once($tight, 'postgres', 't', $j1, 3000, 'one worker slot, first database');
mt_check_exactly_once($tight, 'other', 't', $j2, 3000, 'one worker slot, second database');
$tight->stop;

done_testing();
