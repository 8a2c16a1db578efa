# Backfills run exactly once through crashes: a set clause that is not
# idempotent (counter = counter + 1), under the key strategy, slowed down
# with small batches and a sleep between them, is interrupted mid-job by
# (a) kill -9 of its worker, (b) pg_terminate_backend of its worker,
# (c) an immediate shutdown, a fast shutdown, (d) pg_terminate_backend of
# the launcher, and the launcher and the worker together.
# Nobody calls resume(): the job must go on by itself, complete, and leave
# every row incremented exactly once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 20000;
my $slow = "batch_size => 100, batch_sleep => '20ms', strategy => 'key', max_attempts => 5";
my $launcher_sql =
  "SELECT pid FROM pg_stat_activity WHERE backend_type = 'migration_tools launcher'";

my $node = mt_node('crash');

# (a) kill -9 of the worker: the postmaster reinitializes everything, the
# launcher comes back and finds the job orphaned.
mt_make_table($node, 'postgres', 't_kill9', $nrows);
my $job = mt_queue($node, 'postgres', 't_kill9', 'counter = counter + 1', undef, $slow);
my $pid = mt_running_pid($node, 'postgres', $job, 1000);
cmp_ok(mt_job_field($node, 'postgres', $job, 'rows_done'), '<', $nrows,
	'kill -9: the job is interrupted mid-way');
is(kill('KILL', $pid), 1, 'kill -9 the worker');
mt_check_exactly_once($node, 'postgres', 't_kill9', $job, $nrows, 'kill -9');

# (b) pg_terminate_backend of the worker: the slot is freed and the
# launcher's next sweep starts a worker that takes the job up again.
mt_make_table($node, 'postgres', 't_term', $nrows);
$job = mt_queue($node, 'postgres', 't_term', 'counter = counter + 1', undef, $slow);
$pid = mt_running_pid($node, 'postgres', $job, 1000);
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)"), 't',
	'pg_terminate_backend the worker');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $pid"),
	'the terminated worker is gone');
mt_check_exactly_once($node, 'postgres', 't_term', $job, $nrows,
	'pg_terminate_backend of the worker');

# (c) immediate shutdown mid-job, then start: crash recovery, and the job
# resumes from the checkpoint committed with its last batch.
mt_make_table($node, 'postgres', 't_immediate', $nrows);
$job = mt_queue($node, 'postgres', 't_immediate', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job, 1000);
$node->stop('immediate');
$node->start;
my $after = $node->safe_psql('postgres',
	"SELECT count(*) FROM t_immediate WHERE counter = 1");
cmp_ok($after, '<', $nrows, 'immediate shutdown: the job was interrupted mid-way');
is($node->safe_psql('postgres', "SELECT count(*) FROM t_immediate WHERE counter > 1"),
	'0', 'immediate shutdown: nothing applied twice at restart');
mt_check_exactly_once($node, 'postgres', 't_immediate', $job, $nrows,
	'immediate shutdown');

# A clean (fast) shutdown mid-job and a start, the everyday restart: the
# worker is terminated like the rest, and the job resumes.
mt_make_table($node, 'postgres', 't_fast', $nrows);
$job = mt_queue($node, 'postgres', 't_fast', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job, 1000);
$node->restart;
mt_check_exactly_once($node, 'postgres', 't_fast', $job, $nrows, 'fast shutdown and restart');

# (d) pg_terminate_backend of the launcher mid-job: the worker goes on or
# is started again by the new launcher; either way, exactly once.
mt_make_table($node, 'postgres', 't_launcher', $nrows);
$job = mt_queue($node, 'postgres', 't_launcher', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job, 1000);
my $lpid = $node->safe_psql('postgres', $launcher_sql);
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($lpid)"), 't',
	'pg_terminate_backend the launcher');
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM ($launcher_sql) l WHERE pid <> $lpid"),
	'the launcher is restarted');
mt_check_exactly_once($node, 'postgres', 't_launcher', $job, $nrows,
	'pg_terminate_backend of the launcher');

# Both at once: the worker killed while there is no launcher.
mt_make_table($node, 'postgres', 't_both', $nrows);
$job = mt_queue($node, 'postgres', 't_both', 'counter = counter + 1', undef, $slow);
$pid = mt_running_pid($node, 'postgres', $job, 1000);
$lpid = $node->safe_psql('postgres', $launcher_sql);
$node->safe_psql('postgres',
	"SELECT pg_terminate_backend($lpid), pg_terminate_backend($pid)");
mt_check_exactly_once($node, 'postgres', 't_both', $job, $nrows,
	'launcher and worker terminated together');

# The engine keeps serving: a fresh job after all this completes.
mt_make_table($node, 'postgres', 't_after', 1000);
$job = mt_queue($node, 'postgres', 't_after', 'counter = counter + 1', undef,
	"strategy => 'key'");
mt_check_exactly_once($node, 'postgres', 't_after', $job, 1000, 'a later job');

$node->stop;
done_testing();
