# The launcher: started with the server when preloaded, restarted after it
# is terminated and after an immediate shutdown, never run on a standby,
# started on promotion; and a clear error when the library is not preloaded.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $launcher_pid_sql =
  "SELECT pid FROM pg_stat_activity WHERE backend_type = 'migration_tools launcher'";

my $node = PostgreSQL::Test::Cluster->new('primary');
$node->init(allows_streaming => 1);
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
});
$node->start;
$node->safe_psql('postgres', 'CREATE EXTENSION migration_tools');

ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($launcher_pid_sql) l"),
	'launcher runs when the library is preloaded');
my $pid = $node->safe_psql('postgres', $launcher_pid_sql);

is($node->safe_psql('postgres',
		"SELECT pid FROM migration_tools.workers WHERE kind = 'launcher'"),
	$pid, 'workers view shows the launcher');

# Terminated: the postmaster starts it again after bgw_restart_time.
$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid)");
ok($node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM ($launcher_pid_sql) l WHERE pid <> $pid"),
	'launcher restarts after pg_terminate_backend');

# Immediate shutdown (crash recovery at start): back, and the extension works.
$node->stop('immediate');
$node->start;
ok($node->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($launcher_pid_sql) l"),
	'launcher runs after an immediate shutdown and restart');
is($node->safe_psql('postgres',
		"SELECT count(*) FROM migration_tools.workers WHERE kind = 'launcher'"),
	'1', 'extension works after crash recovery');

# A streaming standby: nothing runs there until it is promoted.
$node->backup('backup');
my $standby = PostgreSQL::Test::Cluster->new('standby');
$standby->init_from_backup($node, 'backup', has_streaming => 1);
$standby->start;
$node->safe_psql('postgres', 'CREATE TABLE t (id int)');
$node->wait_for_catchup($standby, 'replay', $node->lsn('insert'));
is($standby->safe_psql('postgres', "SELECT count(*) FROM ($launcher_pid_sql) l"),
	'0', 'no launcher on a standby');
is($standby->safe_psql('postgres',
		"SELECT count(*) FROM migration_tools.workers WHERE kind = 'launcher'"),
	'0', 'workers view on a standby shows no launcher');
$standby->promote;
ok($standby->poll_query_until('postgres', "SELECT count(*) = 1 FROM ($launcher_pid_sql) l"),
	'launcher starts on promotion');
$standby->stop;

# Without shared_preload_libraries, functions that need the worker refuse.
my $plain = PostgreSQL::Test::Cluster->new('plain');
$plain->init;
$plain->start;
$plain->safe_psql('postgres', 'CREATE EXTENSION migration_tools');
my ($ret, $stdout, $stderr) =
  $plain->psql('postgres', 'SELECT * FROM migration_tools.workers');
isnt($ret, 0, 'workers view fails without preload');
like($stderr, qr/requires migration_tools to be loaded via shared_preload_libraries/,
	'error names shared_preload_libraries');
like($stderr, qr/HINT:  Add "migration_tools" to shared_preload_libraries/,
	'hint says how to fix it');
$plain->stop;

$node->stop;
done_testing();
