# One job per table at a time, across partition hierarchies: a job on a
# partitioned table and one on a partition of it (at any depth), in either
# order, would update the same rows; the second one waits in the queue
# (never fails) and runs once the first is done.  Jobs on sibling
# partitions, or on unrelated tables, still run side by side.
#
# The first job of each pair is held inside its first batch by a gate
# (its set clause waits until a row of the table "gate" says open), so the
# test does not depend on timing: while the gate is shut, the first job is
# running, and the second must stay queued however long we look.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('partitions');

$node->safe_psql('postgres', q{
CREATE TABLE pt (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE pt1 PARTITION OF pt FOR VALUES FROM (1) TO (1001);
CREATE TABLE pt2 PARTITION OF pt FOR VALUES FROM (1001) TO (2001) PARTITION BY RANGE (id);
CREATE TABLE pt2a PARTITION OF pt2 FOR VALUES FROM (1001) TO (1501);
CREATE TABLE pt2b PARTITION OF pt2 FOR VALUES FROM (1501) TO (2001);
INSERT INTO pt (id) SELECT g FROM generate_series(1, 2000) g;
ANALYZE pt;
CREATE TABLE gate (open bool NOT NULL);
INSERT INTO gate VALUES (false);
CREATE FUNCTION gate_wait() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
	WHILE NOT (SELECT open FROM gate) LOOP
		PERFORM pg_sleep(0.02);
	END LOOP;
	RETURN 1;
END $$;
});
mt_make_table($node, 'postgres', 'other', 500);

my $gated = "batch_size => 100, max_attempts => 1000";

sub state_of
{
	my ($job) = @_;
	return mt_job_field($node, 'postgres', $job, 'state');
}

# Wait until the gated job runs, stuck in its first batch.
sub gated_running
{
	my ($job, $what) = @_;
	ok(mt_poll($node, 'postgres', qq{SELECT state = 'running' AND worker_pid IS NOT NULL
		FROM migration_tools.backfill_progress WHERE job_id = $job}),
		"$what: the gated job runs");
}

# While the gate is shut: an unrelated job completes (so a worker was free
# and looked at the queue), and for a few launcher naptimes more the
# second job stays queued and has touched nothing.
sub stays_queued
{
	my ($first, $second, $table, $what) = @_;
	my $u = mt_queue($node, 'postgres', 'other', 'counter = counter + 1');
	is(mt_wait_job($node, 'postgres', $u), 'completed',
		"$what: an unrelated job completes meanwhile");
	for my $i (1 .. 6)
	{
		$node->safe_psql('postgres', 'SELECT pg_sleep(0.5)');
		my $s = $node->safe_psql('postgres', qq{
			SELECT state || ' ' || rows_done || ' ' || coalesce(worker_pid::text, '-')
			FROM migration_tools.backfill_progress WHERE job_id = $second});
		if ($s ne 'queued 0 -')
		{
			fail("$what: the second job stays queued (look $i: $s)");
			return;
		}
	}
	pass("$what: the second job stays queued while the first runs");
	is(state_of($first), 'running', "$what: the first job still runs");
	is($node->safe_psql('postgres', "SELECT count(*) FROM $table WHERE counter > 1"),
		'0', "$what: the second job touched no row");
}

sub open_gate
{
	$node->safe_psql('postgres', 'UPDATE gate SET open = true');
}

sub shut_gate
{
	$node->safe_psql('postgres', 'UPDATE gate SET open = false');
}

sub ran_after
{
	my ($first, $second, $what) = @_;
	is(mt_wait_job($node, 'postgres', $first), 'completed', "$what: the first job completes");
	is(mt_wait_job($node, 'postgres', $second), 'completed', "$what: the second job completes");
	is($node->safe_psql('postgres', qq{
		SELECT a.finished_at <= b.started_at
		FROM migration_tools.backfill_progress a, migration_tools.backfill_progress b
		WHERE a.job_id = $first AND b.job_id = $second}),
		't', "$what: the second job started after the first had finished");
}

# 1. The root first, then a sub-partition two levels down.
my $a = mt_queue($node, 'postgres', 'pt', 'counter = counter + gate_wait()', undef, $gated);
gated_running($a, 'root then sub-partition');
my $b = mt_queue($node, 'postgres', 'pt2a', 'counter = counter + 10');
stays_queued($a, $b, 'pt2a', 'root then sub-partition');
open_gate();
ran_after($a, $b, 'root then sub-partition');
is($node->safe_psql('postgres', q{
	SELECT string_agg(tableoid::regclass || '=' || counter, ',' ORDER BY tableoid::regclass::text, counter)
	FROM (SELECT DISTINCT tableoid, counter FROM pt) s}),
	'pt1=1,pt2a=11,pt2b=1', 'root then sub-partition: every row updated once by each job');

# 2. A leaf first, then the root; a sibling partition runs meanwhile.
$node->safe_psql('postgres', 'UPDATE pt SET counter = 0');
shut_gate();
$a = mt_queue($node, 'postgres', 'pt2b', 'counter = counter + gate_wait()', undef, $gated);
gated_running($a, 'leaf then root');
my $sib = mt_queue($node, 'postgres', 'pt1', 'counter = counter + 100');
is(mt_wait_job($node, 'postgres', $sib), 'completed',
	'leaf then root: a job on a sibling partition runs meanwhile');
$b = mt_queue($node, 'postgres', 'pt', 'counter = counter + 10');
stays_queued($a, $b, 'pt2a', 'leaf then root');
open_gate();
ran_after($a, $b, 'leaf then root');
is($node->safe_psql('postgres', q{
	SELECT string_agg(tableoid::regclass || '=' || counter, ',' ORDER BY tableoid::regclass::text, counter)
	FROM (SELECT DISTINCT tableoid, counter FROM pt) s}),
	'pt1=110,pt2a=10,pt2b=11', 'leaf then root: every row updated once by each job');

# 3. A partitioned partition in the middle first, then its leaf.
$node->safe_psql('postgres', 'UPDATE pt SET counter = 0');
shut_gate();
$a = mt_queue($node, 'postgres', 'pt2', 'counter = counter + gate_wait()', undef, $gated);
gated_running($a, 'middle then leaf');
$b = mt_queue($node, 'postgres', 'pt2a', 'counter = counter + 10');
stays_queued($a, $b, 'pt2a', 'middle then leaf');
open_gate();
ran_after($a, $b, 'middle then leaf');
is($node->safe_psql('postgres', q{
	SELECT string_agg(tableoid::regclass || '=' || counter, ',' ORDER BY tableoid::regclass::text, counter)
	FROM (SELECT DISTINCT tableoid, counter FROM pt) s}),
	'pt1=0,pt2a=11,pt2b=1', 'middle then leaf: every row updated once by each job');

$node->stop;
done_testing();
