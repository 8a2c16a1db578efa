# apply() of a migration that locks two tables, each with a concurrent
# build of another migration still scheduled: it runs after both (run_after
# names every such migration), not only after the newest.  Were it queued
# behind the newest only, the worker would take it as soon as that one is
# done and its ALTER TABLE would meet the other build's lock (lock
# timeouts, retries; checked here as "no attempt while the older build
# runs").  And when either of them fails, it fails too, without running.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(usleep);
use MtBackfill;

my $node = mt_node('scheduled_after_all', conf => q{
migration_tools.max_workers = 3
migration_tools.scheduled_retry_delay = '100ms'
migration_tools.scheduled_retries = 50
migration_tools.max_lock_timeout = '100ms'
migration_tools.max_preflight_wait = '200ms'
migration_tools.lock_retries = 3
});
$node->safe_psql('postgres', q{
CREATE TABLE a (id int PRIMARY KEY, x int, dup int);
INSERT INTO a SELECT g, g, g % 10 FROM generate_series(1, 2000) g;
CREATE TABLE b (id int PRIMARY KEY, x int);
INSERT INTO b SELECT g, g FROM generate_series(1, 2000) g;
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub running
{
	my ($version) = @_;
	return mt_poll($node, 'postgres',
		qq{SELECT state = 'running' FROM migration_tools.scheduled_statements WHERE version = '$version'});
}

# Application transactions that wrote to a and to b: a concurrent build on
# the table waits for them, and stays running until they end.
my $ha = $node->background_psql('postgres');
my $hb = $node->background_psql('postgres');
$ha->query_safe(q{BEGIN; UPDATE a SET x = x WHERE id = 1;});
$hb->query_safe(q{BEGIN; UPDATE b SET x = x WHERE id = 1;});

is(sql(q{SELECT migration_tools.apply('5', 'CREATE INDEX CONCURRENTLY a_x ON a (x)')}),
	'scheduled', 'the build on a is scheduled');
ok(running('5'), 'and runs (waiting for the application on a)');
is(sql(q{SELECT migration_tools.apply('6', 'CREATE INDEX CONCURRENTLY b_x ON b (x)')}),
	'scheduled', 'the build on b is scheduled');
ok(running('6'), 'and runs (waiting for the application on b)');

my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT migration_tools.apply('7', 'ALTER TABLE a ADD COLUMN y int; ALTER TABLE b ADD COLUMN y int',
	                               'ALTER TABLE a DROP COLUMN y; ALTER TABLE b DROP COLUMN y')});
is($out, 'scheduled', 'a migration of both tables is scheduled');
like($err, qr/NOTICE:  migration "7" is scheduled to run after migrations "6" and "5"/,
	'NOTICE: after both migrations');
like($err, qr/DETAIL:  Scheduled statements of migration "6" on relation "b" are running and of migration "5" on relation "a" are running;/,
	'DETAIL: which migration on which relation');
like($err, qr/once migrations "6" and "5" are all done; if one of them fails, this one is not run and fails too/,
	'DETAIL: what happens next');
is(sql(q{SELECT string_agg(run_after::text, ',') FROM migration_tools.scheduled_statements WHERE version = '7'}),
	'{6,5}', 'run_after names both, newest first');

# The build on b ends: 7 must still wait for the build on a.
$hb->query_safe('COMMIT');
ok(mt_poll($node, 'postgres', q{SELECT state = 'applied' FROM migration_tools.migrations WHERE version = '6'}),
	'the build on b is done');
# (with run_after = the newest only, the worker takes 7 at once here and
# its ALTER TABLE a times out behind the build on a, attempt after attempt)
usleep(1_500_000);
is(sql(q{SELECT state || ' ' || attempts FROM migration_tools.scheduled_statements WHERE version = '7'}),
	'pending 0', 'the migration of both tables has not been tried while the build on a runs');
is(sql(q{SELECT state || ' ' || scheduled_for FROM migration_tools.status WHERE version = '7'}),
	'scheduled apply', 'status: scheduled for apply');

$ha->query_safe('COMMIT');
ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'everything scheduled ran');
is(sql(q{SELECT string_agg(version || '=' || state || ' ' || attempts, ',' ORDER BY installed_rank)
		  FROM migration_tools.migrations}),
	'5=applied 1,6=applied 1,7=applied 1', 'all applied, 7 at its first attempt');
is(sql(q{SELECT lock_wait_time = '0' FROM migration_tools.migrations WHERE version = '7'}),
	't', '7 lost no time to lock timeouts');
is(sql(q{SELECT min(id) FILTER (WHERE migration_version = '7')
		      > max(id) FILTER (WHERE migration_version IN ('5', '6'))
		  FROM migration_tools.ddl_log}),
	't', '7 ran after both builds');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid IN ('a'::regclass, 'b'::regclass)
		  AND attname = 'y' AND NOT attisdropped}),
	'2', 'both columns were added');

# rollback() of 7 while a build on a (migration 11) runs: its down script
# (ALTER TABLE a, b) would wait for the build while the build waits for
# the caller's transaction; it is scheduled to run after the build, as
# apply() does, instead of failing after its lock retries.
$ha->query_safe(q{BEGIN; UPDATE a SET x = x WHERE id = 1;});
is(sql(q{SELECT migration_tools.apply('11', 'CREATE INDEX CONCURRENTLY a_x_id ON a (x, id)')}),
	'scheduled', 'another build on a is scheduled');
ok(running('11'), 'it runs');
($ret, $out, $err) = $node->psql('postgres', q{SELECT migration_tools.rollback('7')});
is($out, 'scheduled', 'rollback() of the migration of both tables is scheduled');
like($err, qr/NOTICE:  rollback of migration "7" is scheduled: 1 statement\(s\) will run in the background after commit/,
	'NOTICE: scheduled');
like($err, qr/DETAIL:  Scheduled statements of migration "11" on relation "a" are running; run now, the down script would wait for them while they wait for this transaction. The background worker runs it, in order, once migration "11" is done; if that one fails, this rollback is not run and fails too./,
	'DETAIL: behind which migration, and why');
is(sql(q{SELECT string_agg(direction || ' ' || run_after::text || ' ' || top_level || ' ' || state, ',' ORDER BY seq)
		  FROM migration_tools.scheduled_statements WHERE version = '7' AND direction = 'down'}),
	'down {11} false pending', 'the down script waits for 11, as one in-transaction group');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid IN ('a'::regclass, 'b'::regclass)
		  AND attname = 'y' AND NOT attisdropped}),
	'2', 'nothing of it ran yet');
$ha->query_safe('COMMIT');
ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'the build and the rollback ran');
is(sql(q{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank)
		  FROM migration_tools.migrations WHERE version IN ('7', '11')}),
	'7=rolled_back,11=applied', '7 rolled back, 11 applied');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid IN ('a'::regclass, 'b'::regclass)
		  AND attname = 'y' AND NOT attisdropped}),
	'0', 'the columns y are gone');

# The failure cascade through either dependency: 8 (a unique build on a
# that fails on duplicates) and 9 (a build on b that succeeds, later), and
# 10 behind both.  8 fails while 9 still runs: 10 fails at once, with 8.
$ha->query_safe(q{BEGIN; UPDATE a SET x = x WHERE id = 1;});
$hb->query_safe(q{BEGIN; UPDATE b SET x = x WHERE id = 1;});
is(sql(q{SELECT migration_tools.apply('8', 'CREATE UNIQUE INDEX CONCURRENTLY a_dup ON a (dup)')}),
	'scheduled', 'a unique build on a that will fail is scheduled');
ok(running('8'), 'it runs');
is(sql(q{SELECT migration_tools.apply('9', 'CREATE INDEX CONCURRENTLY b_id_x ON b (id, x)')}),
	'scheduled', 'a build on b is scheduled');
ok(running('9'), 'it runs');
is(sql(q{SELECT migration_tools.apply('10', 'ALTER TABLE a ADD COLUMN z int; ALTER TABLE b ADD COLUMN z int')}),
	'scheduled', 'a migration of both tables is scheduled after them');
is(sql(q{SELECT run_after::text FROM migration_tools.scheduled_statements WHERE version = '10'}),
	'{9,8}', 'after both');

$ha->query_safe('COMMIT');
ok(mt_poll($node, 'postgres', q{SELECT state FROM migration_tools.migrations WHERE version = '8'}, 'failed'),
	'the build on a fails');
is(sql(q{SELECT state || ': ' || error FROM migration_tools.migrations WHERE version = '10'}),
	'failed: not run, because migration "8" failed',
	'the migration behind it fails with it, while the build on b still runs');
is(sql(q{SELECT state FROM migration_tools.migrations WHERE version = '9'}), 'scheduled',
	'(the build on b still runs)');
$hb->query_safe('COMMIT');
ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'nothing is scheduled any more');
is(sql(q{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank)
		  FROM migration_tools.migrations WHERE version IN ('8', '9', '10')}),
	'8=failed,9=applied,10=failed', '9 applied; 8 and 10 failed');
is(sql(q{SELECT state || ' ' || attempts FROM migration_tools.scheduled_statements WHERE version = '10'}),
	'pending 0', 'the statements of 10 never ran');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid IN ('a'::regclass, 'b'::regclass)
		  AND attname = 'z'}),
	'0', 'no column z');

$ha->quit;
$hb->quit;
$node->stop;
done_testing();
