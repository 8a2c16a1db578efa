# The utility guard is installed whichever way the library is loaded, not
# only by shared_preload_libraries (see _PG_init): with
# migration_tools.guard on, a session that loaded the library through
# session_preload_libraries or LOAD refuses the DDL the linter flags at
# error level; a session that never loaded it does not.  The pg_regress
# test lint_guard covers the preloaded case.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('guard_loading');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
CREATE EXTENSION migration_tools;
CREATE TABLE accounts (id bigint PRIMARY KEY, email text);
INSERT INTO accounts SELECT g, 'u' || g FROM generate_series(1, 100) g;
ALTER DATABASE postgres SET migration_tools.guard = on;
});

my $refused = qr/CREATE INDEX on existing table accounts blocks writes/;

# No preload, no LOAD: nothing installed the hook in this session.
my ($ret, $stdout, $stderr) = $node->psql('postgres', q{
CREATE INDEX accounts_email ON accounts (email);
DROP INDEX accounts_email;
});
is($ret, 0, 'a session that never loaded the library is not guarded');

# LOAD: guarded from then on.
($ret, $stdout, $stderr) = $node->psql('postgres', q{
CREATE INDEX accounts_email ON accounts (email);
DROP INDEX accounts_email;
LOAD 'migration_tools';
CREATE INDEX accounts_email ON accounts (email);
});
isnt($ret, 0, 'CREATE INDEX after LOAD fails');
like($stderr, $refused, 'the guard refuses it after LOAD');

# session_preload_libraries: guarded from the first statement.
$node->safe_psql('postgres',
	q{ALTER DATABASE postgres SET session_preload_libraries = 'migration_tools'});
($ret, $stdout, $stderr) = $node->psql('postgres',
	q{CREATE INDEX accounts_email ON accounts (email)});
isnt($ret, 0, 'CREATE INDEX with session_preload_libraries fails');
like($stderr, $refused, 'the guard refuses it with session_preload_libraries');

# The safe form passes, and the guard can be turned off again.
$node->safe_psql('postgres',
	q{CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)});
is( $node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_indexes WHERE indexname = 'accounts_email'}),
	'1', 'CREATE INDEX CONCURRENTLY passes the guard');

$node->stop;
done_testing();
