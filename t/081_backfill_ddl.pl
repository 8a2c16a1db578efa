# DDL on a table while a backfill walks it, as it happens on
# a live server (another team's migration, a DBA's maintenance).  Each job
# must either complete with every row changed exactly once, or fail with
# a clear last_error; never apply its set clause twice, never leave a
# worker restarting in a loop.
#
# Key strategy, `counter = counter + 1` (not idempotent):
#  - ADD COLUMN with a default, then ALTER COLUMN TYPE of the key itself
#    (a table rewrite, committed while the next batch waits for it: that
#    batch must not look at the table with a snapshot from before, which
#    sees the rewritten table empty): completes exactly once;
#  - TRUNCATE and new rows, the same way: the rows after the checkpoint
#    are done, once;
#  - the primary key replaced by another one, and then dropped: the job
#    keeps walking the columns it started with, completes exactly once;
#  - CREATE INDEX CONCURRENTLY: completes, the index is valid;
#  - DROP COLUMN of a column the set clause assigns: fails with an error
#    naming the column, the rows done before stay done (once), and the
#    worker does not come back for it;
#  - a session holding ACCESS EXCLUSIVE on the table for a few seconds
#    (a long rewrite): the job waits and completes.
# ctid strategy (idempotent set clause, a trigger counts the updates of
# each row):
#  - CLUSTER and ALTER COLUMN TYPE of the assigned column (rewrites: every
#    row gets a new ctid, rows not done yet land in ranges already walked);
#  - a trigger added mid-job that updates other rows of the table;
#  - TRUNCATE and new rows.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 5000;
my $slow = "batch_size => 50, batch_sleep => '20ms'";
my $node = mt_node('backfill_ddl');

# The job runs, is past $min rows and far from done.
sub mid_job
{
	my ($job, $min) = @_;
	mt_running_pid($node, 'postgres', $job, $min);
	return;
}

# The job was still running (not ended) when we looked.
sub still_running
{
	my ($job, $what) = @_;
	is($node->safe_psql('postgres',
			"SELECT state FROM migration_tools.backfill_progress WHERE job_id = $job"),
		'running', "$what: the DDL happened while the job ran");
}

# The job's worker waits for a lock on $table.
sub worker_waits_for
{
	my ($job, $table) = @_;
	return mt_poll($node, 'postgres', qq{SELECT EXISTS (SELECT FROM pg_locks l
		JOIN migration_tools.backfill_progress p ON l.pid = p.worker_pid
		WHERE p.job_id = $job AND NOT l.granted AND l.relation = '$table'::regclass)});
}

# --- key: ADD COLUMN, then the key column's type changed (rewrite) ---
mt_make_table($node, 'postgres', 'k_alter', $nrows);
my $job = mt_queue($node, 'postgres', 'k_alter', 'counter = counter + 1', undef, $slow);
mid_job($job, 500);
$node->safe_psql('postgres', q{ALTER TABLE k_alter ADD COLUMN c2 int NOT NULL DEFAULT 7});
still_running($job, 'key ADD COLUMN');
mid_job($job, 1500);
# the rewrite commits while the job's next batch waits for the table: that
# batch must not read the table with a snapshot taken before (it would see
# it empty and end the job there)
my $ddl = $node->background_psql('postgres');
$ddl->query_safe('BEGIN; ALTER TABLE k_alter ALTER COLUMN id TYPE bigint;');
ok(worker_waits_for($job, 'k_alter'), 'key ALTER TYPE: the next batch waits for the rewrite');
$ddl->query_safe('COMMIT');
$ddl->quit;
still_running($job, 'key ALTER COLUMN id TYPE bigint');
mt_check_exactly_once($node, 'postgres', 'k_alter', $job, $nrows,
	'key, ADD COLUMN and the key retyped');

# --- key: TRUNCATE and new rows, committed while a batch waits ---
mt_make_table($node, 'postgres', 'k_tr', $nrows);
$job = mt_queue($node, 'postgres', 'k_tr', 'counter = counter + 1', undef, $slow);
mid_job($job, 500);
$ddl = $node->background_psql('postgres');
$ddl->query_safe("BEGIN; TRUNCATE k_tr; INSERT INTO k_tr (id) SELECT g FROM generate_series(1, $nrows) g;");
ok(worker_waits_for($job, 'k_tr'), 'key TRUNCATE: the next batch waits for it');
my $cp = $node->safe_psql('postgres',
	"SELECT last_key[1] FROM migration_tools.backfill_jobs WHERE job_id = $job");
$ddl->query_safe('COMMIT');
$ddl->quit;
is(mt_wait_job($node, 'postgres', $job), 'completed', 'key TRUNCATE: completes');
is($node->safe_psql('postgres', qq{SELECT count(*) FILTER (WHERE counter = 1) = $nrows - $cp
	AND count(*) FILTER (WHERE counter = 1 AND id <= $cp) = 0
	AND count(*) FILTER (WHERE counter NOT IN (0, 1)) = 0 FROM k_tr}),
	't', 'key TRUNCATE: the new rows after the checkpoint are done once, those before it not');

# --- key: the primary key replaced by another, then dropped ---
mt_make_table($node, 'postgres', 'k_pk', $nrows);
$node->safe_psql('postgres', q{
ALTER TABLE k_pk ADD COLUMN alt int;
UPDATE k_pk SET alt = -id;
ALTER TABLE k_pk ALTER COLUMN alt SET NOT NULL;
CREATE UNIQUE INDEX k_pk_alt ON k_pk (alt);
VACUUM ANALYZE k_pk;
});
$job = mt_queue($node, 'postgres', 'k_pk', 'counter = counter + 1', undef, $slow);
mid_job($job, 500);
$node->safe_psql('postgres', q{
ALTER TABLE k_pk DROP CONSTRAINT k_pk_pkey,
	ADD CONSTRAINT k_pk_alt_pkey PRIMARY KEY USING INDEX k_pk_alt});
still_running($job, 'key, primary key replaced');
mid_job($job, 1500);
$node->safe_psql('postgres', q{ALTER TABLE k_pk DROP CONSTRAINT k_pk_alt_pkey});
still_running($job, 'key, primary key dropped');
mt_check_exactly_once($node, 'postgres', 'k_pk', $job, $nrows,
	'key, primary key replaced then dropped');

# --- key: CREATE INDEX CONCURRENTLY mid-job ---
mt_make_table($node, 'postgres', 'k_cic', $nrows);
$job = mt_queue($node, 'postgres', 'k_cic', 'counter = counter + 1', undef, $slow);
mid_job($job, 500);
$node->safe_psql('postgres', q{CREATE INDEX CONCURRENTLY k_cic_counter ON k_cic (counter)});
still_running($job, 'key CREATE INDEX CONCURRENTLY');
mt_check_exactly_once($node, 'postgres', 'k_cic', $job, $nrows,
	'key, CREATE INDEX CONCURRENTLY');
is($node->safe_psql('postgres', q{SELECT indisvalid FROM pg_index
	WHERE indexrelid = 'k_cic_counter'::regclass}), 't', 'the concurrent index is valid');

# --- key: DROP COLUMN of a column the set clause assigns ---
mt_make_table($node, 'postgres', 'k_drop', $nrows);
$node->safe_psql('postgres', q{ALTER TABLE k_drop ADD COLUMN extra int NOT NULL DEFAULT 0});
$job = mt_queue($node, 'postgres', 'k_drop', 'counter = counter + 1, extra = extra + 1',
	undef, "$slow, max_attempts => 3");
mid_job($job, 500);
$node->safe_psql('postgres', q{ALTER TABLE k_drop DROP COLUMN extra});
is(mt_wait_job($node, 'postgres', $job), 'failed', 'DROP COLUMN: the job fails');
like(mt_job_field($node, 'postgres', $job, 'last_error'), qr/column "extra"/,
	'DROP COLUMN: last_error names the column');
is($node->safe_psql('postgres', qq{
	SELECT (SELECT count(*) FROM k_drop WHERE counter = 1) = rows_done
	   AND (SELECT count(*) FROM k_drop WHERE counter NOT IN (0, 1)) = 0
	   AND rows_done >= 500 AND rows_done < $nrows
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	't', 'DROP COLUMN: the rows done before stay done, once');
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 0 FROM migration_tools.worker_processes()
	WHERE kind = 'worker'}), 'DROP COLUMN: the worker leaves');
is($node->safe_psql('postgres', qq{SELECT attempts FROM migration_tools.backfill_progress
	WHERE job_id = $job}), '3', 'DROP COLUMN: max_attempts attempts, no more');
# retry after the column is back: goes on from the checkpoint
$node->safe_psql('postgres', q{ALTER TABLE k_drop ADD COLUMN extra int NOT NULL DEFAULT 0});
$node->safe_psql('postgres', "SELECT migration_tools.retry($job)");
mt_check_exactly_once($node, 'postgres', 'k_drop', $job, $nrows,
	'DROP COLUMN, column back, retry');

# --- key: ACCESS EXCLUSIVE held for a while (a long table rewrite) ---
# With max_attempts => 2 a job that counted each lock timeout as a failed
# attempt would fail after two; a table lock is waited for, like an UPDATE
# waits, and shown.
mt_make_table($node, 'postgres', 'k_lock', $nrows);
$job = mt_queue($node, 'postgres', 'k_lock', 'counter = counter + 1', undef,
	"$slow, max_attempts => 2");
mid_job($job, 500);
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE k_lock IN ACCESS EXCLUSIVE MODE;');
my $locker_pid = $locker->query_safe('SELECT pg_backend_pid()');
$locker_pid =~ s/\s+//g;
ok(mt_poll($node, 'postgres', qq{SELECT state = 'running' AND throttled_by = 'table_lock'
	AND lock_waits_suffered >= 4 AND attempts = 0
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'long table lock: the job waits, shown as throttled_by table_lock, no attempt used');
like(mt_job_field($node, 'postgres', $job, 'last_error'),
	qr/lock timeout: waiting for a lock on the table held by process $locker_pid \(AccessExclusiveLock\)/,
	'long table lock: last_error names the holder');
$locker->query_safe('COMMIT');
$locker->quit;
mt_check_exactly_once($node, 'postgres', 'k_lock', $job, $nrows,
	'key, ACCESS EXCLUSIVE held through several lock timeouts');
is(mt_job_field($node, 'postgres', $job, 'throttled_by'), '',
	'long table lock: throttled_by cleared');

# --- ctid: CLUSTER and a rewrite of the assigned column's type ---
$node->safe_psql('postgres', qq{
CREATE FUNCTION hit() RETURNS trigger LANGUAGE plpgsql AS
	\$\$ BEGIN NEW.hits := OLD.hits + 1; RETURN NEW; END \$\$;
CREATE TABLE c_rw (id int NOT NULL, v int, hits int NOT NULL DEFAULT 0, pad text NOT NULL)
	WITH (fillfactor = 100);
CREATE INDEX c_rw_id ON c_rw (id);
CREATE TRIGGER c_rw_hit BEFORE UPDATE ON c_rw FOR EACH ROW EXECUTE FUNCTION hit();
INSERT INTO c_rw (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $nrows) g ORDER BY random();
ANALYZE c_rw;
});
$job = mt_queue($node, 'postgres', 'c_rw', 'v = id * 2', undef, "$slow, strategy => 'ctid'");
mid_job($job, 500);
$node->safe_psql('postgres', 'CLUSTER c_rw USING c_rw_id');
still_running($job, 'ctid CLUSTER');
mid_job($job, 1500);
$node->safe_psql('postgres', 'ALTER TABLE c_rw ALTER COLUMN v TYPE bigint');
still_running($job, 'ctid ALTER COLUMN v TYPE bigint');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid rewrites: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM c_rw}),
	"0|0|$nrows", 'ctid rewrites: every row updated exactly once');

# --- ctid: a trigger added mid-job updates other rows ---
$node->safe_psql('postgres', qq{
CREATE TABLE c_trg (id int NOT NULL, v int, touched int NOT NULL DEFAULT 0,
	hits int NOT NULL DEFAULT 0, pad text NOT NULL) WITH (fillfactor = 100);
CREATE INDEX c_trg_id ON c_trg (id);
CREATE TRIGGER c_trg_hit BEFORE UPDATE OF v ON c_trg FOR EACH ROW EXECUTE FUNCTION hit();
INSERT INTO c_trg (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $nrows) g;
ANALYZE c_trg;
CREATE FUNCTION touch_other() RETURNS trigger LANGUAGE plpgsql AS
	\$\$ BEGIN
		UPDATE c_trg SET touched = touched + 1 WHERE id = $nrows + 1 - NEW.id;
		RETURN NULL;
	END \$\$;
});
$job = mt_queue($node, 'postgres', 'c_trg', 'v = id * 2', undef, "$slow, strategy => 'ctid'");
mid_job($job, 500);
$node->safe_psql('postgres', q{
CREATE TRIGGER c_trg_touch AFTER UPDATE OF v ON c_trg FOR EACH ROW
	WHEN (pg_trigger_depth() < 1) EXECUTE FUNCTION touch_other()});
still_running($job, 'ctid trigger added');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid trigger: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM c_trg}),
	"0|0|$nrows", 'ctid trigger: every row updated exactly once');

# --- ctid: TRUNCATE mid-job, then new rows ---
$node->safe_psql('postgres', qq{
CREATE TABLE c_tr (id int NOT NULL, v int, hits int NOT NULL DEFAULT 0, pad text NOT NULL)
	WITH (fillfactor = 100);
CREATE TRIGGER c_tr_hit BEFORE UPDATE ON c_tr FOR EACH ROW EXECUTE FUNCTION hit();
INSERT INTO c_tr (id, pad) SELECT g, repeat('x', 100) FROM generate_series(1, $nrows) g;
ANALYZE c_tr;
});
$job = mt_queue($node, 'postgres', 'c_tr', 'v = id * 2', undef, "$slow, strategy => 'ctid'");
mid_job($job, 500);
$node->safe_psql('postgres', qq{
BEGIN;
TRUNCATE c_tr;
INSERT INTO c_tr (id, pad) SELECT g, repeat('y', 100) FROM generate_series(1, 2000) g;
COMMIT;
});
still_running($job, 'ctid TRUNCATE');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid TRUNCATE: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits > 1), count(*) FROM c_tr}),
	"0|0|2000", 'ctid TRUNCATE: the new rows are done, none twice');

# no worker ever crashed
my $log = slurp_file($node->logfile);
unlike($log, qr/terminated by signal|was terminated|server process .* exited/,
	'no process crashed');
unlike($log, qr/TRAP|PANIC/, 'no assertion failure or PANIC');

$node->stop;
done_testing();
