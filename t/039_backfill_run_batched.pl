# run_batched() runs the user's statement once per batch range: copying a
# table with the ctid strategy (no key needed) copies every row exactly
# once, through a kill -9 of the worker too; deleting in batches by key
# deletes what it should and counts it.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('run_batched');
$node->safe_psql('postgres', q{
CREATE TABLE src (id int, payload text NOT NULL);
INSERT INTO src SELECT g, 'p' || g FROM generate_series(1, 5000) g;
CREATE TABLE dst (id int, payload text);
CREATE TABLE big (id int, payload text NOT NULL);
INSERT INTO big SELECT g, 'p' || g FROM generate_series(1, 20000) g;
CREATE TABLE big_copy (id int, payload text);
});

# ctid, no key, straight through.
my $job = $node->safe_psql('postgres', q{
SELECT migration_tools.run_batched('src',
	'INSERT INTO public.dst SELECT id, payload FROM public.src WHERE ctid >= $1 AND ctid < $2',
	batch_size => 1000, strategy => 'ctid')});
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid copy: completed');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM dst'),
	'5000|5000', 'ctid copy: every row copied once');
is(mt_job_field($node, 'postgres', $job, 'rows_done'), '5000',
	'ctid copy: rows_done counts the rows inserted');

# ctid, the worker killed mid-way.
$job = $node->safe_psql('postgres', q{
SELECT migration_tools.run_batched('big',
	'INSERT INTO public.big_copy SELECT id, payload FROM public.big WHERE ctid >= $1 AND ctid < $2',
	batch_size => 200, batch_sleep => '20ms', strategy => 'ctid')});
my $pid = mt_running_pid($node, 'postgres', $job, 1000);
is(kill('KILL', $pid), 1, 'ctid copy: kill -9 the worker');
is(mt_wait_job($node, 'postgres', $job), 'completed', 'ctid copy after kill -9: completed');
is($node->safe_psql('postgres', 'SELECT count(*), count(DISTINCT id) FROM big_copy'),
	'20000|20000', 'ctid copy after kill -9: every row copied once');

# Deleting in batches by key.
mt_make_table($node, 'postgres', 't_del', 10000);
$job = $node->safe_psql('postgres', q{
SELECT migration_tools.run_batched('t_del',
	'DELETE FROM public.t_del WHERE id BETWEEN $1 AND $2 AND id % 4 = 0',
	batch_size => 500)});
is(mt_wait_job($node, 'postgres', $job), 'completed', 'batched delete: completed');
is($node->safe_psql('postgres', 'SELECT count(*), count(*) FILTER (WHERE id % 4 = 0) FROM t_del'),
	'7500|0', 'batched delete: the right rows are gone');
is(mt_job_field($node, 'postgres', $job, 'rows_done'), '2500',
	'batched delete: rows_done counts the rows deleted');

$node->stop;
done_testing();
