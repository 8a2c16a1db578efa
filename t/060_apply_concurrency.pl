# apply() under concurrency, as a DBA sees it:
#  - the same version from five sessions at once is applied exactly once;
#    the other four return without error;
#  - the same version with another script from a second session is an
#    ERROR naming both checksums;
#  - while another session holds a lock the migration needs, apply() waits
#    without queueing, then retries under a short lock_timeout: the
#    application's queries on the table never stall much longer than
#    migration_tools.max_lock_timeout, and attempts and lock wait are
#    recorded; when the lock is never released, apply() gives up after
#    lock_retries attempts with a lock-timeout error and a 'failed' row.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes qw(time usleep);
use MtBackfill;

my $node = mt_node('apply_concurrency', conf => q{
migration_tools.max_preflight_wait = '500ms'
migration_tools.lock_timeout = '100ms'
migration_tools.max_lock_timeout = '300ms'
migration_tools.lock_retries = 40
});
$node->safe_psql('postgres', q{
CREATE TABLE t (id bigint PRIMARY KEY, v text);
INSERT INTO t SELECT g, 'x' FROM generate_series(1, 1000) g;
-- one application query per transaction, the longest one remembered
CREATE TABLE probe_result (max_ms float8, n int);
CREATE PROCEDURE probe(loops int) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  mx float8 := 0;
BEGIN
  FOR i IN 1 .. loops LOOP
    t0 := clock_timestamp();
    PERFORM count(*) FROM t;
    mx := greatest(mx, extract(epoch FROM clock_timestamp() - t0) * 1000);
    COMMIT;
    PERFORM pg_sleep(0.05);
    COMMIT;
  END LOOP;
  INSERT INTO probe_result VALUES (mx, loops);
END $$;
});

# 1. Five sessions apply the same version at the same moment.
my @sessions = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 5;
my $script = q{SELECT pg_sleep(0.5); ALTER TABLE t ADD COLUMN c1 int};
for my $s (@sessions)
{
	mt_send($s, qr/sent/, qq{\\echo sent
SELECT migration_tools.apply('001', \$s\$$script\$s\$) AS result \\gset
\\echo done :result
});
}
my %results;
for my $s (@sessions)
{
	# each session prints "done <result>" once its apply() has returned
	my $out = mt_collect($s, qr/done \w+/);
	$results{$1}++ if $out =~ /done (\w+)/;
}
is(join(',', map { "$_=$results{$_}" } sort keys %results), 'applied=5',
	'every deployer got "applied" back');
is($node->safe_psql('postgres',
		q{SELECT state || ' ' || attempts FROM migration_tools.migrations WHERE version = '001'}),
	'applied 1', 'five concurrent deployers: one migration row, applied once');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c1'}),
	'1', 'the column was added once');
my $errors = 0;
for my $s (@sessions)
{
	$errors++ if $s->{stderr} =~ /ERROR/;
	$s->quit;
}
is($errors, 0, 'the four other deployers got no error');

# 2. The same version with a different script: drift, both checksums named.
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT migration_tools.apply('001', 'ALTER TABLE t ADD COLUMN c2 int')});
isnt($ret, 0, 'a different script under an applied version fails');
my $recorded = $node->safe_psql('postgres',
	q{SELECT checksum FROM migration_tools.migrations WHERE version = '001'});
my $given = $node->safe_psql('postgres',
	q{SELECT encode(sha256(convert_to('ALTER TABLE t ADD COLUMN c2 int', 'UTF8')), 'hex')});
like($err, qr/\Q$recorded\E/, 'the error names the recorded checksum');
like($err, qr/\Q$given\E/, 'the error names the checksum of the given script');

# 3. A long transaction holds a lock that ALTER TABLE conflicts with.  The
# application keeps querying t meanwhile; apply() must never make it wait
# behind its ACCESS EXCLUSIVE request for long.
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT count(*) FROM t;});

my $deployer = $node->background_psql('postgres', on_error_stop => 0);
$deployer->query_until(qr/sent/, q{\echo sent
SELECT migration_tools.apply('002', 'ALTER TABLE t ADD COLUMN c3 int');
});
# the application, for about 3 s (60 x 50 ms), while the lock is held
$node->safe_psql('postgres', 'CALL probe(60)');
$holder->query_safe('COMMIT');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'applied' FROM migration_tools.migrations WHERE version = '002'}),
	'the migration is applied once the lock is released');
my $max_ms = $node->safe_psql('postgres', 'SELECT round(max_ms) FROM probe_result');
cmp_ok($max_ms, '<', 1500,
	"the application never waited long behind apply() (longest query: $max_ms ms; max_lock_timeout 300ms)");
is($node->safe_psql('postgres',
		q{SELECT attempts > 1, lock_wait_time > '0', error IS NULL
		  FROM migration_tools.migrations WHERE version = '002'}),
	't|t|t', 'attempts and lock wait are recorded');
$deployer->quit;

# 4. The lock is never released: apply() gives up after lock_retries
# attempts, with a lock timeout error; the application still never stalls.
$node->safe_psql('postgres', q{
TRUNCATE probe_result;
ALTER SYSTEM SET migration_tools.lock_retries = 3;
SELECT pg_reload_conf();
});
$holder->query_safe(q{BEGIN; SELECT count(*) FROM t;});
$deployer = $node->background_psql('postgres', on_error_stop => 0);
$deployer->query_until(qr/sent/, q{\echo sent
SELECT migration_tools.apply('003', 'ALTER TABLE t ADD COLUMN c4 int');
});
$node->safe_psql('postgres', 'CALL probe(40)');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'failed' FROM migration_tools.migrations WHERE version = '003'}),
	'a migration that never gets its lock fails');
is($node->safe_psql('postgres',
		q{SELECT attempts, error ~* 'lock timeout'
		  FROM migration_tools.migrations WHERE version = '003'}),
	'3|t', 'after lock_retries attempts, with the lock timeout as its error');
$max_ms = $node->safe_psql('postgres', 'SELECT round(max_ms) FROM probe_result');
cmp_ok($max_ms, '<', 1500,
	"the application never waited long behind the failing apply() (longest query: $max_ms ms)");
$deployer->quit;
like($deployer->{stderr}, qr/ERROR:.*lock timeout/i,
	'the deployer gets the lock timeout error');
$holder->query_safe('COMMIT');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'c4'}),
	'0', 'nothing of the failed migration is left');

# 5. lint() never waits for a table lock: with ACCESS EXCLUSIVE held on t
# by another session, it answers at once (from the catalogs).
$holder->query_safe(q{BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE;});
my $t0 = time();
my $rules = $node->safe_psql('postgres', q{
SET statement_timeout = '10s';
SELECT string_agg(rule, ',' ORDER BY rule) FROM migration_tools.lint(
  'UPDATE t SET v = ''y''; CREATE INDEX t_v ON t (v); ALTER TABLE t ALTER id TYPE numeric')});
my $elapsed = time() - $t0;
is($rules, 'change-column-type,create-index-non-concurrently,require-lock-timeout',
	'lint() of a locked table gives its findings');
cmp_ok($elapsed, '<', 5, 'without waiting for the lock');
$holder->query_safe('COMMIT');

$holder->quit;
$node->stop;
done_testing();
