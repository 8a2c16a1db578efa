# A deployment end to end, as a DBA plays it.  Three deployers (think three
# app servers starting at once, each running its migration tool) run the
# same three migrations at the same moment: a new table, a CREATE INDEX
# CONCURRENTLY (scheduled, then applied by the worker) and a new column with
# a down script, while an application transaction holds a lock on the
# table the column goes to, and the application keeps querying and
# updating it.  Checked:
#  - each version is recorded once, its script ran once, every deployer
#    gets its state back without an error;
#  - the scheduled index build ends 'applied' with a valid index;
#  - the column migration suffered the lock and recorded attempts and
#    lock_wait_time;
#  - the application's own statements never waited much longer than
#    migration_tools.max_lock_timeout;
#  - the status view agrees: states, checksums match, nothing pending.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('deploy_concurrent', conf => q{
migration_tools.max_preflight_wait = '500ms'
migration_tools.lock_timeout = '100ms'
migration_tools.max_lock_timeout = '300ms'
migration_tools.lock_retries = 40
migration_tools.scheduled_retry_delay = '200ms'
});
$node->safe_psql('postgres', q{
CREATE TABLE orders (id bigint PRIMARY KEY, v int NOT NULL DEFAULT 0);
INSERT INTO orders SELECT g, g % 100 FROM generate_series(1, 20000) g;
CREATE TABLE customers (id bigint PRIMARY KEY, email text);
INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 20000) g;
ANALYZE orders, customers;
CREATE TABLE probe_result (max_ms float8, n int);
-- the application: a read and a write per transaction, the longest remembered
CREATE PROCEDURE probe(loops int) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  mx float8 := 0;
BEGIN
  FOR i IN 1 .. loops LOOP
    t0 := clock_timestamp();
    PERFORM v FROM orders WHERE id = i;
    UPDATE orders SET v = v + 1 WHERE id = 20000 - i;
    mx := greatest(mx, extract(epoch FROM clock_timestamp() - t0) * 1000);
    COMMIT;
    PERFORM pg_sleep(0.05);
    COMMIT;
  END LOOP;
  INSERT INTO probe_result VALUES (mx, loops);
END $$;
});

my @migrations = (
	[ '2024_01_audit', 'CREATE TABLE audit (id bigint PRIMARY KEY, what text)',
		'DROP TABLE audit' ],
	[ '2024_02_customers_email', 'CREATE INDEX CONCURRENTLY customers_email ON customers (email)',
		'DROP INDEX CONCURRENTLY customers_email' ],
	[ '2024_03_orders_note', 'ALTER TABLE orders ADD COLUMN note text',
		'ALTER TABLE orders DROP COLUMN note' ],
);

# The application's long transaction: it holds ACCESS SHARE on orders for
# about 3 s (what ADD COLUMN conflicts with).
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT count(*) FROM orders;});

my @deployers = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 3;
my $deploy = "\\echo sent\n";
for my $m (@migrations)
{
	my ($version, $up, $down) = @$m;
	$deploy .= "SELECT 'result ' || migration_tools.apply('$version', \$u\$$up\$u\$, \$d\$$down\$d\$);\n";
}
$deploy .= "\\echo finished\n";
mt_send($_, qr/sent/, $deploy) for @deployers;

# The application runs for ~3 s, then the long transaction ends.
$node->safe_psql('postgres', 'CALL probe(60)');
$holder->query_safe('COMMIT');

my %results;
my $errors = '';
for my $d (@deployers)
{
	# wait until the deployer has run its three apply() calls
	my $out = mt_collect($d, qr/finished/);
	$results{join(',', $out =~ /result (\w+)/g)}++;
	$errors .= $d->{stderr} if $d->{stderr} =~ /ERROR/;
}
# The first deployer to get version 2 gets 'scheduled'; a later one may get
# 'scheduled' or 'applied' depending on the worker, so only the others are
# compared exactly.
my @odd = grep { !/^applied,(scheduled|applied),applied$/ } sort keys %results;
is(join(' ', @odd), '', 'every deployer got the states back: applied, scheduled (or applied), applied');
is(eval { my $n = 0; $n += $_ for values %results; $n }, 3, 'all three deployers finished');
is($errors, '', 'no deployer got an error');

ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'the scheduled index build finished');

is($node->safe_psql('postgres',
		q{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank)
		  FROM migration_tools.migrations}),
	'2024_01_audit=applied,2024_02_customers_email=applied,2024_03_orders_note=applied',
	'each version recorded once, applied, in deployment order');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migration_tools.scheduled_statements WHERE version = '2024_02_customers_email'}),
	'1', 'the concurrent build was scheduled once');
is($node->safe_psql('postgres',
		q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'customers_email'::regclass}),
	't', 'the index is there and valid');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_index WHERE indrelid IN ('orders'::regclass, 'customers'::regclass) AND NOT indisvalid}),
	'0', 'no INVALID index left');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'orders'::regclass AND attname = 'note'}),
	'1', 'the column was added once');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migration_tools.ddl_log
		  WHERE migration_version = '2024_03_orders_note' AND command_tag = 'ALTER TABLE'}),
	'1', 'the DDL log has the ALTER TABLE once');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migration_tools.ddl_log
		  WHERE migration_version = '2024_01_audit' AND command_tag = 'CREATE TABLE'}),
	'1', 'the DDL log has the CREATE TABLE once');

is($node->safe_psql('postgres',
		q{SELECT attempts > 1, lock_wait_time > '0', error IS NULL
		  FROM migration_tools.migrations WHERE version = '2024_03_orders_note'}),
	't|t|t', 'the column migration waited for the lock: attempts and lock wait recorded');
is($node->safe_psql('postgres',
		q{SELECT attempts || ' ' || (lock_wait_time IS NOT NULL)
		  FROM migration_tools.migrations WHERE version = '2024_01_audit'}),
	'1 true', 'the table migration: one attempt, a lock_wait_time');
is($node->safe_psql('postgres',
		q{SELECT attempts >= 1 FROM migration_tools.migrations WHERE version = '2024_02_customers_email'}),
	't', 'the applied index migration records its attempt');

my $max_ms = $node->safe_psql('postgres', 'SELECT round(max_ms) FROM probe_result');
cmp_ok($max_ms, '<', 1500,
	"the application never waited long behind a migration (longest statement: $max_ms ms; max_lock_timeout 300ms)");

# The status view a DBA reads after the deployment.
is($node->safe_psql('postgres',
		q{SELECT string_agg(version || ' ' || s.state || ' ' || checksum_ok || ' ' || pending_statements
		         || ' ' || reversible || ' ' || (s.checksum = migration_tools.checksum(m.up_sql)),
		         ',' ORDER BY s.installed_rank DESC)
		  FROM migration_tools.status s JOIN migration_tools.migrations m USING (version)}),
	'2024_03_orders_note applied true 0 true true,2024_02_customers_email applied true 0 true true,'
	  . '2024_01_audit applied true 0 true true',
	'status: applied, checksums match, nothing pending, reversible');
is($node->safe_psql('postgres',
		q{SELECT string_agg(version, ',') FROM (SELECT version FROM migration_tools.status) s}),
	'2024_03_orders_note,2024_02_customers_email,2024_01_audit', 'status: newest first');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migration_tools.status
		  WHERE finished_at IS NULL OR execution_time IS NULL OR started_at IS NULL}),
	'0', 'status: every migration has its timings');

# A second deployment of the same migrations is a no-op, with NOTICEs.
my ($ret, $out, $err) = $node->psql('postgres', join("\n",
	map { "SELECT migration_tools.apply('$_->[0]', \$u\$$_->[1]\$u\$, \$d\$$_->[2]\$d\$);" } @migrations));
is($ret, 0, 'redeploying the same migrations succeeds');
is($out, "applied\napplied\napplied", 'and returns their states');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migration_tools.scheduled_statements}),
	'1', 'nothing is scheduled again');

# A deployer runs a concurrent index build and then a migration of the
# same table, back to back (the most ordinary deployment there is), while
# an application transaction that wrote to the table is still open.  The
# second apply() waits for the build (which holds SHARE UPDATE EXCLUSIVE);
# the build waits for every older snapshot, the deployer's included: the
# deployer must still end with both applied.  (apply() used to retry
# inside the caller's statement, whose snapshot the build waits for, and
# failed after lock_retries attempts.)  apply() now schedules the second migration to
# run after the build, and returns at once.
$holder->query_safe(q{BEGIN; UPDATE customers SET email = email WHERE id = 1;});
my $d = $deployers[0];
$d->{stderr} = '';
$d->query_safe(q{SET migration_tools.lock_retries = 6});
$d->query(q{SELECT migration_tools.apply('2024_04_customers_id_email',
	'CREATE INDEX CONCURRENTLY customers_id_email ON customers (id, email)',
	'DROP INDEX CONCURRENTLY customers_id_email')});
ok($node->poll_query_until('postgres', q{SELECT state = 'running'
		FROM migration_tools.scheduled_statements WHERE version = '2024_04_customers_id_email'}),
	'the build of 2024_04 is running');
mt_send($d, qr/sent/, q{\echo sent
SELECT 'result ' || migration_tools.apply('2024_05_customers_vip', 'ALTER TABLE customers ADD COLUMN vip boolean');
\echo finished
});
sleep 1;
$holder->query_safe('COMMIT');
my $out5 = mt_collect($d, qr/finished/);
ok($node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'the second build finished');
is($node->safe_psql('postgres',
		q{SELECT indisvalid FROM pg_index WHERE indexrelid = 'customers_id_email'::regclass}),
	't', 'the second index is valid');
like($out5, qr/result scheduled/, 'apply() of the migration after the build returns scheduled');
like($d->{stderr}, qr/migration "2024_05_customers_vip" is scheduled to run after migration "2024_04_customers_id_email"/,
	'with a NOTICE that says why');
unlike($d->{stderr}, qr/ERROR/, 'and no error');
is($node->safe_psql('postgres',
		q{SELECT state || ' ' || (attempts >= 1) || ' ' || (error IS NULL)
		  FROM migration_tools.migrations WHERE version = '2024_05_customers_vip'}),
	'applied true true', 'the migration after the build is applied, with its attempt');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'customers'::regclass AND attname = 'vip'}),
	'1', 'the column is there');
is($node->safe_psql('postgres',
		q{SELECT count(*) FROM migration_tools.ddl_log
		  WHERE migration_version = '2024_05_customers_vip' AND command_tag = 'ALTER TABLE'}),
	'1', 'the DDL log has its ALTER TABLE under its version');

# The DETAIL of a lock timeout names the lock_timeout of the last attempt.
{
	$holder->query_safe(q{BEGIN; SELECT count(*) FROM orders;});
	my ($r, $o, $e) = $node->psql('postgres', q{SET migration_tools.lock_retries = 40;
SET migration_tools.max_preflight_wait = 0;
SET migration_tools.lock_timeout = '1ms';
SET migration_tools.max_lock_timeout = '2ms';
SELECT migration_tools.apply('2024_06_orders_x', 'ALTER TABLE orders ADD COLUMN x int')});
	$holder->query_safe('COMMIT');
	like($e, qr/Gave up after 40 attempts; the last ran under lock_timeout = 2 ms/,
		'the DETAIL of the lock timeout gives the last timeout');
}

$_->quit for @deployers;
$holder->quit;
$node->stop;
done_testing();
