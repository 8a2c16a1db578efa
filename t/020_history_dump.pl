# The migration history is data of the database: pg_dump writes it, and a
# restore into a fresh database (CREATE EXTENSION, then the dumped rows)
# gives back the same status, checksums and order, so that apply() there
# knows what was applied.  Also: a failed apply() leaves its 'failed' row
# even when the server is restarted right after; a scheduled migration is
# finished by the worker; without a free worker slot a failure is not
# recorded, with a warning.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('history_dump');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
});
$node->start;

$node->safe_psql('postgres', q{
CREATE DATABASE source;
});
$node->safe_psql('source', q{
CREATE EXTENSION migration_tools;
CREATE TABLE accounts (id bigint PRIMARY KEY);
SELECT migration_tools.baseline('000', 'before');
SELECT migration_tools.apply('001', 'ALTER TABLE accounts ADD COLUMN name text',
                             'ALTER TABLE accounts DROP COLUMN name', 'names');
SELECT migration_tools.apply('002', 'CREATE TABLE plans (id bigint PRIMARY KEY)',
                             'DROP TABLE plans');
SELECT migration_tools.rollback('002');
});

# a failing migration: the error reaches the caller, the row stays
my ($ret, $out, $err) = $node->psql('source',
	q{SELECT migration_tools.apply('003', 'ALTER TABLE nowhere ADD COLUMN x int')});
isnt($ret, 0, 'failing apply() fails');
like($err, qr/relation "nowhere" does not exist/, 'with the error of the script');
like($err, qr/migration "003", statement 1/, 'and the migration in the context');

$node->restart;
is($node->safe_psql('source',
		q{SELECT state || ' ' || error FROM migration_tools.status WHERE version = '003'}),
	'failed statement 1: relation "nowhere" does not exist (SQLSTATE 42P01)',
	'failed row survives a restart');

my $status_query = q{
SELECT string_agg(format('%s %s %s %s %s', version, state, checksum, checksum_ok,
                         coalesce(description, '-')), E'\n' ORDER BY installed_rank DESC)
FROM migration_tools.status};
my $before = $node->safe_psql('source', $status_query);
like($before, qr/^003 failed .*\n002 rolled_back .*\n001 applied .* t names\n000 applied .* t before$/,
	'status before the dump');

# pg_dump writes the rows of the history tables
my $dumpfile = $node->basedir . '/source.sql';
$node->command_ok(
	[ 'pg_dump', '-d', $node->connstr('source'), '-f', $dumpfile ],
	'pg_dump');
my $dump = slurp_file($dumpfile);
like($dump, qr/COPY migration_tools\.migrations /, 'the dump has the migrations rows');
like($dump, qr/ALTER TABLE accounts ADD COLUMN name text/, 'with their scripts');
like($dump, qr/migrations_installed_rank_seq/, 'and the sequence position');

# restore into a new database
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok(
	[ 'psql', '-X', '-v', 'ON_ERROR_STOP=1', '-q', '-d', $node->connstr('restored'), '-f', $dumpfile ],
	'restore');
is($node->safe_psql('restored', $status_query), $before, 'same status after restore');

# the restored database knows what is applied: a no-op, and new versions
# come after the restored ones
$node->safe_psql('restored', q{
SELECT migration_tools.apply('001', 'ALTER TABLE accounts ADD COLUMN name text');
SELECT migration_tools.apply('004', 'CREATE TABLE orders (id bigint PRIMARY KEY)');
});
is($node->safe_psql('restored',
		q{SELECT string_agg(version, ',' ORDER BY installed_rank DESC) FROM migration_tools.status}),
	'004,003,002,001,000', 'new migrations are newest after the restore');
is($node->safe_psql('restored',
		q{SELECT attempts FROM migration_tools.status WHERE version = '001'}),
	'1', 'no-op re-apply in the restored database');

# apply() with a statement that cannot run in a transaction block: the
# other statements run now, the migration is 'scheduled', and the worker
# finishes it after commit.
is($node->safe_psql('restored', q{
SELECT migration_tools.apply('005',
    'ALTER TABLE orders ADD COLUMN ref text; CREATE INDEX CONCURRENTLY orders_ref ON orders (ref)',
    'DROP INDEX orders_ref; ALTER TABLE orders DROP COLUMN ref');
}), 'scheduled', 'apply() of a concurrent index build is scheduled');
ok($node->poll_query_until('restored',
		q{SELECT state = 'applied' FROM migration_tools.status WHERE version = '005'}),
	'the worker applies it');
is($node->safe_psql('restored',
		q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'orders_ref'::regclass}),
	't', 'the index is valid');
is($node->safe_psql('restored',
		q{SELECT pending_statements FROM migration_tools.status WHERE version = '005'}),
	'0', 'nothing pending');

# No background worker slot left (the launcher takes the only one): the
# failure cannot be recorded; apply() warns and still reports the error.
$node->append_conf('postgresql.conf', 'max_worker_processes = 1');
$node->restart;
($ret, $out, $err) = $node->psql('restored',
	q{SELECT migration_tools.apply('006', 'ALTER TABLE nowhere ADD COLUMN x int')});
isnt($ret, 0, 'failing apply() without a free worker slot fails');
like($err, qr/WARNING:  could not record the failure of migration "006"/,
	'with a warning that the failure is not recorded');
like($err, qr/ERROR:  relation "nowhere" does not exist/, 'and the error of the script');
is($node->safe_psql('restored',
		q{SELECT count(*) FROM migration_tools.status WHERE version = '006'}),
	'0', 'nothing recorded');

$node->stop;
done_testing();
