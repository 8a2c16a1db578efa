# The procedures await_job() and await_migration() commit between their
# looks: while await_job() waits for a running backfill job the waiting
# session holds no snapshot (backend_xmin is NULL in pg_stat_activity), so
# it does not hold back vacuum; it returns once the job completes.
# await_migration() raises, with the error, when a scheduled statement of
# the migration fails in the worker after apply() committed.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use MtBackfill;

my $node = mt_node('await');
mt_make_table($node, 'postgres', 'items', 10000);

# 1. A slow job (10 s or more), awaited from another session.
my $job = mt_queue($node, 'postgres', 'items', 'counter = counter + 1', undef,
	"batch_size => 50, batch_sleep => '50ms'");
mt_running_pid($node, 'postgres', $job, 1);

my $awaiter = $node->background_psql('postgres', on_error_stop => 0);
$awaiter->query_safe("SET application_name = 'awaiter'");
$awaiter->query_until(qr/sent/, qq{\\echo sent
CALL migration_tools.await_job($job);
\\echo finished
});
ok(mt_poll($node, 'postgres', q{SELECT count(*) = 1 FROM pg_stat_activity
	WHERE application_name = 'awaiter' AND query LIKE 'CALL%' AND state = 'active'}),
	'await_job() is waiting');

# Sample the waiting session: between its looks (one every 100 ms, each a
# short transaction) it has no xmin.  A PL/pgSQL loop of COMMIT and
# pg_sleep() shows an xmin in every sample.
my ($null, $samples) = (0, 0);
for (1 .. 20)
{
	my $r = $node->safe_psql('postgres', qq{SELECT a.backend_xmin IS NULL
		FROM pg_stat_activity a, migration_tools.backfill_progress p
		WHERE a.application_name = 'awaiter' AND a.query LIKE 'CALL%'
		AND a.state = 'active' AND p.job_id = $job AND p.state = 'running'});
	last if $r eq '';
	$samples++;
	$null++ if $r eq 't';
	usleep(50_000);
}
cmp_ok($samples, '>=', 10, 'sampled the waiting session while the job ran');
cmp_ok($null, '>=', $samples - 2, "backend_xmin is NULL while await_job() waits ($null of $samples)");

is(mt_wait_job($node, 'postgres', $job), 'completed', 'the job completed');
$awaiter->query_until(qr/finished/, '');
my $out = $awaiter->query('SELECT 1 AS awaited');
is($out, '1', 'await_job() returned without an error');

# 2. A scheduled statement that fails in the worker: duplicates in a
# unique index built concurrently.
$node->safe_psql('postgres', q{UPDATE items SET counter = 0});
my $stderr;
$node->psql('postgres', q{
SELECT migration_tools.apply('u1', 'CREATE UNIQUE INDEX CONCURRENTLY items_counter ON items (counter)');
CALL migration_tools.await_migration('u1', '120 seconds');
}, stderr => \$stderr);
like($stderr, qr/ERROR:  migration "u1" failed: scheduled statement 1 failed: could not create unique index "items_counter"/,
	'await_migration() raises with the error of the failed scheduled statement');
is($node->safe_psql('postgres', q{SELECT state FROM migration_tools.status WHERE version = 'u1'}),
	'failed', 'the migration is failed');

$awaiter->quit;
$node->stop;
done_testing();
