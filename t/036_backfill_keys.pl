# The key strategy's checkpoint is the last key done, kept as text: it must
# survive keys that are awkward as text (the string NULL, commas, quotes,
# braces, backslashes, spaces, the empty string, non-ASCII), fractional
# and negative numbers, and a partitioned table walked over the parent's
# key, each with the worker killed mid-job.  A job follows its table by
# oid: renaming the table or its schema mid-job changes nothing.  Names
# that need quoting are quoted.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('keys');

# Text keys, one per batch, so that the checkpoint stops on each of them.
$node->safe_psql('postgres', q{
CREATE TABLE tt (id text PRIMARY KEY, counter int NOT NULL DEFAULT 0);
INSERT INTO tt (id) VALUES ('NULL'), ('null'), (''), (' '), ('a,b'), ('{}'), ('{a,b}'),
	('"'), ('""'), (chr(92)), (chr(92) || '"'), (chr(39)), ('x y'), (' lead'), ('trail '),
	('tab' || chr(9) || 'here'), ('new' || chr(10) || 'line'), ('ü'), ('日本'), ('(1,2)'),
	('[1]'), ('$1');
INSERT INTO tt (id) SELECT 'k' || lpad(g::text, 5, '0') FROM generate_series(1, 300) g;
});
my $ntext = $node->safe_psql('postgres', 'SELECT count(*) FROM tt');
my $job = mt_queue($node, 'postgres', 'tt', 'counter = counter + 1', undef,
	"batch_size => 1, batch_sleep => '10ms'");
my $pid = mt_running_pid($node, 'postgres', $job, 10);
is(kill('KILL', $pid), 1, 'text keys: kill -9 the worker');
mt_check_exactly_once($node, 'postgres', 'tt', $job, $ntext, 'text keys');

# Numeric keys with fractions and negatives, and a float key.
$node->safe_psql('postgres', q{
CREATE TABLE tn (id numeric PRIMARY KEY, counter int NOT NULL DEFAULT 0);
INSERT INTO tn (id) SELECT g / 7.0 FROM generate_series(-3000, 3000) g;
CREATE TABLE tf (id float8 PRIMARY KEY, counter int NOT NULL DEFAULT 0);
INSERT INTO tf (id) SELECT g / 3.0 FROM generate_series(-3000, 3000) g;
INSERT INTO tf (id) VALUES ('Infinity'), ('-Infinity'), ('NaN'), (1e-300), (-1e300);
});
for my $t ('tn', 'tf')
{
	my $n = $node->safe_psql('postgres', "SELECT count(*) FROM $t");
	$job = mt_queue($node, 'postgres', $t, 'counter = counter + 1', undef,
		"batch_size => 50, batch_sleep => '10ms'");
	$pid = mt_running_pid($node, 'postgres', $job, 500);
	is(kill('KILL', $pid), 1, "$t: kill -9 the worker");
	mt_check_exactly_once($node, 'postgres', $t, $job, $n, "$t keys");
}

# A partitioned table: the walk is over the parent's key.
$node->safe_psql('postgres', q{
CREATE TABLE tp (id int PRIMARY KEY, counter int NOT NULL DEFAULT 0) PARTITION BY RANGE (id);
CREATE TABLE tp1 PARTITION OF tp FOR VALUES FROM (MINVALUE) TO (5000);
CREATE TABLE tp2 PARTITION OF tp FOR VALUES FROM (5000) TO (10000);
CREATE TABLE tp3 PARTITION OF tp FOR VALUES FROM (10000) TO (MAXVALUE);
INSERT INTO tp (id) SELECT g FROM generate_series(1, 15000) g;
ANALYZE tp;
});
$job = mt_queue($node, 'postgres', 'tp', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '10ms'");
$pid = mt_running_pid($node, 'postgres', $job, 4000);
is(kill('KILL', $pid), 1, 'partitioned: kill -9 the worker');
mt_check_exactly_once($node, 'postgres', 'tp', $job, 15000, 'partitioned table');
is($node->safe_psql('postgres', q{
	SELECT string_agg(DISTINCT tableoid::regclass::text || ':' || counter, ',' ORDER BY tableoid::regclass::text || ':' || counter) FROM tp}),
	'tp1:1,tp2:1,tp3:1', 'every partition done once');

# Identifiers that need quoting: schema, table, key columns (composite).
$node->safe_psql('postgres', q{
CREATE SCHEMA "My Schema";
CREATE TABLE "My Schema"."Odd ""Table""" ("Key A" int, "key;b" text, "Cnt" int NOT NULL DEFAULT 0,
	PRIMARY KEY ("Key A", "key;b"));
INSERT INTO "My Schema"."Odd ""Table""" ("Key A", "key;b")
	SELECT g % 10, 'v' || g FROM generate_series(1, 3000) g;
});
$job = $node->safe_psql('postgres', q{
SELECT migration_tools.backfill('"My Schema"."Odd ""Table"""', '"Cnt" = "Cnt" + 1',
	batch_size => 100, batch_sleep => '10ms')});
$pid = mt_running_pid($node, 'postgres', $job, 500);
is(kill('KILL', $pid), 1, 'quoted identifiers: kill -9 the worker');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'quoted identifiers: completed');
is($node->safe_psql('postgres',
		'SELECT min("Cnt"), max("Cnt"), count(*) FROM "My Schema"."Odd ""Table"""'),
	'1|1|3000', 'quoted identifiers: every row once');

# Renamed mid-job: the table (key strategy), its schema (ctid strategy).
mt_make_table($node, 'postgres', 't_ren', 10000);
$job = mt_queue($node, 'postgres', 't_ren', 'counter = counter + 1', undef,
	"batch_size => 100, batch_sleep => '10ms'");
mt_running_pid($node, 'postgres', $job, 500);
$node->safe_psql('postgres', 'ALTER TABLE t_ren RENAME TO t_renamed');
mt_check_exactly_once($node, 'postgres', 't_renamed', $job, 10000, 'table renamed mid-job');
is(mt_job_field($node, 'postgres', $job, 'relation'), 't_renamed',
	'the view shows the new name');

$node->safe_psql('postgres', q{
CREATE SCHEMA s2;
CREATE TABLE s2.t (id int, counter int NOT NULL DEFAULT 0);
INSERT INTO s2.t (id) SELECT g FROM generate_series(1, 10000) g;
});
$job = mt_queue($node, 'postgres', 's2.t', 'counter = 1', undef,
	"batch_size => 100, batch_sleep => '10ms', strategy => 'ctid'");
mt_running_pid($node, 'postgres', $job, 500);
$node->safe_psql('postgres', 'ALTER SCHEMA s2 RENAME TO s3');
mt_check_exactly_once($node, 'postgres', 's3.t', $job, 10000, 'schema renamed mid-job');

$node->stop;
done_testing();
