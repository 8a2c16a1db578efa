# Security of what deployers share (SPEC section 8), replayed with real
# processes: the statements of a down script that the worker runs run as
# the role that recorded the migration, not as whoever rolled it back (a
# non-superuser admin must not become superuser through a superuser's
# rollback); scheduled statements of an up script run as the role that
# applied it; the serialization of apply() cannot be blocked by a role
# without privileges (the old advisory key), and the wait for another
# deployer is bounded, with an error naming it.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MtBackfill qw(mt_send mt_collect);

my $node = PostgreSQL::Test::Cluster->new('security_deployers');
$node->init;
$node->append_conf('postgresql.conf', qq{
shared_preload_libraries = 'migration_tools'
migration_tools.launcher_naptime = '1s'
migration_tools.scheduled_retry_delay = '200ms'
});
$node->start;
$node->safe_psql('postgres', q{
CREATE EXTENSION migration_tools;
CREATE ROLE regress_mt_ops LOGIN IN ROLE migration_tools_admin;
CREATE ROLE regress_mt_mallory LOGIN;
CREATE SCHEMA sec_ops AUTHORIZATION regress_mt_ops;
CREATE TABLE public.su_t (id int);
GRANT SELECT ON public.su_t TO regress_mt_ops;
});

sub sql { return $node->safe_psql('postgres', $_[0]); }
sub as_ops { return $node->safe_psql('postgres', "SET ROLE regress_mt_ops;\n$_[0]"); }

sub settled
{
	my ($version) = @_;
	return $node->poll_query_until('postgres',
		"SELECT state <> 'scheduled' FROM migration_tools.migrations WHERE version = '$version'");
}

# 1. ops records a down script whose statements the worker runs (DROP INDEX
# CONCURRENTLY cannot run in a transaction block; the ALTER ROLE after it
# is scheduled behind it), then a superuser rolls it back.
as_ops(q{
CREATE TABLE sec_ops.t (id int);
SELECT migration_tools.apply('100', 'CREATE INDEX t_id ON sec_ops.t (id)',
    'DROP INDEX CONCURRENTLY sec_ops.t_id; ALTER ROLE regress_mt_ops SUPERUSER',
    allow => '{create-index-non-concurrently}');
});
is(sql(q{SELECT migration_tools.rollback('100')}), 'scheduled',
	'the rollback is scheduled for the worker');
ok(settled('100'), 'the worker ran the scheduled down statements');
is(sql(q{SELECT rolsuper FROM pg_roles WHERE rolname = 'regress_mt_ops'}), 'f',
	'ops did not become superuser through the worker');
# (the server's message for the refused ALTER ROLE: 15 "must be superuser
# to alter superuser roles ...", 16+ "permission denied to alter role")
is(sql(q{SELECT state || ': ' || (error ~ '(must be superuser|permission denied to alter role)')
		 FROM migration_tools.migrations WHERE version = '100'}),
	'failed: true', 'the ALTER ROLE failed as ops, and the migration with it');
is(sql(q{SELECT string_agg(run_as || ' ' || state, ',' ORDER BY seq)
		 FROM migration_tools.scheduled_statements WHERE version = '100' AND direction = 'down'}),
	'regress_mt_ops done,regress_mt_ops failed',
	'both scheduled down statements ran as ops: the index drop (ops owns it), not the ALTER ROLE');

# 2. A scheduled statement of an up script runs as the role that applied
# it: ops may not build an index on a table of the superuser.
as_ops(q{SELECT migration_tools.apply('101', 'CREATE INDEX CONCURRENTLY su_t_id ON public.su_t (id)')});
ok(settled('101'), 'the worker ran the scheduled up statement');
is(sql(q{SELECT state || ': ' || (error LIKE '%must be owner of table su_t%')
		 FROM migration_tools.migrations WHERE version = '101'}),
	'failed: true', 'the concurrent build ran as ops, who does not own the table');
is(sql(q{SELECT to_regclass('public.su_t_id') IS NULL}), 't', 'no index was built');
sql(q{DELETE FROM migration_tools.migrations WHERE version IN ('100', '101')});

# 3. mallory holds the advisory key apply() used to serialize on: apply()
# does not wait for it.
my $mallory = $node->background_psql('postgres');
$mallory->query_safe(q{SET ROLE regress_mt_mallory; SELECT pg_advisory_lock(7887033719535463545);});
my ($ret, $out, $err) = $node->psql('postgres', q{
SET ROLE regress_mt_ops;
SET statement_timeout = '10s';
SELECT migration_tools.apply('200', 'CREATE TABLE sec_ops.t200 (id int)');
});
is($out, 'applied', "apply() is not blocked by mallory's advisory lock");
is($err, '', 'no error (no statement timeout)');
$mallory->quit;

# 4. A deployer holds the history lock: another waits up to
# migration_tools.max_deployer_wait, then fails naming it in the primary
# message; readers of status are not blocked meanwhile.
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{SET application_name = 'deployer_one'; SET ROLE regress_mt_ops;});
my $holder_pid = $holder->query_safe('SELECT pg_backend_pid()');
$holder->query_safe(q{BEGIN; SELECT migration_tools.apply('300', 'CREATE TABLE sec_ops.t300 (id int)');});

($ret, $out, $err) = $node->psql('postgres', q{
SET ROLE regress_mt_mallory;
SET statement_timeout = '5s';
SELECT count(*) >= 1 FROM migration_tools.status;
});
is($out, 't', 'a reader of status is not blocked by a deployer');

($ret, $out, $err) = $node->psql('postgres', q{
SET ROLE regress_mt_ops;
SET migration_tools.max_deployer_wait = '300ms';
\set VERBOSITY verbose
SELECT migration_tools.apply('301', 'CREATE TABLE sec_ops.t301 (id int)');
});
like($err,
	qr/ERROR:  55P03: could not lock the migration history: process $holder_pid \(application_name "deployer_one", transaction age [0-9:.]+\) holds it/,
	'the waiting deployer fails after max_deployer_wait, naming the holder, its application_name and transaction age');

# a session's own shorter lock_timeout counts too
($ret, $out, $err) = $node->psql('postgres', q{
SET ROLE regress_mt_ops;
SET lock_timeout = '200ms';
SELECT migration_tools.apply('301', 'CREATE TABLE sec_ops.t301 (id int)');
});
like($err, qr/could not lock the migration history: process $holder_pid /,
	'a shorter lock_timeout of the session ends the wait too, with the same error');

# the holder commits: the other deployer goes through
$holder->query_safe('COMMIT');
is(as_ops(q{SET migration_tools.max_deployer_wait = '300ms';
SELECT migration_tools.apply('301', 'CREATE TABLE sec_ops.t301 (id int)')}),
	'applied', 'once the holder committed, the next deployer applies');
$holder->quit;

# 5. Deployers still wait for each other (the same version from two
# sessions is applied once): the second waits, then finds it applied.
my $first = $node->background_psql('postgres');
$first->query_safe(q{BEGIN; SELECT migration_tools.apply('400', 'CREATE TABLE sec_ops.t400 (id int)');});
my $second = $node->background_psql('postgres', on_error_stop => 0);
mt_send($second, qr/sent/, q{\echo sent
SELECT 'result ' || migration_tools.apply('400', 'CREATE TABLE sec_ops.t400 (id int)');
\echo finished
});
ok($node->poll_query_until('postgres',
		q{SELECT count(*) > 0 FROM pg_locks WHERE NOT granted
		  AND relation = 'migration_tools.migrations'::regclass}),
	'the second deployer waits for the first');
$first->query_safe('COMMIT');
my $res = mt_collect($second, qr/finished/);
like($res, qr/result applied/, 'the second deployer finds the version applied');
is(sql(q{SELECT count(*) FROM migration_tools.migrations WHERE version = '400'}), '1',
	'applied once');
$first->quit;
$second->quit;

$node->stop;
done_testing();
