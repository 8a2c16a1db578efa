# Backfills and streaming replication: nothing runs on a standby, and
# backfill() refuses there; when the primary dies mid-job and the standby
# is promoted, the job resumes on the new primary by itself and completes
# exactly once.  The standby has only what was replicated, but a batch and
# its checkpoint commit together, so rows and checkpoint stay consistent.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 20000;
my $slow = "batch_size => 100, batch_sleep => '30ms', strategy => 'key'";

my $primary = mt_node('primary', allows_streaming => 1,
	conf => "migration_tools.max_replication_lag = '256kB'\n");
mt_make_table($primary, 'postgres', 't', $nrows);
mt_make_table($primary, 'postgres', 't_paused', 1000);

$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

my $job = mt_queue($primary, 'postgres', 't', 'counter = counter + 1', undef, $slow);
mt_running_pid($primary, 'postgres', $job, 1000);

# Replay paused on the standby: the lag grows past max_replication_lag and
# the job holds back until replay goes on.
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_pause()');
ok(mt_poll($primary, 'postgres', qq{SELECT throttled_by = 'replication_lag'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'the job is throttled by replication lag');
# Let a batch that was let through before replay paused finish (the flag
# may come from an earlier, passing lag), then nothing may move.
$primary->safe_psql('postgres', "SELECT migration_tools.wait($job, '1500ms')");
my $held = mt_job_field($primary, 'postgres', $job, 'rows_done');
is($primary->safe_psql('postgres', "SELECT migration_tools.wait($job, '2s')"), 'running',
	'a throttled job is still running');
is(mt_job_field($primary, 'postgres', $job, 'rows_done'), $held,
	'no batch runs while the standby lags');
$standby->safe_psql('postgres', 'SELECT pg_wal_replay_resume()');
ok(mt_poll($primary, 'postgres', qq{SELECT rows_done > $held AND throttled_by IS NULL
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'the job goes on once the standby catches up');

# Let the standby see the job running and some batches done.
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
ok($standby->safe_psql('postgres', 'SELECT pg_is_in_recovery()') eq 't',
	'the standby is in recovery');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM migration_tools.workers'),
	'0', 'no migration_tools launcher or worker on the standby');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'migration_tools%'"),
	'0', 'no migration_tools process on the standby');
cmp_ok($standby->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter = 1'),
	'>', 0, 'the standby has replicated batches');

my ($ret, $stdout, $stderr) = $standby->psql('postgres',
	"SELECT migration_tools.backfill('t', 'counter = counter + 1')");
isnt($ret, 0, 'backfill() fails on a standby');
like($stderr, qr/cannot queue a backfill job during recovery/,
	'the error says the server is in recovery');

# A second job, paused before the failover: it must stay paused there.
my $pjob = $primary->safe_psql('postgres', q{
BEGIN;
SELECT migration_tools.backfill('t_paused', 'counter = counter + 1', batch_size => 100);
SELECT migration_tools.pause(currval('migration_tools.backfill_jobs_job_id_seq'));
COMMIT;
});
($pjob) = split /\n/, $pjob;
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));

# The primary dies mid-job; the standby takes over.
$primary->stop('immediate');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter > 1'),
	'0', 'nothing applied twice in what was replicated');
cmp_ok($standby->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter = 1'),
	'<', $nrows, 'the primary stopped mid-job');
is($standby->safe_psql('postgres',
		"SELECT state FROM migration_tools.backfill_progress WHERE job_id = $job"),
	'running', 'the standby sees the job running (orphaned once promoted)');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'standby not promoted';

mt_check_exactly_once($standby, 'postgres', 't', $job, $nrows,
	'after promotion');

is($standby->safe_psql('postgres', "SELECT migration_tools.wait($pjob, '2s')"), 'paused',
	'a job paused on the old primary stays paused after promotion');
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t_paused WHERE counter <> 0'), '0',
	'and nothing of it ran');
is($standby->safe_psql('postgres', "SELECT migration_tools.resume($pjob)"), 'queued',
	'resumed on the new primary');
mt_check_exactly_once($standby, 'postgres', 't_paused', $pjob, 1000, 'the paused job, resumed');

# The new primary keeps serving new jobs.
mt_make_table($standby, 'postgres', 't2', 500);
$job = mt_queue($standby, 'postgres', 't2', 'counter = counter + 1', undef, "strategy => 'key'");
mt_check_exactly_once($standby, 'postgres', 't2', $job, 500, 'a job queued after promotion');

$standby->stop;
done_testing();
