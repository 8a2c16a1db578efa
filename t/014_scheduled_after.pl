# apply() of a migration that locks a relation on which an earlier
# migration still has scheduled statements (a concurrent build queued or
# running): it does not wait in the caller's statement (whose snapshot the
# build waits for), it schedules the whole script to run after that
# migration (run_after) and returns 'scheduled'.  Checked: the NOTICE, the
# rows queued, re-applying while scheduled, the normal path for other
# tables, a chain of three, the order inside one transaction, and the
# failure cascade ("not run, because migration N failed").
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('scheduled_after', conf => q{
migration_tools.scheduled_retry_delay = '200ms'
migration_tools.max_lock_timeout = '500ms'
});
$node->safe_psql('postgres', q{
CREATE TABLE items (id int PRIMARY KEY, a int, dup int);
INSERT INTO items SELECT g, g, g % 10 FROM generate_series(1, 5000) g;
CREATE TABLE other (id int PRIMARY KEY);
});

sub sql { return $node->safe_psql('postgres', $_[0]); }

sub settled
{
	return $node->poll_query_until('postgres',
		q{SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'});
}

sub states
{
	my ($from) = @_;
	return sql(qq{SELECT string_agg(version || '=' || state, ',' ORDER BY installed_rank)
		FROM migration_tools.migrations WHERE installed_rank >= (SELECT installed_rank
		  FROM migration_tools.migrations WHERE version = '$from')});
}

# An application transaction that wrote to items: a concurrent build on
# items waits for it (and stays 'running') until it ends.
my $holder = $node->background_psql('postgres');
$holder->query_safe(q{BEGIN; UPDATE items SET a = a WHERE id = 1;});

is(sql(q{SELECT migration_tools.apply('1', 'CREATE INDEX CONCURRENTLY items_a ON items (a)',
                                      'DROP INDEX CONCURRENTLY items_a')}),
	'scheduled', 'the concurrent build is scheduled');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'running' FROM migration_tools.scheduled_statements WHERE version = '1'}),
	'the build runs (and waits for the application transaction)');

# The next migration of the same table: scheduled after '1', at once.
my ($ret, $out, $err) = $node->psql('postgres',
	q{SELECT migration_tools.apply('2', 'ALTER TABLE items ADD COLUMN b int; UPDATE items SET b = 0 WHERE id < 10',
	                               'ALTER TABLE items DROP COLUMN b')},
	on_error_stop => 0);
is($ret, 0, 'apply() of the migration behind the build succeeds');
is($out, 'scheduled', 'and returns scheduled');
like($err, qr/NOTICE:  migration "2" is scheduled to run after migration "1"/, 'NOTICE: after which migration');
like($err, qr/DETAIL:  Scheduled statements of migration "1" on relation "items" are running/, 'DETAIL: why');
like($err, qr/HINT:  Wait until migration_tools.status shows it no longer scheduled: SELECT state, error FROM migration_tools.status WHERE version = '2';/,
	'HINT: how to wait');
is(sql(q{SELECT string_agg(seq || ' ' || statement_no || ' ' || direction || ' ' || run_after::text || ' '
		    || top_level || ' ' || state || ' ' || sql, E'\n' ORDER BY seq)
		  FROM migration_tools.scheduled_statements WHERE version = '2'}),
	"1 1 up {1} false pending ALTER TABLE items ADD COLUMN b int;\nUPDATE items SET b = 0 WHERE id < 10",
	'its statements are queued as one in-transaction group after "1"');
is(sql(q{SELECT state || ' ' || scheduled_for || ' ' || pending_statements || ' ' || attempts
		  FROM migration_tools.status WHERE version = '2'}),
	'scheduled apply 1 0', 'status: scheduled for apply, nothing ran yet');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'b'}),
	'0', 'nothing of it ran');

# Re-applying it while scheduled: a no-op; with another script: drift.
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT migration_tools.apply('2', 'ALTER TABLE items ADD COLUMN b int; UPDATE items SET b = 0 WHERE id < 10')});
is($out, 'scheduled', 're-applying it while scheduled returns scheduled');
like($err, qr/migration "2" is already scheduled, skipping/, 'with the usual NOTICE');
($ret, $out, $err) = $node->psql('postgres',
	q{SELECT migration_tools.apply('2', 'ALTER TABLE items ADD COLUMN b bigint')});
like($err, qr/already applied with a different checksum/, 'another script under the same version is refused');

# A third migration of the same table queues behind the second.
is(sql(q{SELECT migration_tools.apply('3', 'CREATE INDEX CONCURRENTLY items_b ON items (b)',
                                      'DROP INDEX CONCURRENTLY items_b')}),
	'scheduled', 'a third migration of the table is scheduled');
is(sql(q{SELECT string_agg(coalesce(run_after::text, '-') || ' ' || top_level, ',' ORDER BY seq)
		  FROM migration_tools.scheduled_statements WHERE version = '3'}),
	'{2,1} true', 'after the second one, and the build of the first (both have statements on items not done)');

# Another table: the normal path, at once.
is(sql(q{SELECT migration_tools.apply('4', 'ALTER TABLE other ADD COLUMN x int')}),
	'applied', 'a migration of another table is applied at once');
is(sql(q{SELECT count(*) FROM migration_tools.scheduled_statements WHERE version = '4'}),
	'0', 'nothing of it is scheduled');

$holder->query_safe('COMMIT');
ok(settled(), 'everything scheduled ran');
is(states('1'), '1=applied,2=applied,3=applied,4=applied', 'all applied');
is(sql(q{SELECT count(*) FROM items WHERE b = 0}), '9', 'the column was added and filled');
is(sql(q{SELECT string_agg(c.relname || ' ' || i.indisvalid, ',' ORDER BY c.relname)
		  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		 WHERE i.indrelid = 'items'::regclass AND c.relname <> 'items_pkey'}),
	'items_a true,items_b true', 'both indexes are built and valid');
is(sql(q{SELECT string_agg(version || ' ' || attempts || ' ' || (finished_at IS NOT NULL)
		    || ' ' || (catalog_fingerprint IS NOT NULL), ',' ORDER BY installed_rank)
		  FROM migration_tools.migrations WHERE version IN ('1', '2', '3')}),
	'1 1 true true,2 1 true true,3 1 true true',
	'each records one attempt, its timings and a fingerprint');
is(sql(q{SELECT string_agg(migration_version, ',' ORDER BY id)
		  FROM migration_tools.ddl_log WHERE migration_version IN ('1', '2', '3')
		   AND command_tag IN ('CREATE INDEX', 'ALTER TABLE')}),
	'1,2,3', 'they ran in order, under their versions');

# In one transaction: the build is queued (not running yet), and the next
# migration of the table still runs after it, keeping the script order.
$node->safe_psql('postgres', q{
BEGIN;
SELECT migration_tools.apply('5', 'CREATE INDEX CONCURRENTLY items_c ON items (a, id)');
SELECT migration_tools.apply('6', 'ALTER TABLE items DROP COLUMN b');
COMMIT;
});
is(sql(q{SELECT run_after::text FROM migration_tools.scheduled_statements WHERE version = '6'}),
	'{5}', 'in one transaction: the second runs after the queued build');
ok(settled(), 'both ran');
is(states('5'), '5=applied,6=applied', 'both applied');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname = 'b' AND NOT attisdropped}),
	'0', 'the column is gone');

# The failure cascade: a unique build that fails on duplicates, with two
# migrations queued behind it.
$holder->query_safe(q{BEGIN; UPDATE items SET a = a WHERE id = 1;});
is(sql(q{SELECT migration_tools.apply('7', 'CREATE UNIQUE INDEX CONCURRENTLY items_dup ON items (dup)')}),
	'scheduled', 'a unique build that will fail is scheduled');
ok($node->poll_query_until('postgres',
		q{SELECT state = 'running' FROM migration_tools.scheduled_statements WHERE version = '7'}),
	'it runs');
is(sql(q{SELECT migration_tools.apply('8', 'ALTER TABLE items ADD COLUMN d int')}),
	'scheduled', 'the next migration is scheduled after it');
is(sql(q{SELECT migration_tools.apply('9', 'ALTER TABLE items ADD COLUMN e int')}),
	'scheduled', 'and the one after that after the next');
$holder->query_safe('COMMIT');
ok(settled(), 'nothing is scheduled any more');
is(sql(q{SELECT string_agg(version || '=' || state || ': ' || regexp_replace(error, ' \(Key .*', '', 's'), E'\n' ORDER BY installed_rank)
		  FROM migration_tools.migrations WHERE version IN ('7', '8', '9')}),
	qq{7=failed: scheduled statement 1 failed: could not create unique index "items_dup"\n}
	  . qq{8=failed: not run, because migration "7" failed\n}
	  . qq{9=failed: not run, because migration "7" failed},
	'the build failed, and the two behind it failed without running');
is(sql(q{SELECT string_agg(version || ' ' || state, ',' ORDER BY version)
		  FROM migration_tools.scheduled_statements WHERE version IN ('8', '9')}),
	'8 pending,9 pending', 'their statements never ran');
is(sql(q{SELECT count(*) FROM pg_attribute WHERE attrelid = 'items'::regclass AND attname IN ('d', 'e')}),
	'0', 'no column was added');
is(sql(q{SELECT string_agg(version || ' ' || scheduled_for || ' ' || (finished_at IS NOT NULL), ',' ORDER BY version)
		  FROM migration_tools.status WHERE version IN ('8', '9')}),
	'8 apply true,9 apply true', 'status: failed in the apply, with a finish time');
is(sql(q{SELECT count(*) FROM pg_index WHERE indrelid = 'items'::regclass AND NOT indisvalid}),
	'0', 'no INVALID index left');

# Applying them again: nothing is scheduled any more, the normal path.
is(sql(q{SELECT migration_tools.apply('8', 'ALTER TABLE items ADD COLUMN d int')}),
	'applied', 'a failed migration is applied again, at once');
is(sql(q{SELECT count(*) FROM migration_tools.scheduled_statements WHERE version = '8'}),
	'0', 'its old scheduled statements are gone');

$holder->quit;
$node->stop;
done_testing();
