# A deployment in flight through an immediate restart and then
# a failover.  On the primary: a backfill (key strategy, a set clause that
# is not idempotent) runs, a second backfill of the same table waits in
# the queue behind it (one job per table), and a scheduled CREATE INDEX
# CONCURRENTLY migration of another table is held up by an application
# transaction.  The primary is stopped with -m immediate and started; later
# it is stopped with -m immediate for good and the standby is promoted.
# Checked: nobody acts, and on the new primary both jobs complete, each row
# changed exactly once by each; the build is applied with a valid index
# and no INVALID one left; the history and progress views agree.
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

my $primary = mt_node('failover_primary', allows_streaming => 1,
	conf => "migration_tools.scheduled_retry_delay = '200ms'\n");
mt_make_table($primary, 'postgres', 't', $nrows);
$primary->safe_psql('postgres', q{
CREATE TABLE accounts (id int PRIMARY KEY, email text);
INSERT INTO accounts SELECT g, 'a' || g FROM generate_series(1, 20000) g;
});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('failover_standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;

my $job = mt_queue($primary, 'postgres', 't', 'counter = counter + 1', undef, $slow);
my $job2 = mt_queue($primary, 'postgres', 't', q{payload = payload || 'y'}, undef, $slow);
mt_running_pid($primary, 'postgres', $job, 500);
is(mt_job_field($primary, 'postgres', $job2, 'state'), 'queued',
	'the second job of the same table waits in the queue');

# 1. Immediate stop mid-job, then start: the job goes on by itself.
$primary->stop('immediate');
$primary->start;
my $done = $primary->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter = 1');
cmp_ok($done, '<', $nrows, "the job was interrupted mid-way ($done rows done)");
is($primary->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter > 1'), '0',
	'nothing applied twice by the crash');
ok(mt_poll($primary, 'postgres', qq{SELECT rows_done > $done AND state = 'running'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'after the restart the job runs again without anyone acting');

# 2. A concurrent build held up by an application transaction that wrote
# to accounts (the build waits for it).
my $app = $primary->background_psql('postgres', on_error_stop => 0);
$app->query_safe(q{BEGIN; UPDATE accounts SET email = email WHERE id = 1;});
is($primary->safe_psql('postgres', q{SELECT migration_tools.apply('10',
		'CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)',
		'DROP INDEX CONCURRENTLY accounts_email')}),
	'scheduled', 'the build is scheduled');
ok(mt_poll($primary, 'postgres', q{SELECT state = 'running'
	FROM migration_tools.scheduled_statements WHERE version = '10'}),
	'the worker runs the build (waiting for the application)');
is($primary->safe_psql('postgres',
		"SELECT state FROM migration_tools.backfill_progress WHERE job_id = $job2"),
	'queued', 'the second job is still queued');

# 3. The primary dies; the standby takes over.
$primary->wait_for_catchup($standby, 'replay', $primary->lsn('insert'));
$primary->stop('immediate');
eval { $app->quit; };
is($standby->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter > 1'), '0',
	'nothing applied twice in what was replicated');
$standby->promote;
$standby->poll_query_until('postgres', 'SELECT NOT pg_is_in_recovery()')
  or die 'standby not promoted';

mt_check_exactly_once($standby, 'postgres', 't', $job, $nrows, 'the first job after promotion');
is(mt_wait_job($standby, 'postgres', $job2), 'completed', 'the queued job completes on the new primary');
is($standby->safe_psql('postgres', q{SELECT count(*) FROM t WHERE payload <> 'xy'}), '0',
	'the queued job changed every row exactly once');
is(mt_job_field($standby, 'postgres', $job2, 'rows_done'), $nrows, 'its rows_done is the row count');

ok(mt_poll($standby, 'postgres',
		q{SELECT state = 'applied' FROM migration_tools.migrations WHERE version = '10'}),
	'the build is applied on the new primary');
is($standby->safe_psql('postgres',
		q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'accounts_email'::regclass}),
	't', 'its index is valid');
is($standby->safe_psql('postgres',
		q{SELECT count(*) FROM pg_index WHERE indrelid = 'accounts'::regclass AND NOT indisvalid}),
	'0', 'no INVALID index left');
is($standby->safe_psql('postgres',
		q{SELECT state || ' ' || checksum_ok || ' ' || pending_statements FROM migration_tools.status
		  WHERE version = '10'}),
	'applied true 0', 'status: applied, checksum ok, nothing pending');

$standby->stop;
done_testing();
