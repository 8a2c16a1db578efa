# The README's five-minute tour runs as written.  Every ```sql block under
# the heading "## A five-minute tour" of README.md, up to the next "## "
# heading, is run in order against a fresh server that preloads the
# library: the first block (which creates the database "tour" and connects
# to it) from the database "postgres", the others in "tour".  No block may
# raise an ERROR.  Blocks in other fences (```, ```sh) are output or
# instructions and are not run.
#
# The lock-wait block ("See who blocks whom") asks the reader to open three
# more sessions; the test opens them in the background exactly as the text
# says, so that the block's queries have waits to show, and checks that
# they do.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

# The tour's sql blocks, each with the nearest heading above it.
my $readme = slurp_file("$FindBin::RealBin/../README.md");
my ($tour) = $readme =~ /^## A five-minute tour\n(.*?)(?=^## )/ms;
ok(defined $tour, 'README.md has a "## A five-minute tour" section');
my @blocks;
my $heading = '';
my $in_sql;
for my $line (split /\n/, $tour // '')
{
	if (defined $in_sql)
	{
		if ($line =~ /^```\s*$/)
		{
			push @blocks, { heading => $heading, sql => $in_sql };
			undef $in_sql;
		}
		else
		{
			$in_sql .= "$line\n";
		}
		next;
	}
	$heading = $1 if $line =~ /^#+\s+(.*)/;
	$in_sql = '' if $line =~ /^```sql\s*$/;
}
ok(!defined $in_sql, 'every sql block of the tour is closed');
cmp_ok(scalar @blocks, '>=', 8, 'the tour has its sql blocks');

my $node = mt_node('readme_tour', no_start => 1);
$node->start;

my $first = 1;
for my $i (0 .. $#blocks)
{
	my $b = $blocks[$i];
	my $what = sprintf('block %d (under "%s")', $i + 1, $b->{heading});
	my @sessions;

	if ($b->{heading} =~ /See who blocks whom/)
	{
		# As the text says: a second psql reads orders and leaves its
		# transaction open, a third runs ALTER TABLE (queued behind it), a
		# fourth reads orders (queued behind the ALTER TABLE).
		my $reader = $node->background_psql('tour');
		$reader->query_safe('BEGIN; SELECT count(*) FROM orders;');
		my $alter = $node->background_psql('tour', on_error_stop => 0);
		$alter->query_until(qr/started/, "\\echo started\nALTER TABLE orders ADD COLUMN note text;\n");
		ok( $node->poll_query_until('tour', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			WHERE query LIKE 'ALTER TABLE orders%' AND wait_event_type = 'Lock'}),
			'the ALTER TABLE of the tour waits');
		my $later = $node->background_psql('tour', on_error_stop => 0);
		$later->query_until(qr/started/, "\\echo started\nSELECT count(*) FROM orders;\n");
		ok( $node->poll_query_until('tour', q{
			SELECT count(*) > 0 FROM pg_stat_activity
			WHERE query = 'SELECT count(*) FROM orders;' AND wait_event_type = 'Lock'}),
			'the reader behind the ALTER TABLE waits');
		@sessions = ($reader, $alter, $later);
	}

	my ($ret, $out, $err) = $node->psql($first ? 'postgres' : 'tour',
		$b->{sql}, on_error_stop => 1);
	note "$what:\n$out\n$err";
	is($ret, 0, "$what runs");
	unlike($err, qr/ERROR/, "$what raises no ERROR") or diag $b->{sql};

	# "Watch them finish": the reader goes on once the scheduled index
	# build is done, as the next block's output assumes.
	if ($b->{sql} =~ /FROM migration_tools\.scheduled_statements/)
	{
		ok( $node->poll_query_until('tour', q{
			SELECT count(*) = 0 FROM migration_tools.migrations WHERE state = 'scheduled'}),
			'the scheduled index build of the tour finishes');
	}

	# The outputs the README shows for the drift, verify_reversible and
	# lint blocks.
	if ($b->{sql} =~ /schema_drift\(\)/)
	{
		like($out,
			qr/^index\|public\.orders_tmp\|added\|CREATE INDEX orders_tmp ON public\.orders USING btree \(created_at\)\|20260102_accounts_email_idx$/m,
			'schema_drift() shows the index made by hand, as the README says');
		unlike($out, qr/^index\|public\.accounts_email\|/m,
			'the index built by the migration is no drift');
		like($err, qr/NOTICE:  table column public\.orders\.discount is left over after up and down\nDETAIL:  It is: numeric/,
			'verify_reversible() says what the down script leaves, as the README says');
		like($out, qr/^f$/m, 'verify_reversible() returns false');
	}
	if ($b->{sql} =~ /FROM migration_tools\.lint\(/)
	{
		my @rules = $out =~ /^(\d+\|[a-z-]+\|[a-z]+)\|/mg;
		is( join(' ', @rules),
			'1|add-column-not-null-no-default|error 1|require-lock-timeout|warning '
			  . '2|create-index-non-concurrently|error 3|unbatched-update|warning',
			'lint() finds what the README shows');
	}

	if (@sessions)
	{
		like($out, qr/AccessExclusiveLock/,
			'the lock-wait block shows the ALTER TABLE waiting');
		like($out, qr/soft: queued ahead for AccessExclusiveLock/,
			'lock_tree shows the reader queued behind the ALTER TABLE');
		my ($reader, $alter, $later) = @sessions;
		$reader->query_safe('COMMIT');
		$reader->quit;
		$alter->quit;
		$later->quit;
	}
	$first = 0;
}

# What the tour says happens, happened.
ok( $node->poll_query_until('tour', q{
	SELECT string_agg(version || ' ' || state, ', ' ORDER BY version)
	FROM migration_tools.migrations WHERE version LIKE '2026%'},
	'20260101_add_accounts_name applied, 20260102_accounts_email_idx applied'),
	'both migrations of the tour are applied (the index build by the worker)');
is($node->safe_psql('tour', q{
	SELECT state, rows_done FROM migration_tools.backfill_progress WHERE job_id = 1}),
	'completed|200000', 'the backfill of the tour completed every row');
is($node->safe_psql('tour', q{
	SELECT count(*) FROM migration_tools.migrations WHERE baseline AND version LIKE '2025%'}),
	'2', 'the Rails history was imported');
is($node->safe_psql('tour', 'SHOW migration_tools.guard'), 'on',
	'the guard is on in the tour database');

$node->stop;
done_testing();
