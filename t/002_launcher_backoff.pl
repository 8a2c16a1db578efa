# A database whose worker fails again and again (here: a table of the
# extension renamed away, so the worker's first query fails) is not served
# by a worker restarted at every launcher sweep: after each failure in a
# row the launcher waits twice as long, and says so in the log.  Queueing
# new work still starts a worker at once, and once the damage is repaired
# the queued job runs.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use MtBackfill;

my $node = mt_node('backoff');
mt_make_table($node, 'postgres', 'items', 300);

my $offset = -s $node->logfile;
$node->safe_psql('postgres',
	'ALTER TABLE migration_tools.scheduled_statements RENAME TO scheduled_statements_away');
# a nudge, so that a worker starts now and fails
$node->safe_psql('postgres', 'SELECT migration_tools._wakeup()');

# 12 launcher naptimes: restarted at every sweep, that would be about 12
# failed workers; with the doubling wait (1, 2, 4, 8 s) it is 4 or 5.
sleep(12);
my $log = slurp_file($node->logfile, $offset);
my $failed = () = $log =~ /"migration_tools worker[^"]*" \(PID \d+\) exited with exit code 1/g;
cmp_ok($failed, '>=', 2, "the failing worker was started again ($failed failures)");
cmp_ok($failed, '<=', 6, "but not at every sweep ($failed failures in 12 s)");
like($log, qr/migration_tools worker for database \d+ failed \d+ times in a row/,
	'the log says the worker keeps failing');
like($log, qr/The next worker starts in \d+ ms, or as soon as new work is queued/,
	'and when it will try again');

# repaired: a job queued now is run at once, not after the backoff
$node->safe_psql('postgres',
	'ALTER TABLE migration_tools.scheduled_statements_away RENAME TO scheduled_statements');
my $job = $node->safe_psql('postgres',
	"SELECT migration_tools.backfill('items', 'counter = counter + 1', batch_size => 100)");
is($node->safe_psql('postgres', "SELECT migration_tools.wait($job, '30 seconds')"),
	'completed', 'after the repair the queued job runs');
is($node->safe_psql('postgres', 'SELECT count(*) FROM items WHERE counter <> 1'),
	'0', 'every row once');

$node->stop;
done_testing();
