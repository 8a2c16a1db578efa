# Helpers shared by the backfill TAP tests (t/03*_backfill*.pl): a node
# that preloads migration_tools, a table to backfill, and the checks that
# a job ran every row exactly once.
package MtBackfill;

use strict;
use warnings;
use Exporter 'import';
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);

our @EXPORT = qw(mt_node mt_make_table mt_queue mt_running_pid mt_job_field
  mt_poll mt_wait_job mt_check_exactly_once mt_send mt_collect);

# Like poll_query_until (with an optional timeout in seconds), but survives a server that is restarting (after a
# crash psql may exit before reading its input, and IPC::Run then dies of
# a broken pipe).
sub mt_poll
{
	my ($node, $db, $sql, $expected, $timeout) = @_;
	$expected //= 't';
	my $deadline = time() + ($timeout // $PostgreSQL::Test::Utils::timeout_default);
	my $out = '';

	while (time() < $deadline)
	{
		my ($ret, $stdout, $stderr);
		eval {
			($ret, $stdout, $stderr) = $node->psql($db, $sql);
		};
		$out = defined $stdout ? $stdout : '';
		return 1 if !$@ && defined $ret && $ret == 0 && $out eq $expected;
		usleep(100_000);
	}
	diag "mt_poll timed out: $sql\nexpected: $expected\nlast output: $out";
	return 0;
}

# A node with the library preloaded and a short launcher naptime.  %opts:
# allows_streaming, conf (extra postgresql.conf text), no_start.
sub mt_node
{
	my ($name, %opts) = @_;
	my $node = PostgreSQL::Test::Cluster->new($name);

	$node->init(allows_streaming => $opts{allows_streaming} ? 1 : 0);
	$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
max_worker_processes = 16
log_min_messages = info
restart_after_crash = on
} . ($opts{conf} // ''));
	return $node if $opts{no_start};
	$node->start;
	$node->safe_psql('postgres', 'CREATE EXTENSION migration_tools');
	return $node;
}

# A table of $nrows rows, keyed by id, each with counter = 0.
sub mt_make_table
{
	my ($node, $db, $table, $nrows) = @_;

	$node->safe_psql($db, qq{
CREATE TABLE $table (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0,
                     payload text NOT NULL DEFAULT 'x');
INSERT INTO $table (id) SELECT g FROM generate_series(1, $nrows) g;
ANALYZE $table;
});
}

# Queue a backfill; $args is the text after the where clause (named
# arguments).  Returns the job id.
sub mt_queue
{
	my ($node, $db, $table, $set, $where, $args) = @_;
	my $w = defined $where ? "\$w\$$where\$w\$" : 'NULL';
	my $a = defined $args && $args ne '' ? ", $args" : '';

	return $node->safe_psql($db,
		"SELECT migration_tools.backfill('$table', \$s\$$set\$s\$, $w$a)");
}

# Wait until the job runs and has done at least $min_rows rows; return the
# pid of the worker running it.
sub mt_running_pid
{
	my ($node, $db, $job, $min_rows) = @_;
	my $sql = qq{SELECT worker_pid FROM migration_tools.backfill_progress
		WHERE job_id = $job AND state = 'running' AND rows_done >= $min_rows
		AND worker_pid IS NOT NULL};

	# the pid comes from the polling query itself: the job may end between
	# two queries
	my $deadline = time() + $PostgreSQL::Test::Utils::timeout_default;
	while (time() < $deadline)
	{
		my ($ret, $pid) = (1, '');
		eval { ($ret, $pid) = $node->psql($db, $sql); };
		return $pid if !$@ && $ret == 0 && defined $pid && $pid =~ /^\d+$/;
		usleep(100_000);
	}
	die "job $job never ran past $min_rows rows";
}

sub mt_job_field
{
	my ($node, $db, $job, $field) = @_;
	return $node->safe_psql($db,
		"SELECT $field FROM migration_tools.backfill_progress WHERE job_id = $job");
}

# Wait for the job to end (through crash recovery and restarts: polls,
# retrying while connections fail) and return its final state.
sub mt_wait_job
{
	my ($node, $db, $job, $timeout) = @_;
	$timeout //= '60s';
	mt_poll($node, $db, qq{SELECT state IN ('completed', 'failed', 'cancelled')
		FROM migration_tools.backfill_progress WHERE job_id = $job})
	  or diag "job $job did not end";
	return $node->safe_psql($db, "SELECT migration_tools.wait($job, '$timeout')");
}

# The job completed and ran the set clause exactly once on each of the
# $nrows rows of $table.
sub mt_check_exactly_once
{
	my ($node, $db, $table, $job, $nrows, $what) = @_;

	is(mt_wait_job($node, $db, $job), 'completed', "$what: wait() returns completed");
	is($node->safe_psql($db, "SELECT count(*) FROM $table WHERE counter <> 1"),
		'0', "$what: every row has counter = 1");
	is($node->safe_psql($db, "SELECT count(*) FROM $table"),
		$nrows, "$what: no row lost");
	is(mt_job_field($node, $db, $job, 'rows_done'), $nrows,
		"$what: rows_done equals the row count");
}

# Background psql sessions: start input in $session and wait until its
# output matches $started (e.g. an "\echo sent" written before the
# statements), keeping whatever else was read with it.  query_until()
# returns and clears everything read so far, so output that arrived in the
# same read (a fast statement and its "\echo finished") would otherwise be
# lost, and a later wait for it would hang until the harness timeout.
my %mt_pending;

sub mt_send
{
	my ($session, $started, $input) = @_;
	$mt_pending{$session} = $session->query_until($started, $input);
	return;
}

# The output of $session since mt_send, once it matches $until.
sub mt_collect
{
	my ($session, $until) = @_;
	my $out = delete $mt_pending{$session} // '';

	$out .= $session->query_until($until, '') unless $out =~ $until;
	return $out;
}

1;
