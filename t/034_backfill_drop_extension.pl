# DROP EXTENSION while a backfill runs: the worker of that database stops
# (no crash, no busy loop), other databases go on being served, and the
# extension can be created again and used.  DROP DATABASE ... WITH (FORCE)
# under a running job: the launcher forgets that database and serves the
# others.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $nrows = 10000;
my $slow = "batch_size => 100, batch_sleep => '20ms'";

# One worker slot: a worker that does not let go would starve "postgres".
my $node = mt_node('dropext', conf => "migration_tools.max_workers = 1\n");
$node->safe_psql('postgres', 'CREATE DATABASE other');
$node->safe_psql('other', 'CREATE EXTENSION migration_tools');

my $log_offset = -s $node->logfile;
mt_make_table($node, 'other', 't', $nrows);
my $job = mt_queue($node, 'other', 't', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'other', $job, 100);
$node->safe_psql('other', 'DROP EXTENSION migration_tools');
my $exited = mt_poll($node, 'postgres', q{SELECT count(*) = 0 FROM migration_tools.workers
	WHERE database = 'other'}, 't', 20);
ok($exited, 'the worker of "other" exits after DROP EXTENSION');
if (!$exited)
{
	# Do not let a spinning worker fill the disk with its log.
	$node->stop('immediate');
	done_testing();
	exit;
}
is($node->safe_psql('other', 'SELECT count(*) FROM t WHERE counter > 1'), '0',
	'no row applied twice');
my $log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal|server process .* was terminated|reinitializing/,
	'no crash');
my $failures = () = $log =~ /batch failed/g;
cmp_ok($failures, '<', 20, 'the worker does not retry in a loop');

# The other database is still served, with the single worker slot.
mt_make_table($node, 'postgres', 't', 1000);
$job = mt_queue($node, 'postgres', 't', 'counter = counter + 1', undef, '');
mt_check_exactly_once($node, 'postgres', 't', $job, 1000, 'a job in another database');

# Created again, the extension works in "other".
$node->safe_psql('other', 'CREATE EXTENSION migration_tools');
$node->safe_psql('other', 'UPDATE t SET counter = 0');
$job = mt_queue($node, 'other', 't', 'counter = counter + 1', undef, '');
mt_check_exactly_once($node, 'other', 't', $job, $nrows, 'a job after CREATE EXTENSION again');

# DROP DATABASE ... WITH (FORCE) while a job runs there: the worker is
# terminated, the launcher forgets the database, the single worker slot
# goes on serving the others, and a database created afterwards is served.
mt_make_table($node, 'other', 't_drop_db', $nrows);
$job = mt_queue($node, 'other', 't_drop_db', 'counter = counter + 1', undef, $slow);
mt_running_pid($node, 'other', $job, 100);
$log_offset = -s $node->logfile;
$node->safe_psql('postgres', 'DROP DATABASE other WITH (FORCE)');
$node->safe_psql('postgres', 'UPDATE t SET counter = 0');
$job = mt_queue($node, 'postgres', 't', 'counter = counter + 1', undef, '');
mt_check_exactly_once($node, 'postgres', 't', $job, 1000, 'a job after DROP DATABASE of another');
$node->safe_psql('postgres', 'CREATE DATABASE third');
$node->safe_psql('third', 'CREATE EXTENSION migration_tools');
mt_make_table($node, 'third', 't', 1000);
$job = mt_queue($node, 'third', 't', 'counter = counter + 1', undef, '');
mt_check_exactly_once($node, 'third', 't', $job, 1000, 'a database created after the drop');
$log = slurp_file($node->logfile, $log_offset);
unlike($log, qr/terminated by signal|was terminated by|reinitializing|PANIC/,
	'no crash after DROP DATABASE under a running job');

$node->stop;
done_testing();
