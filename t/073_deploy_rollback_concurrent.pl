# Concurrent rollbacks end to end: three deployers roll the same deployment back at the same
# moment (rollback_to() from three sessions), with down scripts that keep
# the script order: DROP INDEX CONCURRENTLY (scheduled) followed by an
# ALTER TABLE that the worker runs after it under a short lock_timeout,
# while the application keeps querying the table and holds a lock on it
# for a while.  Checked: the rollback happens once (no down statement runs
# twice, nothing scheduled twice), the other deployers wait for the first
# and return 0 without error (a NOTICE that the rollback is already
# scheduled), as concurrent apply() calls do; the application is
# never blocked by the worker for much longer than
# migration_tools.max_lock_timeout; the end state is right.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('deploy_rollback_concurrent', conf => q{
migration_tools.max_preflight_wait = '500ms'
migration_tools.lock_timeout = '100ms'
migration_tools.max_lock_timeout = '300ms'
migration_tools.scheduled_retry_delay = '200ms'
migration_tools.scheduled_retries = 20
});
$node->safe_psql('postgres', q{
CREATE TABLE items (id int PRIMARY KEY, a int NOT NULL DEFAULT 0);
INSERT INTO items SELECT g, g FROM generate_series(1, 20000) g;
CREATE TABLE other (id int PRIMARY KEY, b int NOT NULL DEFAULT 0);
INSERT INTO other SELECT g, g FROM generate_series(1, 1000) g;
ANALYZE items, other;
CREATE TABLE probe_result (max_ms float8, n int);
CREATE PROCEDURE probe(loops int) LANGUAGE plpgsql AS $$
DECLARE
  t0 timestamptz;
  mx float8 := 0;
BEGIN
  FOR i IN 1 .. loops LOOP
    t0 := clock_timestamp();
    PERFORM b FROM other WHERE id = i;
    mx := greatest(mx, extract(epoch FROM clock_timestamp() - t0) * 1000);
    COMMIT;
    PERFORM pg_sleep(0.05);
    COMMIT;
  END LOOP;
  INSERT INTO probe_result VALUES (mx, loops);
END $$;
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sql(q{SELECT migration_tools.baseline('0')});
sql(q{SELECT migration_tools.apply('1', 'ALTER TABLE other ADD COLUMN c int',
	'ALTER TABLE other DROP COLUMN c')});
sql(q{SELECT migration_tools.apply('2', 'CREATE INDEX CONCURRENTLY items_a ON items (a); ALTER TABLE items ADD COLUMN d int',
	'DROP INDEX CONCURRENTLY items_a; ALTER TABLE items DROP COLUMN d')});
ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'deployed');
is(sql(q{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank) FROM migration_tools.migrations}),
	'0=applied,1=applied,2=applied', 'all applied');

# The application holds ACCESS SHARE on other for a while: the down
# statement of 1 (queued after those of 2) has to wait for it, under the
# short lock_timeout, while the application keeps querying other.
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; SELECT count(*) FROM other;});

my @deployers = map { $node->background_psql('postgres', on_error_stop => 0) } 1 .. 3;
mt_send($_, qr/sent/, qq{\\echo sent
SELECT 'result ' || migration_tools.rollback_to('0');
\\echo finished
}) for @deployers;

# The application runs ~4 s; the lock is released once the worker has
# lost two attempts to it.
my $probe = $node->background_psql('postgres');
mt_send($probe, qr/sent/, qq{\\echo sent
CALL probe(80);
\\echo finished
});
ok(mt_poll($node, 'postgres', q{SELECT attempts >= 2 AND state <> 'done' FROM migration_tools.scheduled_statements
		WHERE version = '1' AND direction = 'down'}),
	'the down statement of 1 waits for the application lock, retrying');
$holder->query_safe('COMMIT');
mt_collect($probe, qr/finished/);

my @results;
my ($errors, $skipped) = ('', 0);
for my $d (@deployers)
{
	my $out = mt_collect($d, qr/finished/);
	push @results, join(',', $out =~ /result (\w+)/g);
	$errors .= join("\n", grep { /ERROR/ } split /\n/, $d->{stderr});
	# (the worker may be done with "2" before they look; "1" waits for the
	# application's lock)
	$skipped++ if $d->{stderr} =~ /rollback of migration "1" is already scheduled, skipping/;
}
note "results: @results\nerrors: $errors";
is($errors, '', 'no deployer got an error');
is(join(',', sort @results), '0,0,2',
	'one deployer rolled back two migrations, the two others none');
is($skipped, 2, 'the two others said the rollbacks were already scheduled');

ok(mt_poll($node, 'postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
	'the scheduled rollback finished');
is(sql(q{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank) FROM migration_tools.migrations}),
	'0=applied,1=rolled_back,2=rolled_back', 'rolled back once');
is(sql(q{SELECT string_agg(version || ' ' || seq || ' ' || direction || ' ' || state, ',' ORDER BY version, seq)
		FROM migration_tools.scheduled_statements}),
	'1 1 down done,2 1 up done,2 2 down done,2 3 down done',
	'the down statements were scheduled once, in script order, and ran');
is(sql(q{SELECT count(*) FROM migration_tools.ddl_log
		WHERE command_tag = 'ALTER TABLE' AND event = 'ddl_command_end'
		  AND migration_version IN ('1', '2')}),
	'4', 'each ALTER TABLE ran once (two up, two down)');
is(sql(q{SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass}), '1', 'only the primary key left');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid IN ('items'::regclass, 'other'::regclass)
		AND attname IN ('c', 'd') AND NOT attisdropped}),
	'0', 'the columns c and d are gone');

my $max_ms = sql('SELECT round(max_ms) FROM probe_result');
cmp_ok($max_ms, '<', 1500,
	"the application never waited long behind the rollback (longest query: $max_ms ms; max_lock_timeout 300ms)");

$_->quit for @deployers;
$holder->quit;
$probe->quit;
$node->stop;
done_testing();
