# Rollbacks whose down scripts contain statements that cannot run in a
# transaction block (DROP INDEX CONCURRENTLY, the natural down script of
# CREATE INDEX CONCURRENTLY): the worker runs them after commit, in script
# order, and the migration ends 'rolled_back'; rollback_to() undoes several
# such migrations newest first; a failed one ends 'failed' with the error
# (and those queued after it with it), and rollback() / rollback_to()
# retry what did not run.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('scheduled_rollback');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
migration_tools.scheduled_retry_delay = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION migration_tools;
CREATE TABLE items (id int PRIMARY KEY, a int);
INSERT INTO items SELECT g, g FROM generate_series(1, 5000) g;
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

# Wait until none of the versions is scheduled any more.
sub settled
{
	my (@versions) = @_;
	my $list = join(',', map { "'$_'" } @versions);
	return $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM migration_tools.migrations WHERE version IN ($list) AND state = 'scheduled'");
}

sub states
{
	my $states = sql(qq{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank)
		FROM migration_tools.migrations});
	my $errors = sql(q{SELECT string_agg(version || '.' || seq || ' ' || direction || ' ' || state || ': ' || error, E'\n')
		FROM migration_tools.scheduled_statements WHERE error IS NOT NULL});
	diag "errors of scheduled statements:\n$errors" if $errors ne '';
	return $states;
}

sub has_index { return sql("SELECT to_regclass('$_[0]') IS NOT NULL"); }

# Applied: a column, then two concurrent builds on it.
sql(q{SELECT migration_tools.apply('1', 'ALTER TABLE items ADD COLUMN c int',
                                 'ALTER TABLE items DROP COLUMN c')});
# (one after the other: this test is about rollbacks, not about two
# concurrent builds on one table, which may deadlock and be retried)
sql(q{SELECT migration_tools.apply('2', 'CREATE INDEX CONCURRENTLY items_c1 ON items (c)',
                                 'DROP INDEX CONCURRENTLY items_c1')});
ok(settled('2'), 'the first concurrent build ran');
sql(q{SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY items_c2 ON items (c, a)',
                                 'DROP INDEX CONCURRENTLY items_c2')});
ok(settled('3'), 'the second concurrent build ran');
is(states(), '1=applied,2=applied,3=applied', 'all applied');

# 1. rollback() of one: scheduled, then rolled_back by the worker.
is(sql(q{SELECT migration_tools.rollback('3')}), 'scheduled', 'rollback() returns scheduled');
ok(settled('3'), 'the worker ran the down script');
is(sql(q{SELECT state || ' ' || (rolled_back_at IS NOT NULL) || ' ' || pending_statements || ' ' ||
		coalesce(scheduled_for, '-') || ' ' || coalesce(error, '-')
		FROM migration_tools.status WHERE version = '3'}),
	'rolled_back true 0 - -', 'status: rolled_back, when, nothing pending');
is(has_index('items_c2'), 'f', 'the index is gone');
is(sql(q{SELECT string_agg(direction || ':' || state, ',' ORDER BY seq)
		FROM migration_tools.scheduled_statements WHERE version = '3'}),
	'up:done,down:done', 'the up and the down statement are both kept, done');
is(sql(q{SELECT count(*) FROM migration_tools.ddl_log
		WHERE migration_version = '3' AND command_tag = 'DROP INDEX'}),
	'1', 'the DDL log knows the rollback ran for migration 3');

# Applied again (a rolled back version may be), then a third build.
sql(q{SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY items_c2 ON items (c, a)',
                                 'DROP INDEX CONCURRENTLY items_c2')});
ok(settled('3'), 'applied again');
sql(q{SELECT migration_tools.apply('4', 'CREATE INDEX CONCURRENTLY items_c3 ON items (a, c)',
                                 'DROP INDEX CONCURRENTLY items_c3')});
ok(settled('4'), 'and a third build');
is(sql(q{SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass AND indisvalid}), '4',
	'the primary key and the indexes of 2, 3 and 4 are there, valid');

# 2. rollback_to(): 4, 3, 2 newest first, then 1 whose DROP COLUMN would
# take the indexes with it if it ran first (and the DROP INDEX
# CONCURRENTLY statements would then fail).
is(sql(q{SELECT migration_tools.rollback_to('1')}), '3', 'rollback_to() counts three');
ok(settled('2', '3', '4'), 'the worker ran the three down scripts');
is(states(), '1=applied,2=rolled_back,3=rolled_back,4=rolled_back', 'newest first, all rolled back');
is(sql(q{SELECT string_agg(version, ',' ORDER BY started_at)
		FROM migration_tools.scheduled_statements WHERE direction = 'down' AND version IN ('2', '3', '4')
		  AND started_at > (SELECT max(finished_at) FROM migration_tools.scheduled_statements
		                    WHERE direction = 'up')}),
	'4,3,2', 'the down statements ran newest first');
is(sql(q{SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass}), '1',
	'only the primary key is left');

# 3. Failure: the index of 2 was dropped by hand, so its DROP INDEX
# CONCURRENTLY fails; 1 (queued after 2 by rollback_to) fails with it,
# and nothing of 1 runs.
sql(q{SELECT migration_tools.apply('2', 'CREATE INDEX CONCURRENTLY items_c1 ON items (c)',
                                 'DROP INDEX CONCURRENTLY items_c1')});
ok(settled('2'), 'applied again');
sql('DROP INDEX items_c1');
is(sql(q{SELECT migration_tools.rollback('2')}), 'scheduled', 'rollback of 2 scheduled');
ok(settled('2'), 'the worker tried');
is(sql(q{SELECT state || ' | ' || scheduled_for || ' | ' || error FROM migration_tools.status WHERE version = '2'}),
	'failed | rollback | rollback: scheduled statement 1 of the down script failed: index "items_c1" does not exist',
	'failed, with the error and what it was for');
is(sql(q{SELECT state || ' ' || attempts FROM migration_tools.scheduled_statements
		WHERE version = '2' AND direction = 'down'}),
	'failed 1', 'the statement failed once (not retryable)');

# rollback() again retries it; with the index back it succeeds.
sql('CREATE INDEX items_c1 ON items (c)');
is(sql(q{SELECT migration_tools.rollback('2')}), 'scheduled', 'rollback() retries');
ok(settled('2'), 'the worker ran it again');
is(states(), '1=applied,3=rolled_back,4=rolled_back,2=rolled_back', '2 is rolled back now');
is(has_index('items_c1'), 'f', 'the index is gone');

# The same through rollback_to(): 2 fails, 1 is failed with it without
# running, and rollback_to() again finishes both, newest first.
sql(q{SELECT migration_tools.apply('2', 'CREATE INDEX CONCURRENTLY items_c1 ON items (c)',
                                 'DROP INDEX CONCURRENTLY items_c1')});
ok(settled('2'), 'applied again');
sql(q{SELECT migration_tools.baseline('0')});
sql('DROP INDEX items_c1');
sql(q{UPDATE migration_tools.migrations SET installed_rank = 0 WHERE version = '0'});
is(sql(q{SELECT migration_tools.rollback_to('0')}), '2', 'rollback_to() of 2 and 1');
ok(settled('1', '2'), 'the worker tried');
is(sql(q{SELECT string_agg(version || '=' || state || ': ' || error, E'\n' ORDER BY version)
		FROM migration_tools.migrations WHERE version IN ('1', '2')}),
	qq{1=failed: rollback: not run, because the rollback of migration "2" failed\n} .
	qq{2=failed: rollback: scheduled statement 1 of the down script failed: index "items_c1" does not exist},
	'2 failed, and 1 with it');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'c'}),
	'1', 'nothing of 1 ran');
sql('CREATE INDEX items_c1 ON items (c)');
is(sql(q{SELECT migration_tools.rollback_to('0')}), '2', 'rollback_to() retries both');
ok(settled('1', '2'), 'the worker ran them');
is(sql(q{SELECT string_agg(version || '=' || state, ',' ORDER BY version)
		FROM migration_tools.migrations WHERE version IN ('1', '2')}),
	'1=rolled_back,2=rolled_back', 'both rolled back');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'c' AND NOT attisdropped}),
	'0', 'the column is gone');

$node->stop;
done_testing();
