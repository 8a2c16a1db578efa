# The busy-server throttle: while other sessions keep every CPU running
# queries, a backfill takes only migration_tools.busy_duty_cycle of the
# time (it sleeps after each batch, throttled_by = 'busy_server'), and
# still completes every row exactly once; with the throttle turned off
# (busy_duty_cycle = 1) it never says so.  A session waiting in wait()
# does not make the server busy.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $ncpu = `nproc 2>/dev/null` || 1;
chomp $ncpu;
plan skip_all => "$ncpu CPUs: too many sessions to keep them all busy" if $ncpu > 8;

my $node = mt_node('throttle_busy');
mt_make_table($node, 'postgres', 'quiet', 3000);
mt_make_table($node, 'postgres', 'loaded', 3000);

# idle: a job with a session blocked in wait() is never throttled as busy
my $job = mt_queue($node, 'postgres', 'quiet', 'counter = counter + 1', undef,
	"batch_size => 100");
is($node->safe_psql('postgres', "SELECT migration_tools.wait($job, '60 seconds')"),
	'completed', 'idle server: the job completes');
is($node->safe_psql('postgres',
	"SELECT count(*) FROM migration_tools.backfill_batches WHERE job_id = $job"), '30',
	'idle server: 30 batches');

# CPU burners: more sessions running queries than there are CPUs
my @burners;
for my $i (1 .. $ncpu + 2)
{
	my $b = $node->background_psql('postgres', on_error_stop => 0);
	$b->query_until(qr/start/, q{\echo start
SELECT count(*) FROM generate_series(1, 2000000000);
});
	push @burners, $b;
}

$job = mt_queue($node, 'postgres', 'loaded', 'counter = counter + 1', undef,
	"batch_size => 100, target_batch_time => '20ms'");
ok(mt_poll($node, 'postgres', qq{SELECT throttled_by = 'busy_server'
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'busy server: the job says it is throttled by busy_server');
my $slept = $node->safe_psql('postgres', qq{SELECT state FROM migration_tools.backfill_progress WHERE job_id = $job});
isnt($slept, 'failed', 'and it is not failed');

# burners gone: the job goes on at full speed and completes exactly once
$node->safe_psql('postgres', q{SELECT pg_cancel_backend(pid) FROM pg_stat_activity
	WHERE query LIKE '%generate_series(1, 2000000000)%' AND pid <> pg_backend_pid()});
$_->quit for @burners;
mt_check_exactly_once($node, 'postgres', 'loaded', $job, 3000, 'busy server');

$node->stop;
done_testing();
