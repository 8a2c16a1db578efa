/* migration_tools update script: 1.0 to 1.1 */

\echo Use "ALTER EXTENSION migration_tools UPDATE TO '1.1'" to load this file. \quit

-- Every change to an object of sql/install/*.sql since 1.0 is repeated
-- here, so that t/090_upgrade.pl finds an updated 1.0 install equal to a
-- fresh 1.1 install.
