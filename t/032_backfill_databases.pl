# Backfills across databases and through failures: every database with the
# extension is served without configuration, jobs beyond
# migration_tools.max_workers wait in queue, one job per table runs at a
# time, and a job whose table or role is dropped under it fails with a
# clear error while the launcher keeps serving.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 10000;
my $slow = "batch_size => 100, batch_sleep => '20ms', strategy => 'key'";

my $node = mt_node('databases');
# A database created after the server started: served all the same.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION migration_tools');

# Two databases at once, with the default max_workers = 2.
mt_make_table($node, 'postgres', 't', $nrows);
mt_make_table($node, 'other', 't', $nrows);
my $slower = "batch_size => 100, batch_sleep => '60ms', strategy => 'key'";
my $job1 = mt_queue($node, 'postgres', 't', 'counter = counter + 1', undef, $slower);
my $job2 = mt_queue($node, 'other', 't', 'counter = counter + 1', undef, $slower);
ok($node->poll_query_until('postgres', q{
	SELECT count(DISTINCT database) = 2 FROM migration_tools.workers
	WHERE kind = 'worker' AND running = 'backfill'}),
	'jobs of two databases run at the same time');

# Job ids are per database: both are job 1.  Terminate the worker of
# "other": its job must be seen as orphaned and taken up again although a
# live worker runs job 1 of "postgres".
is("$job1|$job2", '1|1', 'the first job of each database has id 1');
my $opid = mt_running_pid($node, 'other', $job2, 100);
$node->safe_psql('postgres', "SELECT pg_terminate_backend($opid)");
ok(mt_poll($node, 'other', qq{SELECT worker_pid <> $opid
	FROM migration_tools.backfill_progress WHERE job_id = $job2}),
	'the job of "other" is taken up by a new worker');
is(mt_job_field($node, 'postgres', $job1, 'state'), 'running',
	'meanwhile job 1 of "postgres" still runs');
mt_check_exactly_once($node, 'postgres', 't', $job1, $nrows, 'database postgres');
mt_check_exactly_once($node, 'other', 't', $job2, $nrows, 'database other');

# One job per table: the second job on the same table waits for the first.
$job1 = mt_queue($node, 'postgres', 't', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job1, 100);
$job2 = mt_queue($node, 'postgres', 't', 'counter = counter + 1', undef, $slow);
is(mt_job_field($node, 'postgres', $job2, 'state'), 'queued',
	'a second job on a busy table waits in queue');
is(mt_wait_job($node, 'postgres', $job1), 'completed', 'first job on the table completes');
is(mt_wait_job($node, 'postgres', $job2), 'completed', 'second job on the table completes');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t WHERE counter <> 3'),
	'0', 'both jobs applied once each, one after the other');

# max_workers = 1: a job in the other database waits in queue.
$node->append_conf('postgresql.conf', 'migration_tools.max_workers = 1');
$node->restart;
$node->safe_psql('postgres', 'UPDATE t SET counter = 0');
$node->safe_psql('other', 'UPDATE t SET counter = 0');
$job1 = mt_queue($node, 'postgres', 't', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'postgres', $job1, 100);
$job2 = mt_queue($node, 'other', 't', 'counter = counter + 1', undef, $slow);
is(mt_job_field($node, 'other', $job2, 'state'), 'queued',
	'max_workers = 1: the job of the other database is queued');
is(mt_job_field($node, 'other', $job2, 'worker_pid IS NULL'), 't',
	'a queued job has no worker');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM migration_tools.workers WHERE kind = 'worker'"),
	'1', 'only one worker runs');
mt_check_exactly_once($node, 'postgres', 't', $job1, $nrows, 'max_workers = 1, first job');
mt_check_exactly_once($node, 'other', 't', $job2, $nrows, 'max_workers = 1, queued job');

# The table is dropped while its job runs: the job fails, clearly.
mt_make_table($node, 'postgres', 't_drop', $nrows);
my $job = mt_queue($node, 'postgres', 't_drop', 'counter = counter + 1', undef,
	"$slow, max_attempts => 1");
mt_running_pid($node, 'postgres', $job, 100);
$node->safe_psql('postgres', 'DROP TABLE t_drop');
is(mt_wait_job($node, 'postgres', $job), 'failed', 'job of a dropped table fails');
like(mt_job_field($node, 'postgres', $job, 'last_error'),
	qr/relation "?public\.t_drop"? (was dropped|does not exist)/,
	'last_error names the table and says it is gone');

# The role that queued a job is dropped while it runs: the job fails.
# The role gets its privileges through membership, so that nothing but
# the job depends on it.
mt_make_table($node, 'postgres', 't_role', $nrows);
$node->safe_psql('postgres', q{
CREATE ROLE writer NOLOGIN;
CREATE ROLE job_owner NOLOGIN IN ROLE writer;
GRANT SELECT, UPDATE ON t_role TO writer;
});
$job = $node->safe_psql('postgres', qq{
SET ROLE job_owner;
SELECT migration_tools.backfill('t_role', 'counter = counter + 1', NULL,
	$slow, max_attempts => 1);
});
mt_running_pid($node, 'postgres', $job, 100);
$node->safe_psql('postgres', 'DROP ROLE job_owner');
is(mt_wait_job($node, 'postgres', $job), 'failed', 'job of a dropped role fails');
like(mt_job_field($node, 'postgres', $job, 'last_error'),
	qr/role with OID \d+ that queued the job was dropped/,
	'last_error says the role was dropped');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t_role WHERE counter > 1'),
	'0', 'no row applied twice before the failure');

# The launcher keeps serving: a later job completes, in both databases.
mt_make_table($node, 'postgres', 't_later', 1000);
$job = mt_queue($node, 'postgres', 't_later', 'counter = counter + 1', undef, "strategy => 'key'");
mt_check_exactly_once($node, 'postgres', 't_later', $job, 1000, 'a later job');
mt_make_table($node, 'other', 't_later', 1000);
$job = mt_queue($node, 'other', 't_later', 'counter = counter + 1', undef, "strategy => 'key'");
mt_check_exactly_once($node, 'other', 't_later', $job, 1000, 'a later job in the other database');

$node->stop;
done_testing();
