/*-------------------------------------------------------------------------
 *
 * history_resolve.c
 *	  resolve(): marking a failed migration applied or rolled back by hand,
 *	  as prisma migrate resolve does, after fixing what failed.
 *
 * IDENTIFICATION
 *	  src/history_resolve.c
 *
 *-------------------------------------------------------------------------
 */

#include "postgres.h"

#include "executor/spi.h"
#include "utils/builtins.h"

#include "history.h"
#include "migration_state.h"
#include "migration_tools.h"
#include "security.h"
#include "spi_util.h"

PG_FUNCTION_INFO_V1(mt_resolve);

/*
 * resolve(version, state) returns text
 *
 * Only a failed migration can be resolved, to 'applied' or 'rolled_back';
 * its scheduled statements that are not done are cancelled (deleted).
 * Returns the new state.
 */
Datum
mt_resolve(PG_FUNCTION_ARGS)
{
	char	   *version;
	char	   *state;
	MtMigrationRow row;
	MtSavedUser sw;

	mt_history_check_writable("resolve()");
	mt_history_check_text_arg(fcinfo, 0, "version");
	mt_history_check_text_arg(fcinfo, 1, "state");
	version = text_to_cstring(PG_GETARG_TEXT_PP(0));
	state = text_to_cstring(PG_GETARG_TEXT_PP(1));
	if (strcmp(state, "applied") != 0 && strcmp(state, "rolled_back") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("cannot resolve migration \"%s\" to state \"%s\"",
						version, state),
				 errhint("The state must be \"applied\" or \"rolled_back\".")));

	mt_spi_connect();
	mt_history_lock();
	row = mt_history_read_migration(version);
	if (!row.found)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("migration \"%s\" is not recorded", version)));
	if (strcmp(row.state, "failed") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot resolve migration \"%s\": it is not failed",
						version),
				 errdetail("Migration \"%s\" is %s.", version, row.state),
				 errhint("Only a failed migration can be resolved; see migration_tools.status.")));

	mt_become_owner(&sw);
	if (mt_migration_resolve(version, state) != 1)
		mt_history_report_concurrent_change(version);
	mt_restore_user(&sw);
	SPI_finish();
	PG_RETURN_TEXT_P(cstring_to_text(state));
}
