# A backfill on a table the application keeps writing, and
# crashes at awkward moments.
#  - key strategy, `counter = counter + 1`: while the job runs, the
#    application inserts rows after the last key (visited, once), inserts
#    rows before the checkpoint (not visited: documented), updates other
#    columns, increments counter itself, deletes rows; the worker is
#    killed -9 in the middle, later a regular backend is (the server
#    restarts every process).  Every row that existed at the start and
#    is still there got the job's +1 exactly once, on top of the
#    application's own increments;
#  - ctid strategy: the application updates rows (they move behind the
#    walk) and inserts rows while the main pass runs: the sweep finds
#    them, every row done once;
#  - a job stuck in its planning step behind a table lock, and its
#    worker killed -9 there (the server restarts): it plans again once
#    the lock is gone and completes exactly once;
#  - big rows: a table whose rows are ~100 kB of TOASTed text and a
#    table with 1000-byte text keys, adaptive batches: exactly once.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 6000;
my $slow = "batch_size => 50, batch_sleep => '20ms'";
my $node = mt_node('backfill_app_writes');

# --- key strategy with the application writing ---
$node->safe_psql('postgres', qq{
CREATE TABLE ka (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0,
	app_n int NOT NULL DEFAULT 0, payload text NOT NULL DEFAULT 'x');
INSERT INTO ka (id) SELECT g FROM generate_series(1, $nrows) g;
ANALYZE ka;
});
my $job = mt_queue($node, 'postgres', 'ka', 'counter = counter + 1', undef, $slow);
my $round = 0;
for my $at (300, 1500, 3000)
{
	my $pid = mt_running_pid($node, 'postgres', $job, $at);
	$round++;
	my $lo = 100000 + $round * 1000;
	$node->safe_psql('postgres', qq{
INSERT INTO ka (id) SELECT g FROM generate_series($lo + 1, $lo + 200) g;
INSERT INTO ka (id) SELECT -g FROM generate_series($lo + 1, $lo + 50) g;
UPDATE ka SET payload = 'app$round' WHERE id % 7 = $round;
UPDATE ka SET counter = counter + 10, app_n = app_n + 1 WHERE id % 11 = $round;
DELETE FROM ka WHERE id % 13 = $round AND id BETWEEN 1 AND $nrows;
});
	is($node->safe_psql('postgres',
			"SELECT state FROM migration_tools.backfill_progress WHERE job_id = $job"),
		'running', "key/app round $round: the application wrote while the job ran");
	if ($round == 2)
	{
		is(kill('KILL', $pid), 1, 'key/app: kill -9 the worker');
	}
	elsif ($round == 3)
	{
		# a regular backend dies: the postmaster restarts every process
		my $victim = $node->background_psql('postgres');
		my $vpid = $victim->query_safe('SELECT pg_backend_pid()');
		$vpid =~ s/\s+//g;
		is(kill('KILL', $vpid), 1, 'key/app: kill -9 a regular backend');
		eval { $victim->quit; };
		ok(mt_poll($node, 'postgres', qq{SELECT state = 'completed' OR worker_pid <> $pid
			FROM migration_tools.backfill_progress WHERE job_id = $job}),
			'key/app: after the crash restart, a new worker takes the job up');
	}
}
is(mt_wait_job($node, 'postgres', $job), 'completed', 'key/app: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE id > 0 AND counter - 10 * app_n <> 1),
	       count(*) FILTER (WHERE id < 0 AND counter - 10 * app_n <> 0),
	       count(*) FILTER (WHERE id > 100000),
	       count(*) FILTER (WHERE id < 0)
	FROM ka}),
	'0|0|600|150',
	'key/app: every row there at the start or added after the last key got +1 once; rows added before the checkpoint were not visited');
is($node->safe_psql('postgres', q{SELECT count(*) FROM ka WHERE id BETWEEN 1 AND 6000
	AND id % 13 IN (1, 2, 3)}), '0', 'key/app: the deleted rows stay deleted');

# --- ctid strategy with the application writing ---
$node->safe_psql('postgres', qq{
CREATE FUNCTION hit() RETURNS trigger LANGUAGE plpgsql AS
	\$\$ BEGIN NEW.hits := OLD.hits + 1; RETURN NEW; END \$\$;
CREATE TABLE ca (id int NOT NULL, v int, hits int NOT NULL DEFAULT 0,
	payload text NOT NULL) WITH (fillfactor = 100);
CREATE INDEX ca_id ON ca (id);
CREATE TRIGGER ca_hit BEFORE UPDATE OF v ON ca FOR EACH ROW EXECUTE FUNCTION hit();
INSERT INTO ca (id, payload) SELECT g, repeat('x', 100) FROM generate_series(1, $nrows) g;
ANALYZE ca;
});
$job = mt_queue($node, 'postgres', 'ca', 'v = id * 2', undef, "$slow, strategy => 'ctid'");
$round = 0;
for my $at (300, 1500, 3000)
{
	mt_running_pid($node, 'postgres', $job, $at);
	$round++;
	my $lo = 100000 + $round * 1000;
	# every updated row moves (packed pages): some behind the walk
	$node->safe_psql('postgres', qq{
UPDATE ca SET payload = repeat('a', 100) WHERE id % 5 = $round;
INSERT INTO ca (id, payload) SELECT g, 'new' FROM generate_series($lo + 1, $lo + 100) g;
});
	is($node->safe_psql('postgres',
			"SELECT phase || '/' || state FROM migration_tools.backfill_progress WHERE job_id = $job"),
		'main/running', "ctid/app round $round: the application wrote during the main pass");
}
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid/app: completes');
is($node->safe_psql('postgres', q{
	SELECT count(*) FILTER (WHERE v IS DISTINCT FROM id * 2),
	       count(*) FILTER (WHERE hits <> 1), count(*) FROM ca}),
	'0|0|' . ($nrows + 300),
	'ctid/app: every row, moved or new, done exactly once');

# --- killed while planning, behind a table lock ---
mt_make_table($node, 'postgres', 'kp', 3000);
$job = mt_queue($node, 'postgres', 'kp', 'counter = counter + 1', undef,
	"batch_size => 100, start_at => clock_timestamp() + interval '1 second'");
my $locker = $node->background_psql('postgres');
$locker->query_safe('BEGIN; LOCK TABLE kp IN ACCESS EXCLUSIVE MODE;');
ok(mt_poll($node, 'postgres', qq{SELECT phase = 'plan' AND throttled_by = 'table_lock'
	AND worker_pid IS NOT NULL
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'plan: the job waits for the table lock in its planning step');
my $pid = mt_job_field($node, 'postgres', $job, 'worker_pid');
is(kill('KILL', $pid), 1, 'plan: kill -9 the worker while it plans');
# the whole server restarts (a background worker died of a signal)
eval { $locker->quit; };
ok(mt_poll($node, 'postgres', qq{SELECT phase = 'plan' OR state <> 'running'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'plan: the server is back, the job not planned yet');
mt_check_exactly_once($node, 'postgres', 'kp', $job, 3000, 'plan: killed while planning');

# --- big rows: TOAST, and wide keys ---
$node->safe_psql('postgres', q{
CREATE TABLE tb (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0, doc text NOT NULL);
ALTER TABLE tb ALTER COLUMN doc SET STORAGE EXTERNAL;
INSERT INTO tb (id, doc)
	SELECT g, (SELECT string_agg(md5(g::text || '/' || i), '') FROM generate_series(1, 3200) i)
	FROM generate_series(1, 300) g;
ANALYZE tb;
CREATE TABLE wk (k text PRIMARY KEY, counter int NOT NULL DEFAULT 0);
INSERT INTO wk (k) SELECT lpad(g::text, 1000, 'k') FROM generate_series(1, 3000) g;
ANALYZE wk;
});
my $toast = mt_queue($node, 'postgres', 'tb', q{doc = doc || 'z', counter = counter + 1},
	undef, '');
my $wide = mt_queue($node, 'postgres', 'wk', 'counter = counter + 1', undef,
	"target_batch_time => '50ms'");
is(mt_wait_job($node, 'postgres', $toast), 'completed', 'toast: completes');
is($node->safe_psql('postgres', q{SELECT count(*) FILTER (WHERE counter = 1
	AND length(doc) = 102401 AND right(doc, 1) = 'z'), count(*) FROM tb}),
	'300|300', 'toast: every big row changed exactly once');
mt_check_exactly_once($node, 'postgres', 'wk', $wide, 3000, 'wide keys');

my $log = slurp_file($node->logfile);
unlike($log, qr/TRAP|PANIC/, 'no assertion failure or PANIC');

$node->stop;
done_testing();
