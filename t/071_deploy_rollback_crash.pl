# A rollback end to end: rollback_to() over a deployment whose down scripts include
# DROP INDEX CONCURRENTLY (scheduled for the worker), with the worker
# killed (kill -9, so the server goes through crash recovery) while it runs
# the scheduled DROP INDEX CONCURRENTLY.  Checked: nobody has to act after
# the restart; the rollback completes newest first; the down statement
# that was interrupted is taken up again and the others run once; no
# INVALID index is left; the history and the status view say so; and
# while the rollback is scheduled, apply() / rollback() of that version
# are refused.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('deploy_rollback_crash', conf => q{
migration_tools.scheduled_retry_delay = '200ms'
});
$node->safe_psql('postgres', q{
CREATE TABLE items (id int PRIMARY KEY, a int NOT NULL DEFAULT 0);
INSERT INTO items SELECT g, g FROM generate_series(1, 20000) g;
ANALYZE items;
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub states
{
	return sql(q{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank)
		FROM migration_tools.migrations});
}

# The deployment: four migrations, the third a concurrent build.
sql(q{SELECT migration_tools.apply('1', 'CREATE TABLE audit (id int PRIMARY KEY)', 'DROP TABLE audit')});
sql(q{SELECT migration_tools.apply('2', 'ALTER TABLE items ADD COLUMN c int', 'ALTER TABLE items DROP COLUMN c')});
sql(q{SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY items_c ON items (c)',
                                 'DROP INDEX CONCURRENTLY items_c')});
ok(mt_poll($node, 'postgres',
		q{SELECT state = 'applied' FROM migration_tools.migrations WHERE version = '3'}),
	'the concurrent build was applied by the worker');
sql(q{SELECT migration_tools.apply('4', 'CREATE TABLE notes (id int PRIMARY KEY)', 'DROP TABLE notes')});
is(states(), '1=applied,2=applied,3=applied,4=applied', 'deployed');

# An application transaction touches items: DROP INDEX CONCURRENTLY has to
# wait for it (after it has marked the index invalid), so the worker is
# busy with it when it is killed.
my $holder = $node->background_psql('postgres', on_error_stop => 0);
$holder->query_safe(q{BEGIN; UPDATE items SET a = a WHERE id = 1;});

is(sql(q{SELECT migration_tools.rollback_to('1')}), '3', 'rollback_to() counts three migrations');
is(sql(q{SELECT to_regclass('notes') IS NULL}), 't',
	'the newest down script (no top-level statement) ran at once');
is(sql(q{SELECT string_agg(version || '=' || state || '/' || coalesce(scheduled_for, '-'), ',' ORDER BY installed_rank)
		FROM migration_tools.status}),
	'1=applied/-,2=scheduled/rollback,3=scheduled/rollback,4=rolled_back/-',
	'status: 3 and 2 scheduled for the rollback, 4 rolled back');

my $wpid_sql = q{SELECT a.pid FROM pg_stat_activity a
	WHERE a.backend_type = 'migration_tools worker' AND a.wait_event_type = 'Lock'
	  AND EXISTS (SELECT 1 FROM migration_tools.scheduled_statements s
	              WHERE s.version = '3' AND s.direction = 'down' AND s.state = 'running')};
ok(mt_poll($node, 'postgres', "SELECT count(*) = 1 FROM ($wpid_sql) w"),
	'the worker runs the DROP INDEX CONCURRENTLY of 3 and waits for the application');
my $wpid = sql($wpid_sql);
is(sql(q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_c'::regclass}), 'f',
	'the index is already marked invalid');

# Meanwhile the version is locked against other changes; the same
# rollback requested again is a no-op.
my ($ret, $out, $err) = $node->psql('postgres', q{SELECT migration_tools.rollback('3')});
is($ret . ' ' . $out, '0 scheduled', 'rollback() of a version being rolled back returns scheduled');
like($err, qr/NOTICE:  rollback of migration "3" is already scheduled, skipping/,
	'with a NOTICE, and nothing else happens');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY items_c ON items (c)', 'DROP INDEX CONCURRENTLY items_c')});
like($err, qr/being rolled back/, 'apply() of it too');
is(sql(q{SELECT attname FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'c'}), 'c',
	'the column of 2 is still there (its rollback runs after 3)');

# kill -9 the worker: the postmaster resets every backend (the
# application's transaction goes too) and restarts.
ok(kill('KILL', $wpid), "worker $wpid killed");
eval { $holder->quit; };

ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}, 't', 90),
	'after the crash the rollback completes without anyone acting');
is(states(), '1=applied,2=rolled_back,3=rolled_back,4=rolled_back', 'newest first, all rolled back, 1 stays');
is(sql(q{SELECT count(*) FROM pg_class WHERE relname = 'items_c'}), '0', 'the index is gone');
is(sql(q{SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass AND NOT indisvalid}), '0',
	'no INVALID index left');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'c' AND NOT attisdropped}),
	'0', 'the column of 2 is gone');
is(sql(q{SELECT to_regclass('audit') IS NOT NULL}), 't', 'the table of 1 is still there');
is(sql(q{SELECT string_agg(version || ':' || state || ':' || attempts, ',' ORDER BY version)
		FROM migration_tools.scheduled_statements WHERE direction = 'down'}),
	'2:done:1,3:done:2', 'the interrupted statement ran again once, the next one once');
is(sql(q{SELECT string_agg(version, ',' ORDER BY started_at)
		FROM migration_tools.scheduled_statements WHERE direction = 'down'}),
	'3,2', 'the down statements finished newest first');
is(sql(q{SELECT count(*) FROM migration_tools.ddl_log
		WHERE migration_version = '2' AND command_tag = 'ALTER TABLE' AND event = 'ddl_command_end'}),
	'2', 'the DDL log has the ADD and the DROP of 2, once each');
is(sql(q{SELECT count(*) FROM migration_tools.ddl_log
		WHERE migration_version = '3' AND command_tag = 'DROP INDEX' AND object_identity = 'public.items_c'}),
	'1', 'and the drop of the index once (the killed attempt left no trace)');
is(sql(q{SELECT string_agg(version || ' ' || state || ' ' || (rolled_back_at IS NOT NULL) || ' '
		        || pending_statements || ' ' || coalesce(error, '-'), ',' ORDER BY installed_rank)
		FROM migration_tools.status}),
	'1 applied false 0 -,2 rolled_back true 0 -,3 rolled_back true 0 -,4 rolled_back true 0 -',
	'status: rolled back, when, nothing pending, no error');

# The DBA deploys again: everything comes back.
sql(q{SELECT migration_tools.apply('2', 'ALTER TABLE items ADD COLUMN c int', 'ALTER TABLE items DROP COLUMN c')});
sql(q{SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY items_c ON items (c)',
                                 'DROP INDEX CONCURRENTLY items_c')});
sql(q{SELECT migration_tools.apply('4', 'CREATE TABLE notes (id int PRIMARY KEY)', 'DROP TABLE notes')});
ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'redeployed');
is(states(), '1=applied,2=applied,3=applied,4=applied', 'all applied again');
is(sql(q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'items_c'::regclass}), 't', 'with a valid index');

$node->stop;
done_testing();
