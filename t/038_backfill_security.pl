# A job runs as the role that queued it, never as the superuser the worker
# connects as: row-level security filters its batches, triggers fired by
# its batches see that role as current_user, reading a catalog only
# superusers read fails the job, and unqualified names in the set clause
# resolve with the search_path the role had when it queued the job.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use MtBackfill;

my $node = mt_node('security');
$node->safe_psql('postgres', q{
CREATE ROLE alice LOGIN;
CREATE ROLE bob LOGIN;
CREATE TABLE shared (id int PRIMARY KEY, owner name NOT NULL, counter int NOT NULL DEFAULT 0);
INSERT INTO shared SELECT g, CASE WHEN g % 3 = 0 THEN 'alice' ELSE 'bob' END
	FROM generate_series(1, 3000) g;
ALTER TABLE shared ENABLE ROW LEVEL SECURITY;
CREATE POLICY own_rows ON shared USING (owner = current_user);
GRANT SELECT, UPDATE ON shared TO alice, bob;

CREATE TABLE audit (who name, via name);
GRANT INSERT ON audit TO alice, bob;
CREATE FUNCTION note_update() RETURNS trigger LANGUAGE plpgsql AS
	$$ BEGIN INSERT INTO audit VALUES (current_user, session_user); RETURN NEW; END $$;
CREATE TRIGGER note_update AFTER UPDATE ON shared FOR EACH ROW EXECUTE FUNCTION note_update();

CREATE SCHEMA alice_lib AUTHORIZATION alice;
CREATE FUNCTION public.step() RETURNS int LANGUAGE sql AS 'SELECT 100';
});
$node->safe_psql('postgres', q{
SET ROLE alice;
CREATE FUNCTION alice_lib.step() RETURNS int LANGUAGE sql AS 'SELECT 1';
});

# Row-level security and triggers.
my $job = $node->safe_psql('postgres', q{
SET ROLE alice;
SELECT migration_tools.backfill('shared', 'counter = counter + 1', batch_size => 200);
});
is(mt_wait_job($node, 'postgres', $job), 'completed', 'alice\'s job completes');
is($node->safe_psql('postgres', q{
	SELECT owner, min(counter), max(counter), count(*) FROM shared GROUP BY owner ORDER BY owner}),
	"alice|1|1|1000\nbob|0|0|2000", 'row-level security: only alice\'s rows were updated');
is(mt_job_field($node, 'postgres', $job, 'rows_done'), '1000', 'rows_done counts her rows');
is($node->safe_psql('postgres', 'SELECT who, count(*) FROM audit GROUP BY who'),
	'alice|1000', 'triggers fired by the job run as alice');

# Reading what only superusers may read fails the job: it is not superuser.
mt_make_table($node, 'postgres', 't_priv', 100);
$node->safe_psql('postgres', 'GRANT SELECT, UPDATE ON t_priv TO bob');
$job = $node->safe_psql('postgres', q{
SET ROLE bob;
SELECT migration_tools.backfill('t_priv',
	'counter = counter + (SELECT count(*) FROM pg_catalog.pg_authid)::int',
	max_attempts => 1);
});
is(mt_wait_job($node, 'postgres', $job), 'failed', 'a job reading pg_authid as bob fails');
like(mt_job_field($node, 'postgres', $job, 'last_error'), qr/permission denied/,
	'with permission denied');
is($node->safe_psql('postgres', 'SELECT count(*) FROM t_priv WHERE counter <> 0'), '0',
	'nothing was changed');

# The search_path of the queueing session, not the worker's, and not one
# set later.
mt_make_table($node, 'postgres', 't_path', 500);
$node->safe_psql('postgres', 'GRANT SELECT, UPDATE ON t_path TO alice');
$job = $node->safe_psql('postgres', q{
SET ROLE alice;
SET search_path = alice_lib, public;
SELECT migration_tools.backfill('t_path', 'counter = counter + step()', batch_size => 100);
});
is(mt_wait_job($node, 'postgres', $job), 'completed', 'the job with an unqualified function completes');
is($node->safe_psql('postgres', 'SELECT min(counter), max(counter) FROM t_path'), '1|1',
	'the function resolved in alice\'s search_path, not to public.step()');

# Another role can neither see nor control alice's job.
my ($ret, $stdout, $stderr) = $node->psql('postgres', qq{
SET ROLE bob;
SELECT migration_tools.cancel($job);
});
like($stderr, qr/permission denied|must be|not allowed|own/i, 'bob cannot cancel alice\'s job');
is($node->safe_psql('postgres', qq{
SET ROLE bob;
SELECT count(*) FROM migration_tools.backfill_progress WHERE job_id = $job;
}), '0', 'bob does not see alice\'s job');

$node->stop;
done_testing();
