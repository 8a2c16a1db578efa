/* migration_tools update script: 1.0 to 1.1 */

\echo Use "ALTER EXTENSION migration_tools UPDATE TO '1.1'" to load this file. \quit

-- Every change to an object of sql/install/*.sql since 1.0 is repeated
-- here, so that t/090_upgrade.pl finds an updated 1.0 install equal to a
-- fresh 1.1 install.

-- Security (worker): stored work of a role that could log in when it
-- recorded it stops once that role can no longer log in.  Rows recorded
-- before the update take the role's state as of now.
ALTER TABLE migration_tools.backfill_jobs
    ADD COLUMN owner_login boolean NOT NULL DEFAULT true;
UPDATE migration_tools.backfill_jobs j
   SET owner_login = coalesce((SELECT r.rolcanlogin
                                  AND (r.rolvaliduntil IS NULL OR r.rolvaliduntil > pg_catalog.now())
                                 FROM pg_catalog.pg_roles r WHERE r.oid = j.owner), false);
ALTER TABLE migration_tools.scheduled_statements
    ADD COLUMN run_as_login boolean NOT NULL DEFAULT true;
UPDATE migration_tools.scheduled_statements s
   SET run_as_login = coalesce((SELECT r.rolcanlogin
                                   AND (r.rolvaliduntil IS NULL OR r.rolvaliduntil > pg_catalog.now())
                                  FROM pg_catalog.pg_roles r WHERE r.rolname = s.run_as), false);
