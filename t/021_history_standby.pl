# On a standby the history is read-only: status and the tables can be
# read, and apply(), baseline(), rollback(), rollback_to() and
# import_history() each refuse with "during recovery" (not a confusing
# read-only or internal error), writing nothing.  After promotion they work.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $primary = PostgreSQL::Test::Cluster->new('history_primary');
$primary->init(allows_streaming => 1);
$primary->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
});
$primary->start;
$primary->safe_psql('postgres', q{
CREATE EXTENSION migration_tools;
CREATE TABLE schema_migrations (version text);
INSERT INTO schema_migrations VALUES ('20240101000000');
SELECT migration_tools.apply('001', 'CREATE TABLE t (id int)', 'DROP TABLE t');
SELECT migration_tools.apply('002', 'ALTER TABLE t ADD COLUMN v int', 'ALTER TABLE t DROP COLUMN v');
});
$primary->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('history_standby');
$standby->init_from_backup($primary, 'backup', has_streaming => 1);
$standby->start;
$primary->wait_for_catchup($standby);

is($standby->safe_psql('postgres',
		"SELECT string_agg(version || '=' || state, ',') FROM migration_tools.status"),
	'002=applied,001=applied', 'status is readable on the standby');

my @calls = (
	[ 'apply()', q{SELECT migration_tools.apply('003', 'CREATE TABLE u (id int)')} ],
	[ 'baseline()', q{SELECT migration_tools.baseline('003')} ],
	[ 'rollback()', q{SELECT migration_tools.rollback('002')} ],
	[ 'rollback_to()', q{SELECT migration_tools.rollback_to('001')} ],
	[ 'import_history()', q{SELECT migration_tools.import_history('rails')} ],
);
for my $c (@calls)
{
	my ($ret, $stdout, $stderr) = $standby->psql('postgres', $c->[1],
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	isnt($ret, 0, "$c->[0] fails on the standby");
	like($stderr, qr/ERROR:  25006: cannot execute \Q$c->[0]\E during recovery/,
		"$c->[0] on the standby: SQLSTATE 25006, \"during recovery\"");
	unlike($stderr, qr/server closed|TRAP|PANIC/, "$c->[0] on the standby: no crash");
}
is($primary->safe_psql('postgres',
		"SELECT string_agg(version || '=' || state, ',') FROM migration_tools.status"),
	'002=applied,001=applied', 'nothing was written');

$standby->promote;
is($standby->safe_psql('postgres', q{SELECT migration_tools.rollback('002')}),
	'rolled_back', 'after promotion rollback() works');
is($standby->safe_psql('postgres', q{SELECT migration_tools.import_history('rails')}),
	'1', 'after promotion import_history() works');

$standby->stop;
$primary->stop;
done_testing();
