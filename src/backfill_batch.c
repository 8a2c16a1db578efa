/*-------------------------------------------------------------------------
 *
 * backfill_batch.c
 *	  The batches of a backfill job, by strategy: planning a job (its
 *	  estimated rows and blocks), one batch of the key strategy (probe the
 *	  next n keys after the checkpoint, run the statement on that range)
 *	  and one batch of the ctid strategy (a range of heap blocks, in a main
 *	  pass then sweep passes, skipped after a quiet main pass).
 *
 * These run inside the step transaction of backfill_step.c, as the job's
 * owner, and only compute and run: the step records the outcome (an
 * MtBatchResult) in the job row, in the same transaction.
 *
 * IDENTIFICATION
 *	  src/backfill_batch.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/relation.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "pgstat.h"
#include "storage/bufmgr.h"
#include "storage/itemptr.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "backfill_int.h"
#include "spi_util.h"

/* ---------------------------------------------------------------------
 * Planning
 * ---------------------------------------------------------------------
 */

/*
 * Estimate the table's rows and (ctid) its blocks, once per job, into
 * *plan.
 */
void
mt_batch_plan(MtJob *job, MtJobPlan *plan)
{
	Relation	rel = relation_open(job->relid, AccessShareLock);
	BlockNumber nblocks = 0;
	double		density = -1;
	double		total = -1;

	/* a snapshot taken with the lock held: see mt_batch_run_key() */
	PushActiveSnapshot(GetTransactionSnapshot());
	if (rel->rd_rel->relkind == RELKIND_RELATION)
	{
		nblocks = RelationGetNumberOfBlocks(rel);
		if (rel->rd_rel->reltuples > 0 && rel->rd_rel->relpages > 0)
			density = rel->rd_rel->reltuples / rel->rd_rel->relpages;
		else if (nblocks > 0)
		{
			/* never analyzed: count the rows of the first blocks */
			BlockNumber sample = Min(nblocks, 10);
			Oid			ttypes[2] = {TIDOID, TIDOID};
			Datum		tvalues[2];
			ItemPointerData lo,
						hi;
			bool		isnull;

			ItemPointerSet(&lo, 0, 0);
			ItemPointerSet(&hi, sample, 0);
			tvalues[0] = PointerGetDatum(&lo);
			tvalues[1] = PointerGetDatum(&hi);
			(void) mt_spi_execute_checked(psprintf("SELECT pg_catalog.count(*) FROM ONLY %s "
												   "WHERE ctid >= $1 AND ctid < $2",
												   job->js.relname),
										  2, ttypes, tvalues, NULL, true, 1,
										  SPI_OK_SELECT, "sample relation");
			density = (double) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0],
														   SPI_tuptable->tupdesc, 1,
														   &isnull)) / sample;
		}
		else
			density = 0;
		total = density * nblocks;
	}
	else
	{
		/* partitioned: the statistics of the leaf partitions */
		Oid			argtype = OIDOID;
		Datum		arg = ObjectIdGetDatum(job->relid);
		bool		isnull;
		Datum		d;

		(void) mt_spi_execute_checked("SELECT pg_catalog.sum(c.reltuples)::pg_catalog.float8 FROM pg_catalog.pg_partition_tree($1) t "
									  "JOIN pg_catalog.pg_class c ON c.oid = t.relid "
									  "WHERE t.isleaf AND c.reltuples > 0",
									  1, &argtype, &arg, NULL, true, 1,
									  SPI_OK_SELECT, "read partition statistics");
		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!isnull)
			total = DatumGetFloat8(d);
	}
	PopActiveSnapshot();
	relation_close(rel, AccessShareLock);

	plan->rows_known = total >= 0;
	plan->rows_total = total < 0 ? 0 : (int64) rint(total);
	plan->rows_per_block = density > 0 ? density : 1.0;
	plan->end_block = (int64) nblocks;
}

/* ---------------------------------------------------------------------
 * The key strategy
 * ---------------------------------------------------------------------
 */

/*
 * Convert the text form of a key value to a Datum of type typid.
 */
static Datum
key_datum(const char *str, Oid typid)
{
	Oid			infunc;
	Oid			ioparam;

	getTypeInputInfo(typid, &infunc, &ioparam);
	return OidInputFunctionCall(infunc, (char *) str, ioparam, -1);
}

/*
 * Run one probe of the key batch bounds.  If it finds a row, the key array
 * in its first column goes to *key, in the step context.  Returns whether
 * it found one.
 */
static bool
run_probe(MtJobRun *run, const char *sql, int np, Oid *types, Datum *values,
		  const char *what, List **key)
{
	bool		isnull;
	MemoryContext old;

	if (mt_spi_execute_checked(sql, np, types, values, NULL, true, 1,
							   SPI_OK_SELECT, what) != 1)
		return false;
	old = MemoryContextSwitchTo(run->step_cxt);
	mt_text_array_to_cstrings(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc,
											1, &isnull), key);
	MemoryContextSwitchTo(old);
	return true;
}

/*
 * Find the bounds of the next key batch of at most n keys after the
 * checkpoint (its key values are the np parameters): the last key, and for
 * run_batched() the first one too.  Returns how many keys the batch holds:
 * n, fewer for the last batch, 0 when no key is left.
 *
 * The probes read the table with a snapshot taken once the table lock is
 * ours.  The step transaction's snapshot was taken before: if an ALTER
 * TABLE that rewrites the table (or a TRUNCATE) committed while we waited
 * for the lock, that snapshot sees the rewritten table as empty (such
 * rewrites are not MVCC-safe), the probe finds no key after the
 * checkpoint, and the job would end as completed with most rows never
 * visited.
 */
static int64
probe_key_batch(MtJobRun *run, MtJob *job, int32 n, int np, Oid *types,
				Datum *values, List **first, List **last)
{
	bool		has_lower = job->last_key != NIL;
	int64		count;
	bool		isnull;
	char	   *sql;

	LockRelationOid(job->relid, AccessShareLock);
	PushActiveSnapshot(GetTransactionSnapshot());

	/* the n-th key after the checkpoint ends the batch */
	sql = mt_backfill_probe_sql(&job->js, has_lower, MT_PROBE_NTH, n);
	if (run_probe(run, sql, np, types, values, "probe the next batch", last))
		count = n;
	else
	{
		/* fewer than n keys left: the last batch, up to the last key */
		sql = mt_backfill_probe_sql(&job->js, has_lower, MT_PROBE_TAIL, n);
		(void) mt_spi_execute_checked(sql, np, types, values, NULL, true, 1,
									  SPI_OK_SELECT, "probe the last batch");
		count = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		if (count > 0)
		{
			Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
			MemoryContext old = MemoryContextSwitchTo(run->step_cxt);

			if (isnull)
				count = 0;		/* rows deleted between the two looks */
			else
				mt_text_array_to_cstrings(d, last);
			MemoryContextSwitchTo(old);
		}
	}
	if (count > 0 && !job->js.is_backfill)
	{
		/* run_batched gets the first key too */
		sql = mt_backfill_probe_sql(&job->js, has_lower, MT_PROBE_FIRST, n);
		if (!run_probe(run, sql, np, types, values, "probe the next batch", first))
			count = 0;
	}

	PopActiveSnapshot();
	return count;
}

/*
 * One batch of the key strategy: find the last key of the next n keys
 * after the checkpoint, run the statement on (checkpoint, last key].
 * Runs as the job's owner.
 */
void
mt_batch_run_key(MtJobRun *run, MtJob *job, int32 n, MtBatchResult *res)
{
	bool		has_lower = job->last_key != NIL;
	int			nkeys = list_length(job->js.key_columns);
	Oid		   *types = palloc(sizeof(Oid) * (2 * nkeys + 2));
	Datum	   *values = palloc(sizeof(Datum) * (2 * nkeys + 2));
	int			np = 0;
	int64		count;
	List	   *first = NIL;
	List	   *last = NIL;
	ListCell   *lc;
	char	   *sql;
	int			ret;

	if (has_lower)
	{
		foreach(lc, job->last_key)
		{
			types[np] = TEXTOID;
			values[np++] = CStringGetTextDatum((char *) lfirst(lc));
		}
	}
	count = probe_key_batch(run, job, n, np, types, values, &first, &last);

	res->covered = count;
	res->timed = count;
	res->done = count < n;
	res->last_key = count > 0 ? last : job->last_key;
	if (count == 0)
		return;

	if (job->js.is_backfill)
	{
		int			nparams;

		sql = mt_backfill_update_sql(&job->js, has_lower, &nparams);
		foreach(lc, last)
		{
			types[np] = TEXTOID;
			values[np++] = CStringGetTextDatum((char *) lfirst(lc));
		}
		Assert(np == nparams);
	}
	else
	{
		/* run_batched: $1 first key, $2 last key, both inclusive */
		sql = job->js.sql;
		np = 2;
		types[0] = types[1] = job->key_type;
		values[0] = key_datum(linitial(first), job->key_type);
		values[1] = key_datum(linitial(last), job->key_type);
	}
	pgstat_report_activity(STATE_RUNNING, sql);
	ret = SPI_execute_with_args(sql, np, types, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "batch statement failed: %s", SPI_result_code_string(ret));
	res->rows = SPI_processed;
	res->ran = true;
}

/* ---------------------------------------------------------------------
 * The ctid strategy
 * ---------------------------------------------------------------------
 */

/*
 * A quiet main pass: while a ctid job's main pass runs, no transaction
 * but the worker's own batches holds or gets a transaction id anywhere in
 * the cluster.  Every write to a table needs one, so then no other session
 * can have inserted or moved a row: every row that needs the change was
 * visible to the batch of its block, and the rows the job moved itself are
 * done.  The sweep passes would read the whole table again to find
 * nothing, and are skipped.
 *
 * Followed in the job's run only (a new worker, after a crash or a kill,
 * sweeps): run->quiet says that the job's main pass is quiet so far,
 * run->quiet_next is the next transaction id after the last batch
 * checked, run->quiet_writes the batch's own writes to the table before
 * its statement.  Each step's transaction gets its id first (mt_job_load() locks
 * the job row), so a step continues the quiet run only if its id is
 * quiet_next and, after the batch's statement, the next id is right after
 * its own ids (its top-level id and its subtransactions' ids: triggers
 * with exception blocks).  Anything else (another transaction, a throttled
 * step, a failed batch, an aborted or overflowed subtransaction, pause and
 * resume) ends the quiet run, and the job sweeps as usual.
 */

static void
own_writes(Oid relid, int64 *counts)
{
	counts[0] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_inserted,
												  ObjectIdGetDatum(relid)));
	counts[1] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_updated,
												  ObjectIdGetDatum(relid)));
	counts[2] = DatumGetInt64(DirectFunctionCall1(pg_stat_get_xact_tuples_deleted,
												  ObjectIdGetDatum(relid)));
}

/* Before a main pass batch's statement: start or continue the quiet run. */
static void
quiet_before_batch(MtJobRun *run, MtJob *job)
{
	FullTransactionId own = GetTopFullTransactionId();

	own_writes(job->relid, run->quiet_writes);

	if (job->next_block == 0)
	{
		Relation	rel = relation_open(job->relid, AccessShareLock);
		BlockNumber nblocks = RelationGetNumberOfBlocks(rel);

		relation_close(rel, AccessShareLock);

		/*
		 * The first batch: quiet if no other transaction id is in progress
		 * (prepared transactions included) and no block was added since
		 * the plan (rows there would be beyond the main pass).
		 */
		run->quiet = false;
		if (nblocks <= job->end_block &&
			TransactionIdEquals(GetOldestActiveTransactionId(),
								XidFromFullTransactionId(own)) &&
			U64FromFullTransactionId(ReadNextFullTransactionId()) ==
			U64FromFullTransactionId(own) + 1)
			run->quiet = true;
		return;
	}
	if (!run->quiet || !FullTransactionIdEquals(own, run->quiet_next))
		run->quiet = false;
}

/*
 * After a main pass batch's statement, which updated "updated" rows: were
 * all new ids its own?  And did it write nothing else to the table (a
 * trigger, a rule or a function that inserts, deletes or updates other
 * rows would move rows the main pass may not meet)?
 */
static void
quiet_after_batch(MtJobRun *run, MtJob *job, uint64 updated)
{
	FullTransactionId own = GetTopFullTransactionId();
	FullTransactionId next = ReadNextFullTransactionId();
	int64		writes[3];

	if (!run->quiet)
		return;
	own_writes(job->relid, writes);
	if (MyProc->subxidStatus.overflowed ||
		U64FromFullTransactionId(next) !=
		U64FromFullTransactionId(own) + 1 + MyProc->subxidStatus.count ||
		writes[0] != run->quiet_writes[0] || writes[2] != run->quiet_writes[2] ||
		writes[1] - run->quiet_writes[1] != (int64) updated)
	{
		run->quiet = false;
		return;
	}
	run->quiet_next = next;
}

/* At the end of the main pass: was all of it quiet, up to now? */
static bool
quiet_main_pass(MtJobRun *run, MtJob *job)
{
	FullTransactionId own = GetTopFullTransactionId();

	return run->quiet && FullTransactionIdEquals(own, run->quiet_next) &&
		U64FromFullTransactionId(ReadNextFullTransactionId()) ==
		U64FromFullTransactionId(own) + 1;
}

/*
 * One batch of the ctid strategy: blocks [next_block, next_block + k) of
 * the current pass.  The main pass covers the blocks the table had when
 * the job started; then sweep passes cover the whole table again until
 * one changes nothing, catching rows that moved into ranges already done
 * (the guard skips rows that are done, so only moved rows change).  A
 * quiet main pass (see above) needs no sweep.
 */
void
mt_batch_run_ctid(MtJobRun *run, MtJob *job, int32 n, MtBatchResult *res)
{
	int64		nb;
	int64		hi;
	ItemPointerData lo_tid,
				hi_tid;
	Oid			types[2] = {TIDOID, TIDOID};
	Datum		values[2];
	char	   *sql;
	int			ret;

	res->phase = job->phase;
	res->sweep_pass = job->sweep_pass;
	res->sweep_rows = job->sweep_rows;
	res->end_block = job->end_block;
	res->next_block = job->next_block;

	if (job->next_block >= job->end_block)
	{
		/* end of a pass */
		Relation	rel = relation_open(job->relid, AccessShareLock);
		BlockNumber nblocks = RelationGetNumberOfBlocks(rel);

		relation_close(rel, AccessShareLock);

		/*
		 * A run_batched() statement has no guard: a sweep would run it again
		 * on every row.  Its job ends with the main pass.
		 */
		if (!job->js.is_backfill)
		{
			res->done = true;
			return;
		}
		if (strcmp(job->phase, "sweep") == 0 && job->sweep_rows == 0)
		{
			res->done = true;
			return;
		}
		if (strcmp(job->phase, "main") == 0 && quiet_main_pass(run, job))
		{
			run->quiet = false;
			res->done = true;
			return;
		}
		run->quiet = false;
		if (strcmp(job->phase, "sweep") == 0 && job->sweep_pass >= mt_max_sweep_passes)
		{
			res->fail = psprintf("rows kept moving during %d sweep passes", job->sweep_pass);
			return;
		}
		res->phase = "sweep";
		res->sweep_pass = job->sweep_pass + 1;
		res->sweep_rows = 0;
		res->next_block = 0;
		res->end_block = nblocks;
		return;
	}

	nb = (int64) ceil((double) n / Max(job->rows_per_block, 1.0));
	nb = Max(nb, 1);
	hi = Min(job->next_block + nb, job->end_block);
	ItemPointerSet(&lo_tid, (BlockNumber) job->next_block, 0);
	ItemPointerSet(&hi_tid, (BlockNumber) hi, 0);
	values[0] = PointerGetDatum(&lo_tid);
	values[1] = PointerGetDatum(&hi_tid);

	if (job->js.is_backfill)
	{
		int			nparams;

		sql = mt_backfill_update_sql(&job->js, false, &nparams);
		if (strcmp(job->phase, "main") == 0)
			quiet_before_batch(run, job);
	}
	else
		sql = job->js.sql;
	pgstat_report_activity(STATE_RUNNING, sql);
	ret = SPI_execute_with_args(sql, 2, types, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "batch statement failed: %s", SPI_result_code_string(ret));
	if (job->js.is_backfill && strcmp(job->phase, "main") == 0)
		quiet_after_batch(run, job, SPI_processed);
	res->rows = SPI_processed;
	res->ran = true;
	res->next_block = hi;
	res->timed = (int64) rint((hi - job->next_block) * job->rows_per_block);
	if (strcmp(job->phase, "main") == 0)
		res->covered = res->timed;
	else
		res->sweep_rows += res->rows;
}
