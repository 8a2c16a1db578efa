# The worker side of the security model (SPEC section 8), replayed as an
# unprivileged role (mallory) against another (alice):
# - settings a job sets (set_config(..., false): TimeZone,
#   transform_null_equals, default_transaction_read_only) or a scheduled
#   statement sets are not seen by the next job of the same worker, and do
#   not make the worker exit;
# - batch_sleep is bounded; a role runs at most max_workers_per_role jobs
#   at once; jobs that sleep give their slot to other roles' jobs and to an
#   admin's scheduled CREATE INDEX CONCURRENTLY;
# - jobs of a role made NOLOGIN or past its VALID UNTIL fail naming it,
#   also after a superuser's retry(); so do scheduled statements;
# - ddl_log is pruned by the worker after migration_tools.ddl_log_retention.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use MtBackfill;

# One worker: jobs queued together run one after the other in one process.
my $node = mt_node('secworker', conf => "migration_tools.max_workers = 1\n");
$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE mallory LOGIN;
CREATE ROLE ops LOGIN IN ROLE migration_tools_admin;
CREATE TABLE a_t (id int PRIMARY KEY, v int, eq boolean, tz text, tne text, ro text);
INSERT INTO a_t (id) SELECT g FROM generate_series(1, 100) g;
GRANT SELECT, UPDATE ON a_t TO alice;
CREATE TABLE m_t (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO m_t (id) SELECT g FROM generate_series(1, 100) g;
GRANT SELECT, UPDATE ON m_t TO mallory;
});

# What alice's job computed, as one line.
my $alice_sees = q{SELECT count(*) FILTER (WHERE eq) || '|' ||
	count(*) FILTER (WHERE tz = 'Pacific/Kiritimati') || '|' ||
	count(*) FILTER (WHERE tne <> 'off') || '|' ||
	count(*) FILTER (WHERE ro <> 'off') || '|' || count(*) FILTER (WHERE tz IS NOT NULL)
	FROM a_t};
my $alice_set = q{eq = (v = NULL), tz = current_setting('TimeZone'),
	tne = current_setting('transform_null_equals'),
	ro = current_setting('default_transaction_read_only')};

# mallory's job plants settings; alice's job runs next in the same worker.
my ($mjob, $ajob) = split /\n/, $node->safe_psql('postgres', qq{
BEGIN;
SET LOCAL ROLE mallory;
SELECT migration_tools.backfill('m_t', \$\$n = n + (SELECT 1 FROM (SELECT
	set_config('TimeZone', 'Pacific/Kiritimati', false),
	set_config('transform_null_equals', 'on', false)) s)\$\$, batch_size => 10);
SET LOCAL ROLE alice;
SELECT migration_tools.backfill('a_t', \$\$$alice_set\$\$, batch_size => 10);
COMMIT;
});
is(mt_wait_job($node, 'postgres', $mjob), 'completed', 'mallory\'s job completes');
is(mt_wait_job($node, 'postgres', $ajob), 'completed', 'alice\'s job completes');
is($node->safe_psql('postgres', $alice_sees), '0|0|0|0|100',
	'alice\'s later job computes with the defaults: no TimeZone or transform_null_equals of mallory');

# A planted default_transaction_read_only: the worker goes on, both complete.
$node->safe_psql('postgres', 'UPDATE a_t SET eq = NULL, tz = NULL, tne = NULL, ro = NULL');
my $log_offset = -s $node->logfile;
($mjob, $ajob) = split /\n/, $node->safe_psql('postgres', qq{
BEGIN;
SET LOCAL ROLE mallory;
SELECT migration_tools.backfill('m_t', \$\$n = n + (SELECT 1 FROM (SELECT
	set_config('default_transaction_read_only', 'on', false),
	set_config('transaction_read_only', 'on', false)) s)\$\$, batch_size => 10);
SET LOCAL ROLE alice;
SELECT migration_tools.backfill('a_t', \$\$$alice_set\$\$, batch_size => 10);
COMMIT;
});
is(mt_wait_job($node, 'postgres', $mjob), 'completed',
	'a job that sets default_transaction_read_only completes');
is(mt_wait_job($node, 'postgres', $ajob), 'completed', 'alice\'s next job completes');
is($node->safe_psql('postgres', $alice_sees), '0|0|0|0|100',
	'alice\'s job does not run read-only');
unlike(slurp_file($node->logfile, $log_offset),
	qr/migration_tools worker.*exited with exit code 1/,
	'no worker exited with an error');

# A scheduled statement that sets a setting: not seen by the next job.
$node->safe_psql('postgres', 'UPDATE a_t SET eq = NULL, tz = NULL, tne = NULL, ro = NULL');
$ajob = (split /\n/, $node->safe_psql('postgres', qq{
BEGIN;
SELECT migration_tools.apply('1', \$\$CREATE INDEX CONCURRENTLY m_t_n ON m_t (n);
SELECT set_config('TimeZone', 'Pacific/Kiritimati', false);\$\$);
SET LOCAL ROLE alice;
SELECT migration_tools.backfill('a_t', \$\$$alice_set\$\$, batch_size => 10);
COMMIT;
}))[-1];
ok(mt_poll($node, 'postgres', q{SELECT state = 'applied' FROM migration_tools.status WHERE version = '1'}),
	'the scheduled statements ran');
is(mt_wait_job($node, 'postgres', $ajob), 'completed', 'alice\'s job after them completes');
is($node->safe_psql('postgres', $alice_sees), '0|0|0|0|100',
	'a scheduled statement\'s set_config is not seen by the next job');

# batch_sleep is bounded.
my ($ret, $out, $err) = $node->psql('postgres', q{SET ROLE mallory;
	SELECT migration_tools.backfill('m_t', 'n = n + 1', batch_size => 1,
		batch_sleep => '100 years')});
like($err, qr/batch_sleep is longer than migration_tools.max_batch_sleep/,
	'a batch_sleep of 100 years is refused');

# Two workers (the default); mallory queues two slow jobs, each sleeping as
# long as allowed.
$node->append_conf('postgresql.conf', "migration_tools.max_workers = 2\n");
$node->restart;
$node->safe_psql('postgres', q{
CREATE TABLE m_1 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE m_2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO m_1 (id) SELECT g FROM generate_series(1, 1000) g;
INSERT INTO m_2 (id) SELECT g FROM generate_series(1, 1000) g;
GRANT SELECT, UPDATE ON m_1, m_2 TO mallory;
CREATE TABLE a_2 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO a_2 (id) SELECT g FROM generate_series(1, 1000) g;
GRANT SELECT, UPDATE ON a_2 TO alice;
CREATE TABLE ops_t (id int PRIMARY KEY, n int);
ALTER TABLE ops_t OWNER TO ops;
GRANT CREATE ON SCHEMA public TO ops;
});
my @m = map {
	$node->safe_psql('postgres', qq{SET ROLE mallory;
		SELECT migration_tools.backfill('m_$_', 'n = n + 1', batch_size => 1,
			batch_sleep => '10s')})
} (1, 2);
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 1 FROM migration_tools.backfill_progress
	WHERE owner = 'mallory' AND state = 'running' AND rows_done > 0}),
	'one job of mallory runs');
my $most = 0;
for (1 .. 30)
{
	my $n = $node->safe_psql('postgres', q{SELECT count(*) FROM migration_tools.backfill_progress
		WHERE owner = 'mallory' AND state = 'running'});
	$most = $n if $n > $most;
	usleep(100_000);
}
is($most, 1, 'max_workers_per_role = 1: never two jobs of mallory at once');

# The per-role limit raised: both sleep in both slots; alice's job and an
# admin's scheduled CREATE INDEX CONCURRENTLY still run.
$node->safe_psql('postgres', q{ALTER SYSTEM SET migration_tools.max_workers_per_role = 2;
	SELECT pg_reload_conf()});
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 2 FROM migration_tools.backfill_progress
	WHERE owner = 'mallory' AND state = 'running' AND rows_done > 0}),
	'both jobs of mallory run, each sleeping 10 s between batches');
$ajob = $node->safe_psql('postgres', q{SET ROLE alice;
	SELECT migration_tools.backfill('a_2', 'n = n + 1')});
ok(mt_poll($node, 'postgres', qq{SELECT state = 'completed' FROM migration_tools.backfill_progress
	WHERE job_id = $ajob}, 't', 60),
	'alice\'s job runs while mallory\'s sleep');
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 2 FROM migration_tools.backfill_progress
	WHERE owner = 'mallory' AND state IN ('running', 'queued') AND rows_done > 0}),
	'mallory\'s jobs are still there');
$node->safe_psql('postgres', q{SET ROLE ops;
	SELECT migration_tools.apply('2', 'CREATE INDEX CONCURRENTLY ops_t_n ON ops_t (n)')});
ok(mt_poll($node, 'postgres', q{SELECT state = 'applied' FROM migration_tools.status WHERE version = '2'},
	't', 60),
	'an admin\'s scheduled CREATE INDEX CONCURRENTLY runs while mallory\'s jobs sleep')
  or diag($node->safe_psql('postgres', q{SELECT * FROM migration_tools.scheduled_statements;
	SELECT * FROM migration_tools.workers; SELECT job_id, state, next_due, worker_pid, last_error FROM migration_tools.backfill_progress}));
$node->safe_psql('postgres', "SELECT migration_tools.cancel($_)") for @m;

# Jobs that do not sleep hold both slots in this database; a migration's
# scheduled statement queued in another database still gets a slot.
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', q{CREATE EXTENSION migration_tools;
	CREATE TABLE o_t (id int PRIMARY KEY, n int)});
$node->safe_psql('postgres', q{
CREATE TABLE m_3 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
CREATE TABLE m_4 (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
INSERT INTO m_3 (id) SELECT g FROM generate_series(1, 200000) g;
INSERT INTO m_4 (id) SELECT g FROM generate_series(1, 200000) g;
GRANT SELECT, UPDATE ON m_3, m_4 TO mallory;
});
@m = map {
	$node->safe_psql('postgres', qq{SET ROLE mallory;
		SELECT migration_tools.backfill('m_$_', 'n = n + 1', batch_size => 1)})
} (3, 4);
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 2 FROM migration_tools.backfill_progress
	WHERE owner = 'mallory' AND state = 'running' AND rows_done > 0}),
	'two jobs of mallory run without sleeping');
$node->safe_psql('other', q{SELECT migration_tools.apply('1',
	'CREATE INDEX CONCURRENTLY o_t_n ON o_t (n)')});
ok(mt_poll($node, 'other', q{SELECT state = 'applied' FROM migration_tools.status WHERE version = '1'},
	't', 60),
	'a scheduled statement of another database goes before them');
$node->safe_psql('postgres', "SELECT migration_tools.cancel($_)") for @m;

# Disabled roles: NOLOGIN, then VALID UNTIL in the past.
$ajob = $node->safe_psql('postgres', q{SET ROLE alice;
	SELECT migration_tools.backfill('a_2', 'n = n + 1', batch_size => 10,
		batch_sleep => '200ms')});
mt_running_pid($node, 'postgres', $ajob, 10);
$node->safe_psql('postgres', 'ALTER ROLE alice NOLOGIN');
is(mt_wait_job($node, 'postgres', $ajob), 'failed', 'the job of a role made NOLOGIN fails');
like(mt_job_field($node, 'postgres', $ajob, 'last_error'),
	qr/role "alice" that queued the job can no longer log in \(NOLOGIN\)/,
	'last_error names the role and says why');
my $done = mt_job_field($node, 'postgres', $ajob, 'rows_done');
$node->safe_psql('postgres', "SELECT migration_tools.retry($ajob)");
is(mt_wait_job($node, 'postgres', $ajob), 'failed', 'after a superuser\'s retry() it fails again');
is(mt_job_field($node, 'postgres', $ajob, 'rows_done'), $done, 'without a batch');
$node->safe_psql('postgres', 'ALTER ROLE alice LOGIN');

my $mjob2 = $node->safe_psql('postgres', q{SET ROLE mallory;
	SELECT migration_tools.backfill('m_1', 'n = n + 1', batch_size => 10,
		batch_sleep => '200ms')});
mt_running_pid($node, 'postgres', $mjob2, 10);
$node->safe_psql('postgres', "ALTER ROLE mallory VALID UNTIL '2001-01-01'");
is(mt_wait_job($node, 'postgres', $mjob2), 'failed', 'the job of a role past its VALID UNTIL fails');
like(mt_job_field($node, 'postgres', $mjob2, 'last_error'),
	qr/role "mallory" that queued the job can no longer log in \(its VALID UNTIL .* has passed\)/,
	'last_error names the role and says its VALID UNTIL passed');

# A scheduled statement of an admin disabled before it runs.
$node->safe_psql('postgres', q{
BEGIN;
SET LOCAL ROLE ops;
SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY ops_t_id ON ops_t (id, n)');
RESET ROLE;
ALTER ROLE ops NOLOGIN;
COMMIT;
});
ok(mt_poll($node, 'postgres', q{SELECT state = 'failed' FROM migration_tools.status WHERE version = '3'}),
	'the scheduled statement of a role made NOLOGIN fails');
like($node->safe_psql('postgres', q{SELECT error FROM migration_tools.status WHERE version = '3'}),
	qr/role "ops" that scheduled this statement can no longer log in \(NOLOGIN\)/,
	'its error names the role');
is($node->safe_psql('postgres', q{SELECT count(*) FROM pg_class WHERE relname = 'ops_t_id'}),
	'0', 'the index was not built');

# ddl_log: rows older than the retention are pruned by the worker.
$node->safe_psql('postgres', q{
INSERT INTO migration_tools.ddl_log (logged_at, event, command_tag, session_user_name, current_user_name)
SELECT now() - interval '31 days', 'ddl_command_end', 'CREATE TABLE', 'mallory', 'mallory'
  FROM generate_series(1, 25000);
CREATE TABLE recent_ddl (a int);
});
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 0 FROM migration_tools.ddl_log
	WHERE logged_at < now() - interval '30 days'}, 't', 60),
	'ddl_log rows older than 30 days are pruned');
is($node->safe_psql('postgres', q{SELECT count(*) > 0 FROM migration_tools.ddl_log
	WHERE object_identity = 'public.recent_ddl'}), 't', 'recent rows stay');

$node->stop;
done_testing();
