/*-------------------------------------------------------------------------
 *
 * lock_graph.c
 *	  Who waits for whom: the waits-for graph of one lock manager snapshot,
 *	  behind the lock_waits view.
 *
 * From one read of the lock manager (locks.c) we work out, for every
 * waiting lock request, the sessions it waits for:
 *
 * - a "hard" blocker holds a lock mode on the awaited object that conflicts
 *   with the awaited mode;
 * - a "soft" blocker is queued ahead of the waiter on the same object and
 *   asks for a conflicting mode: the lock manager grants in queue order, so
 *   the waiter will not get the lock before it.
 *
 * GetLockStatusData() does not tell the queue order, so for each awaited
 * object where soft blocking is possible (two waiters from different
 * sessions wanting conflicting modes) we call GetBlockerStatusData() once,
 * for the waiter that most likely is last in the queue: it returns the pids
 * queued ahead of it, in order.  Only when that snapshot misses some waiters
 * (the queue changed meanwhile) do we ask again for one of them.
 *
 * The SQL side (the lock_waits view) gets one row per waiting request, with
 * its blockers as one array of bigint codes, and one row per blocker: it
 * unnests the codes and joins them to the blockers (see mt_lock_waits_srf).
 *
 * The chains (depth, root blocker) are computed over the waits-for graph
 * by a breadth-first walk from the root blockers, so cycles (a deadlock not
 * yet detected) cannot loop: their members simply get no depth.
 *
 * IDENTIFICATION
 *	  src/lock_graph.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "locks_int.h"
#include "spi_util.h"

/* Node of the waits-for graph, in a hash table keyed by node key. */
typedef struct MtNode
{
	int64		key;			/* pid, or -(xid + 1) for a prepared xact */
	MtHolder	holder;			/* the session or prepared transaction */
	bool		waits;			/* has an outgoing edge */
	bool		blocks;			/* has an incoming edge */
	int			level;			/* distance to a root blocker, -1 unknown */
	int64		root;			/* key of that root */
} MtNode;

/* A waiting lock request: a session waiting for one mode on one object. */
typedef struct MtRequest
{
	int			inst;			/* index of one of its LockInstanceData */
	int			pid;			/* leader pid */
	int			rawpid;			/* pid of the process actually waiting */
	LOCKMODE	mode;
	TimestampTz wait_start;		/* 0 if not known yet */
	int			queue_pos;		/* position in the wait queue, PG_INT32_MAX if
								 * unknown */
	MtNode	   *node;			/* its session's node in the graph */
} MtRequest;

/* One (waiting request, blocker) pair. */
typedef struct MtWaitEdge
{
	int			request;		/* index into the request array */
	MtHolder	blocker;
	bool		hard;			/* holds a conflicting lock (else queued) */
	LOCKMODE	blocker_mode;	/* mode held (hard) or awaited (soft) */
	MtNode	   *blocker_node;
} MtWaitEdge;

/* The whole analysis of one lock manager snapshot. */
typedef struct MtLockWaits
{
	MtLockStatus *status;
	LockData   *data;			/* status->data */
	TimestampTz taken_at;
	MtRequest  *requests;
	int			nrequests;
	MtWaitEdge *edges;
	int			nedges;
	int			maxedges;
	HTAB	   *nodes;
} MtLockWaits;

/* ----------------------------------------------------------------
 * Who waits for whom
 * ----------------------------------------------------------------
 */

/* The key of a holder's node: its pid, or -(xid + 1) for a prepared xact. */
static int64
holder_key(MtHolder h)
{
	if (h.pid == 0)
		return -((int64) h.xid) - 1;
	return h.pid;
}

/* The node of the waits-for graph for a holder, created if need be. */
static MtNode *
graph_node(HTAB *nodes, MtHolder h)
{
	int64		key = holder_key(h);
	bool		found;
	MtNode	   *n = hash_search(nodes, &key, HASH_ENTER, &found);

	if (!found)
	{
		n->holder = h;
		n->waits = false;
		n->blocks = false;
		n->level = -1;
		n->root = 0;
	}
	return n;
}

/* Add a (request, blocker) pair, or strengthen the one already there. */
static void
add_edge(MtLockWaits *w, int first_edge, int last_edge, int request,
		 MtNode *blocker, bool hard, LOCKMODE mode)
{
	int			i;
	MtWaitEdge *e;

	/*
	 * The edges of one request are contiguous, from first_edge on; only
	 * those before last_edge (-1: all) can have this blocker already.
	 */
	if (last_edge < 0)
		last_edge = w->nedges;
	for (i = first_edge; i < last_edge; i++)
	{
		e = &w->edges[i];
		if (e->blocker_node == blocker)
		{
			/* holding a conflicting lock wins over being queued ahead */
			if (hard && !e->hard)
			{
				e->hard = true;
				e->blocker_mode = mode;
			}
			else if (hard == e->hard && mode > e->blocker_mode)
				e->blocker_mode = mode;
			return;
		}
	}

	if (w->nedges >= w->maxedges)
	{
		w->maxedges *= 2;
		w->edges = repalloc_huge(w->edges, sizeof(MtWaitEdge) * w->maxedges);
	}
	e = &w->edges[w->nedges++];
	e->request = request;
	e->blocker = blocker->holder;
	e->hard = hard;
	e->blocker_mode = mode;
	e->blocker_node = blocker;
	blocker->blocks = true;
}

/* Position in a lock's wait queue of a process, by pid. */
typedef struct MtQueuePos
{
	int			pid;			/* hash key */
	int			pos;			/* its first position in the queue */
} MtQueuePos;

/*
 * Set queue_pos of the requests [first, last) awaiting one lock object,
 * whose instances are idx[start..end); inst_req[i - start] is the request
 * of instance idx[i], or -1 if it waits for nothing.
 *
 * GetBlockerStatusData(pid) lists, in order, the processes queued ahead of
 * pid on the lock it awaits.  Asked for the last process of the queue, it
 * gives the whole queue: we ask for the request that started waiting last,
 * and only ask again if some waiters of our snapshot are missing from the
 * answer (the queue changed in between, or was rearranged to avoid a
 * deadlock).  Each call reads its own consistent snapshot of that lock.
 */
static void
fetch_queue_order(MtLockWaits *w, const int *idx, int start, int end,
				  const int *inst_req, int first, int last,
				  MemoryContext tmpcxt)
{
	const LOCKTAG *tag = &w->data->locks[idx[start]].locktag;
	HTAB	   *pos = NULL;		/* the longest queue seen, by pid */
	int			qlen = 0;
	bool	   *tried = palloc0(sizeof(bool) * (last - first));
	int			r;
	int			i;

	for (;;)
	{
		int			cand = -1;
		MemoryContext old;
		BlockedProcsData *bs;
		int			p;

		/* the untried request missing from the queue that waited least */
		for (r = first; r < last; r++)
		{
			MtRequest  *req = &w->requests[r];

			if (tried[r - first])
				continue;
			if (pos != NULL &&
				hash_search(pos, &req->rawpid, HASH_FIND, NULL) != NULL)
				continue;
			if (cand < 0 ||
				req->wait_start == 0 ||
				(w->requests[cand].wait_start != 0 &&
				 req->wait_start > w->requests[cand].wait_start))
				cand = r;
		}
		if (cand < 0)
			break;
		tried[cand - first] = true;

		old = MemoryContextSwitchTo(tmpcxt);
		bs = GetBlockerStatusData(w->requests[cand].rawpid);
		MemoryContextSwitchTo(old);

		for (p = 0; p < bs->nprocs; p++)
		{
			BlockedProcData *bp = &bs->procs[p];
			HASHCTL		ctl;
			int			k;

			if (bp->pid != w->requests[cand].rawpid || bp->num_locks <= 0)
				continue;
			if (mt_locktag_cmp(&bs->locks[bp->first_lock].locktag, tag) != 0)
				continue;		/* it waits for something else by now */
			if (bp->num_waiters + 1 <= qlen)
				continue;

			/* a longer queue than any seen: it replaces the positions */
			if (pos != NULL)
				hash_destroy(pos);
			qlen = bp->num_waiters + 1;
			memset(&ctl, 0, sizeof(ctl));
			ctl.keysize = sizeof(int);
			ctl.entrysize = sizeof(MtQueuePos);
			ctl.hcxt = CurrentMemoryContext;
			pos = hash_create("migration_tools lock queue positions", qlen,
							  &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			for (k = 0; k < qlen; k++)
			{
				int			qpid = (k < bp->num_waiters) ?
					bs->waiter_pids[bp->first_waiter + k] : bp->pid;
				bool		found;
				MtQueuePos *entry = hash_search(pos, &qpid, HASH_ENTER, &found);

				if (!found)
					entry->pos = k;
			}
		}
		MemoryContextReset(tmpcxt);
		CHECK_FOR_INTERRUPTS();
	}

	/* a request's position is that of the first of its processes */
	if (pos != NULL)
	{
		for (i = start; i < end; i++)
		{
			LockInstanceData *inst = &w->data->locks[idx[i]];
			MtQueuePos *entry;

			r = inst_req[i - start];
			if (r < 0)
				continue;
			entry = hash_search(pos, &inst->pid, HASH_FIND, NULL);
			if (entry != NULL && entry->pos < w->requests[r].queue_pos)
				w->requests[r].queue_pos = entry->pos;
		}
		hash_destroy(pos);
	}
	pfree(tried);
}

/*
 * Depth of every node: the length of the shortest chain of waits from it
 * to a root blocker (a session that blocks others and waits for nothing),
 * and which root that is (the smallest key on ties).  A breadth-first walk
 * from the roots, one level per pass over the edges: nodes in a cycle that
 * leads to no root keep level -1.
 */
static void
compute_chains(MtLockWaits *w)
{
	HASH_SEQ_STATUS seq;
	MtNode	   *n;
	int			level;
	int			i;

	hash_seq_init(&seq, w->nodes);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		if (!n->waits)
		{
			n->level = 0;
			n->root = n->key;
		}
	}

	for (level = 0;; level++)
	{
		bool		assigned = false;

		for (i = 0; i < w->nedges; i++)
		{
			MtWaitEdge *e = &w->edges[i];
			MtNode	   *b = e->blocker_node;
			MtNode	   *wn = w->requests[e->request].node;

			if (b->level != level)
				continue;
			if (wn->level == -1)
			{
				wn->level = level + 1;
				wn->root = b->root;
				assigned = true;
			}
			else if (wn->level == level + 1 && b->root < wn->root)
				wn->root = b->root;
		}
		if (!assigned)
			break;
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * The lock instances of one lock object, idx[start..end) of the instances
 * sorted by object, while collect_lock_waits() works on it: its waiting
 * requests are w->requests[first .. w->nrequests).  The arrays are sized
 * for the whole snapshot once, and reused from one object to the next.
 */
typedef struct MtObjectScan
{
	const int  *idx;			/* every instance, sorted by object */
	int			start;			/* this object's instances: idx[start..end) */
	int			end;
	const LOCKTAG *tag;
	LockMethod	method;
	int			first;			/* its first request */
	int		   *inst_req;		/* request of instance idx[start + i], or -1 */
	int		   *holders;		/* the instances holding a mode on it */
	MtNode	  **holder_nodes;	/* and their sessions, as graph nodes */
	int			nholders;
	int			nwanted[MAX_LOCKMODES]; /* how many requests want each mode */
	bool		repeated_pids;	/* a lock group waits for two modes */
	bool		need_queue;		/* two requests conflict: queue order matters */
} MtObjectScan;

/*
 * The waiting requests on the object, one per session and mode, how many
 * want each mode, and the instances that hold something.
 */
static void
collect_object_requests(MtLockWaits *w, MtObjectScan *obj)
{
	int			r;
	int			i;

	obj->first = w->nrequests;
	obj->nholders = 0;
	obj->repeated_pids = false;
	memset(obj->nwanted, 0, sizeof(obj->nwanted));
	for (i = obj->start; i < obj->end; i++)
	{
		LockInstanceData *inst = &w->data->locks[obj->idx[i]];
		MtHolder	h;
		MtRequest  *req = NULL;

		obj->inst_req[i - obj->start] = -1;
		if (inst->holdMask != 0)
			obj->holders[obj->nholders++] = obj->idx[i];
		if (inst->waitLockMode == NoLock || inst->pid == 0)
			continue;
		h = mt_instance_holder(w->status, inst);
		for (r = obj->first; r < w->nrequests; r++)
		{
			if (w->requests[r].pid != h.pid)
				continue;
			if (w->requests[r].mode == inst->waitLockMode)
			{
				req = &w->requests[r];
				obj->inst_req[i - obj->start] = r;
				break;
			}
			/* a lock group waiting for two modes */
			obj->repeated_pids = true;
		}
		if (req == NULL)
		{
			obj->inst_req[i - obj->start] = w->nrequests;
			req = &w->requests[w->nrequests++];
			req->inst = obj->idx[i];
			req->pid = h.pid;
			req->rawpid = inst->pid;
			req->mode = inst->waitLockMode;
			req->wait_start = inst->waitStart;
			req->queue_pos = PG_INT32_MAX;
			req->node = graph_node(w->nodes, h);
			req->node->waits = true;
			if (req->mode > NoLock && req->mode <= obj->method->numLockModes)
				obj->nwanted[req->mode]++;
		}
		else if (inst->waitStart != 0 &&
				 (req->wait_start == 0 || inst->waitStart < req->wait_start))
			req->wait_start = inst->waitStart;
	}
}

/*
 * Queue order matters only if two requests conflict: two for the same
 * self-conflicting mode (necessarily of two sessions), or for two
 * conflicting modes (of one lock group, rarely: asking costs a call, the
 * edges still skip the session itself).
 */
static bool
queue_order_matters(const MtObjectScan *obj)
{
	LockMethod	method = obj->method;
	LOCKMODE	m1;
	LOCKMODE	m2;

	for (m1 = 1; m1 <= method->numLockModes; m1++)
	{
		if (obj->nwanted[m1] == 0)
			continue;
		for (m2 = m1; m2 <= method->numLockModes; m2++)
		{
			if (obj->nwanted[m2] == 0 || (m1 == m2 && obj->nwanted[m1] < 2))
				continue;
			if (method->conflictTab[m1] & LOCKBIT_ON(m2))
				return true;
		}
	}
	return false;
}

/*
 * The blockers of request r on the object: hard ones, the sessions holding
 * a conflicting mode, and, when the queue order is known, soft ones, the
 * sessions queued ahead of it for a conflicting mode.
 */
static void
add_request_edges(MtLockWaits *w, const MtObjectScan *obj, int r)
{
	MtRequest  *req = &w->requests[r];
	LOCKMASK	conflicts = mt_conflict_mask(obj->tag, req->mode);
	int			first_edge = w->nedges;
	int			hard_end;
	int			q;
	int			i;

	/* hard: sessions holding a conflicting mode */
	for (i = 0; i < obj->nholders; i++)
	{
		LockInstanceData *inst = &w->data->locks[obj->holders[i]];
		LOCKMODE	m;

		if (obj->holder_nodes[i] == req->node)
			continue;
		m = mt_strongest_mode(inst->holdMask & conflicts);
		if (m != NoLock)
			add_edge(w, first_edge, -1, r, obj->holder_nodes[i], true, m);
	}

	/* soft: sessions queued ahead for a conflicting mode */
	if (!obj->need_queue)
		return;
	hard_end = w->nedges;
	for (q = obj->first; q < w->nrequests; q++)
	{
		MtRequest  *ahead = &w->requests[q];

		if (ahead->node == req->node ||
			ahead->queue_pos >= req->queue_pos ||
			(conflicts & LOCKBIT_ON(ahead->mode)) == 0)
			continue;

		/*
		 * A session has one request per object unless a lock group waits for
		 * two modes: only then can soft edges repeat.
		 */
		add_edge(w, first_edge, obj->repeated_pids ? -1 : hard_end,
				 r, ahead->node, false, ahead->mode);
	}
}

/*
 * Every (waiting request, blocker) pair on the lock object whose instances
 * are idx[obj->start .. obj->end).
 */
static void
add_object_waits(MtLockWaits *w, MtObjectScan *obj, MemoryContext tmpcxt)
{
	int			r;
	int			i;

	obj->tag = &w->data->locks[obj->idx[obj->start]].locktag;
	obj->method = GetLockTagsMethodTable(obj->tag);
	collect_object_requests(w, obj);
	if (w->nrequests == obj->first)
		return;

	/* the sessions holding something here, as graph nodes */
	for (i = 0; i < obj->nholders; i++)
		obj->holder_nodes[i] =
			graph_node(w->nodes,
					   mt_instance_holder(w->status,
										  &w->data->locks[obj->holders[i]]));

	obj->need_queue = queue_order_matters(obj);
	if (obj->need_queue)
		fetch_queue_order(w, obj->idx, obj->start, obj->end, obj->inst_req,
						  obj->first, w->nrequests, tmpcxt);

	for (r = obj->first; r < w->nrequests; r++)
		add_request_edges(w, obj, r);
}

/*
 * Read the lock manager once and work out every (waiting request, blocker)
 * pair, with the chains they form.
 */
static MtLockWaits *
collect_lock_waits(void)
{
	MtLockWaits *w = palloc0(sizeof(MtLockWaits));
	MtObjectScan obj;
	MemoryContext tmpcxt;
	HASHCTL		ctl;
	int		   *idx;

	w->status = mt_read_lock_status();
	w->data = w->status->data;
	w->taken_at = GetCurrentTimestamp();
	idx = mt_sorted_instances(w->data);
	w->requests = palloc(sizeof(MtRequest) * Max(w->data->nelements, 1));
	w->maxedges = 64;
	w->edges = palloc(sizeof(MtWaitEdge) * w->maxedges);

	memset(&obj, 0, sizeof(obj));
	obj.idx = idx;
	obj.inst_req = palloc(sizeof(int) * Max(w->data->nelements, 1));
	obj.holders = palloc(sizeof(int) * Max(w->data->nelements, 1));
	obj.holder_nodes = palloc(sizeof(MtNode *) * Max(w->data->nelements, 1));

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(MtNode);
	ctl.hcxt = CurrentMemoryContext;
	w->nodes = hash_create("migration_tools lock waits graph", 64, &ctl,
						   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	tmpcxt = AllocSetContextCreate(CurrentMemoryContext,
								   "migration_tools lock queue",
								   ALLOCSET_DEFAULT_SIZES);

	obj.start = 0;
	while (obj.start < w->data->nelements)
	{
		obj.end = mt_same_object_end(w->data, idx, obj.start);
		add_object_waits(w, &obj, tmpcxt);
		obj.start = obj.end;
		CHECK_FOR_INTERRUPTS();
	}

	MemoryContextDelete(tmpcxt);
	pfree(obj.holder_nodes);
	pfree(obj.holders);
	pfree(obj.inst_req);
	pfree(idx);
	compute_chains(w);
	return w;
}

/*
 * An edge as one bigint: its blocker's node key (pid, or -(xid + 1) for a
 * prepared transaction) times 32, plus 16 when hard, plus the blocker's
 * mode (1 to 8).  The lock_waits view decodes it: key = code >> 5, kind
 * from bit 16, mode = code & 15.  One array of these per request is all
 * the view has to unnest, which keeps the cost of each (waiter, blocker)
 * row low when there are tens of thousands.
 */
static int64
edge_code(const MtWaitEdge *e)
{
	return holder_key(e->blocker) * 32 + (e->hard ? 16 : 0) +
		(int64) e->blocker_mode;
}

/* The columns of _lock_waits() */
enum
{
	LW_BLOCKER_KEY,
	LW_PID,
	LW_PREPARED_XID,
	LW_QUERY,
	LW_ROLE,
	LW_APPNAME,
	LW_STATE,
	LW_XACT_START,
	LW_DEPTH,
	LW_ROOT_PID,
	LW_ROOT_PREPARED_XID,
	LW_WAIT_STARTED,
	LW_WAIT_DURATION,
	LW_LOCKTYPE,
	LW_MODE,
	LW_DATABASE,
	LW_RELATION_OID,
	LW_RELATION,
	LW_PAGE,
	LW_TUPLE,
	LW_VIRTUALXID,
	LW_TRANSACTIONID,
	LW_CLASSID,
	LW_OBJID,
	LW_OBJSUBID,
	LW_BLOCKERS,
	LW_NUM_COLS
};

/* The lock object's columns of a request row, decoded as pg_locks does. */
static void
put_locktag(const LOCKTAG *tag, Datum *values, bool *nulls)
{
	bool		has_db = false;
	bool		has_rel = false;

	if (tag->locktag_type <= LOCKTAG_LAST_TYPE)
		values[LW_LOCKTYPE] = CStringGetTextDatum(LockTagTypeNames[tag->locktag_type]);
	else
		values[LW_LOCKTYPE] = CStringGetTextDatum(psprintf("unknown %d",
														   (int) tag->locktag_type));
	nulls[LW_LOCKTYPE] = false;

	switch ((LockTagType) tag->locktag_type)
	{
		case LOCKTAG_TUPLE:
			values[LW_TUPLE] = Int16GetDatum(tag->locktag_field4);
			nulls[LW_TUPLE] = false;
			/* FALLTHROUGH */
		case LOCKTAG_PAGE:
			values[LW_PAGE] = Int32GetDatum(tag->locktag_field3);
			nulls[LW_PAGE] = false;
			/* FALLTHROUGH */
		case LOCKTAG_RELATION:
		case LOCKTAG_RELATION_EXTEND:
			has_rel = true;
			/* FALLTHROUGH */
		case LOCKTAG_DATABASE_FROZEN_IDS:
			has_db = true;
			break;
		case LOCKTAG_TRANSACTION:
			values[LW_TRANSACTIONID] = TransactionIdGetDatum(tag->locktag_field1);
			nulls[LW_TRANSACTIONID] = false;
			break;
		case LOCKTAG_VIRTUALTRANSACTION:
			values[LW_VIRTUALXID] = CStringGetTextDatum(psprintf("%d/%u",
																 (int) tag->locktag_field1,
																 tag->locktag_field2));
			nulls[LW_VIRTUALXID] = false;
			break;
		case LOCKTAG_SPECULATIVE_TOKEN:
			values[LW_TRANSACTIONID] = TransactionIdGetDatum(tag->locktag_field1);
			nulls[LW_TRANSACTIONID] = false;
			values[LW_OBJID] = ObjectIdGetDatum(tag->locktag_field2);
			nulls[LW_OBJID] = false;
			break;
		case LOCKTAG_OBJECT:
		case LOCKTAG_USERLOCK:
		case LOCKTAG_ADVISORY:
		default:
			has_db = true;
			values[LW_CLASSID] = ObjectIdGetDatum(tag->locktag_field2);
			values[LW_OBJID] = ObjectIdGetDatum(tag->locktag_field3);
			values[LW_OBJSUBID] = Int16GetDatum(tag->locktag_field4);
			nulls[LW_CLASSID] = nulls[LW_OBJID] = nulls[LW_OBJSUBID] = false;
			break;
	}
	if (has_db)
	{
		values[LW_DATABASE] = ObjectIdGetDatum(tag->locktag_field1);
		nulls[LW_DATABASE] = false;
	}
	if (has_rel)
	{
		values[LW_RELATION_OID] = ObjectIdGetDatum(tag->locktag_field2);
		nulls[LW_RELATION_OID] = false;
		/* regclass only resolves names in this database's catalogs */
		if (tag->locktag_field1 == MyDatabaseId ||
			tag->locktag_field1 == InvalidOid)
		{
			values[LW_RELATION] = ObjectIdGetDatum(tag->locktag_field2);
			nulls[LW_RELATION] = false;
		}
	}
}

/*
 * The row of the request of edge w->edges[first], whose edges are
 * consecutive: the waiting session, the wait, the lock object, and the
 * blockers as edge codes (codes is room for w->nedges of them).  Returns
 * the index of the next request's first edge.
 */
static int
put_request_row(ReturnSetInfo *rsinfo, MtLockWaits *w, HTAB *act,
				Datum *codes, int first)
{
	MtRequest  *req = &w->requests[w->edges[first].request];
	LockInstanceData *inst = &w->data->locks[req->inst];
	Datum		values[LW_NUM_COLS];
	bool		nulls[LW_NUM_COLS];
	int			i;
	int			nc;

	memset(values, 0, sizeof(values));
	memset(nulls, true, sizeof(nulls));

	values[LW_PID] = Int32GetDatum(req->pid);
	nulls[LW_PID] = false;
	mt_put_activity(act, req->pid, values, nulls,
					LW_QUERY, LW_ROLE, LW_APPNAME, -1, -1);
	if (req->wait_start != 0)
	{
		values[LW_WAIT_STARTED] = TimestampTzGetDatum(req->wait_start);
		nulls[LW_WAIT_STARTED] = false;
		values[LW_WAIT_DURATION] =
			DirectFunctionCall2(timestamp_mi,
								TimestampTzGetDatum(w->taken_at),
								TimestampTzGetDatum(req->wait_start));
		nulls[LW_WAIT_DURATION] = false;
	}
	values[LW_MODE] = CStringGetTextDatum(GetLockmodeName(inst->locktag.locktag_lockmethodid,
														  req->mode));
	nulls[LW_MODE] = false;
	put_locktag(&inst->locktag, values, nulls);

	for (i = first, nc = 0;
		 i < w->nedges && w->edges[i].request == w->edges[first].request;
		 i++, nc++)
		codes[nc] = Int64GetDatum(edge_code(&w->edges[i]));
	values[LW_BLOCKERS] = PointerGetDatum(construct_array(codes, nc, INT8OID,
														  sizeof(int64),
														  FLOAT8PASSBYVAL,
														  TYPALIGN_DOUBLE));
	nulls[LW_BLOCKERS] = false;

	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return i;
}

/*
 * The row of a blocker: its key (as in the edge codes), its pid or
 * prepared xid, what pg_stat_activity shows of it, and the chain it leads
 * to.  prepared_d is the state shown for a prepared transaction.
 */
static void
put_blocker_row(ReturnSetInfo *rsinfo, const MtNode *n, HTAB *act,
				Datum prepared_d)
{
	Datum		values[LW_NUM_COLS];
	bool		nulls[LW_NUM_COLS];

	memset(values, 0, sizeof(values));
	memset(nulls, true, sizeof(nulls));

	values[LW_BLOCKER_KEY] = Int64GetDatum(n->key);
	nulls[LW_BLOCKER_KEY] = false;
	if (n->holder.pid != 0)
	{
		values[LW_PID] = Int32GetDatum(n->holder.pid);
		nulls[LW_PID] = false;
		mt_put_activity(act, n->holder.pid, values, nulls,
						LW_QUERY, LW_ROLE, LW_APPNAME, LW_STATE,
						LW_XACT_START);
	}
	else
	{
		values[LW_PREPARED_XID] = TransactionIdGetDatum(n->holder.xid);
		nulls[LW_PREPARED_XID] = false;
		values[LW_STATE] = prepared_d;
		nulls[LW_STATE] = false;
	}
	if (n->level >= 0)
	{
		values[LW_DEPTH] = Int32GetDatum(n->level + 1);
		nulls[LW_DEPTH] = false;
		if (n->root >= 0)
		{
			values[LW_ROOT_PID] = Int32GetDatum((int32) n->root);
			nulls[LW_ROOT_PID] = false;
		}
		else
		{
			values[LW_ROOT_PREPARED_XID] =
				TransactionIdGetDatum((TransactionId) (-(n->root + 1)));
			nulls[LW_ROOT_PREPARED_XID] = false;
		}
	}
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

/*
 * SQL: migration_tools._lock_waits(): from one read of the lock manager and
 * of the backend status, two kinds of rows:
 *
 * - one per waiting lock request (blocker_key NULL): the waiting session
 *   (pid, query, role, application name), the wait and the lock object,
 *   and its blockers as an array of edge codes (see edge_code());
 * - one per blocker (blocker_key set, as in the edge codes): its pid or
 *   prepared xid, what pg_stat_activity shows of it, and the chain it
 *   leads to (depth of a wait on it, root blocker).
 *
 * The lock_waits view unnests the codes into one row per (request,
 * blocker) and joins them to the blockers.  A function in FROM fills a
 * tuplestore, and N sessions queued for the same exclusive lock make
 * N*(N+1)/2 pairs but only N requests and N + 1 blockers: this keeps what
 * is stored and what is looked up per pair small.
 */
PG_FUNCTION_INFO_V1(mt_lock_waits_srf);

Datum
mt_lock_waits_srf(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MtLockWaits *w;
	HTAB	   *act;
	Datum	   *codes;
	Datum		prepared_d;
	HASH_SEQ_STATUS seq;
	MtNode	   *n;
	int			first;

	mt_init_materialized_srf(fcinfo);
	w = collect_lock_waits();
	if (w->nedges == 0)
		return (Datum) 0;
	act = mt_read_activity();
	codes = palloc(sizeof(Datum) * w->nedges);

	/* the requests; the edges of one request are consecutive */
	first = 0;
	while (first < w->nedges)
		first = put_request_row(rsinfo, w, act, codes, first);

	/* the blockers */
	prepared_d = CStringGetTextDatum("prepared");
	hash_seq_init(&seq, w->nodes);
	while ((n = hash_seq_search(&seq)) != NULL)
	{
		if (n->blocks)
			put_blocker_row(rsinfo, n, act, prepared_d);
	}
	return (Datum) 0;
}
