# The dead-tuple throttle counts the dead tuples of other sessions, not
# the job's own: a job on an otherwise idle table crosses any ratio by
# itself and must not hold itself back for that; dead tuples that another
# session left do hold it back, until a vacuum removes them.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

# Vacuums only when the test runs them; a low limit that every job here
# crosses; a wait long enough that a job held back by it could not end in
# the time the test allows.
my $node = mt_node('throttle_own', conf => q{
autovacuum = off
migration_tools.min_dead_tuples = 100
migration_tools.max_dead_tuples_ratio = 0.1
migration_tools.max_throttle_wait = '10min'
migration_tools.throttle_sleep = '100ms'
});

# The job's own dead tuples: 20 batches of 1000 rows, 100 ms apart, so
# that the throttle looks (every 250 ms) many times after the dead tuples
# the job left passed both limits.
mt_make_table($node, 'postgres', 't_own', 20000);
my $job = mt_queue($node, 'postgres', 't_own', 'counter = counter + 1', undef,
	"batch_size => 1000, batch_sleep => '100ms'");
is($node->safe_psql('postgres', "SELECT migration_tools.wait($job, '60s')"),
	'completed', 'a job leaving dead tuples on an idle table is not held back by them');
mt_check_exactly_once($node, 'postgres', 't_own', $job, 20000, 'own dead tuples');
is($node->safe_psql('postgres',
	"SELECT n_dead_tup > 2000 FROM pg_stat_user_tables WHERE relname = 't_own'"),
	't', 'the job did leave dead tuples over the limits');

# Dead tuples of another session: the job waits for them, and goes on once
# a vacuum removed them.
mt_make_table($node, 'postgres', 't_others', 20000);
$node->safe_psql('postgres', 'UPDATE t_others SET payload = payload');
ok(mt_poll($node, 'postgres',
	"SELECT n_dead_tup >= 20000 FROM pg_stat_user_tables WHERE relname = 't_others'"),
	'another session left 20000 dead tuples');
$job = mt_queue($node, 'postgres', 't_others', 'counter = counter + 1', undef,
	"batch_size => 1000");
ok(mt_poll($node, 'postgres', qq{SELECT throttled_by = 'dead_tuples' AND rows_done = 0
	FROM migration_tools.backfill_progress WHERE job_id = $job}),
	'the job is held back by the dead tuples of another session');
$node->safe_psql('postgres', 'VACUUM t_others');
mt_check_exactly_once($node, 'postgres', 't_others', $job, 20000, 'after the vacuum');

$node->stop;
done_testing();
