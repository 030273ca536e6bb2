/*
 * lib_pg.c - the C side of moonlet.pg: a pool of PostgreSQL connections
 * per generation and URL, leases of them as Lua objects, queries that
 * park their coroutine, LISTEN queues.  The connection itself is
 * net/pg.c's; results turned into Lua rows are lib_pg_rows.c's;
 * transactions and the listener object are lua/moonlet/pg.lua's.
 *
 * Ownership: the generation's part (gen.h) owns its pools, a pool its
 * connections, a connection its notification queue.  When the part
 * closes, a pool with connections still in use lives on, closed, until
 * the last of them ends.  A lease is a Lua userdata that points at the connection it
 * holds; a connection points back, and whichever ends first clears the
 * other's pointer.  A lease ends when db:close() is called, when the
 * coroutine that took it ends (an ml_defer), or at its __gc.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "net/pg.h"
#include "vm/gen.h"
#include "vm/lib.h"
#include "vm/lib_pg_rows.h"
#include "base/util.h"

#define DB_MT "moonlet.pg.Db"
#define MAX_NOTES 10000          /* queued notifications per connection */
#define MAX_STMTS 64             /* prepared statements per connection */
#define MAX_STMT_SQL 4096        /* longer SQL is not prepared */

typedef struct pool pool;
typedef struct pconn pconn;
typedef struct lease lease;
typedef struct op op;

/* The generation's pools: a part of it, made on first use. */
typedef struct {
  ml_part part;
  pool *pools;
} pgstate;

/* Registry key of moonlet.json's encode (core.pg_setup). */
static char encode_key;

/* What a parked coroutine waits for. */
enum { OP_ACQUIRE, OP_QUERY, OP_IDLE, OP_RECV };

/* One waiting coroutine; owned by the wait, freed when it ends.  A
 * QUERY op stays, dead, in its connection's queue after its coroutine
 * was cancelled, until its result comes and is dropped. */
struct op {
  ml_wait w;
  ml_ctimer timer;               /* ACQUIRE and RECV deadlines */
  int kind;
  pool *pool;                    /* ACQUIRE: in its queue */
  pconn *c;                      /* QUERY, IDLE, RECV: on this conn */
  op *prev, *next;               /* the pool's queue */
  op *qnext;                     /* QUERY: the next one on c */
  lease *d;                      /* QUERY: whose (NULL once it ended);
                                    ACQUIRE: the lease to pin, or NULL */
  unsigned stmt;                 /* QUERY: its statement's id, or 0 */
  unsigned stmt_new : 1;         /* ... which this query prepares */
  unsigned dead : 1;             /* QUERY: cancelled; result dropped */
  unsigned shared : 1;           /* ACQUIRE: for a pipelined lease */
};

/* A queued notification. */
typedef struct note {
  struct note *next;
  PGnotify *n;
} note;

/* A statement prepared on a connection: its SQL and its name, "ml<n>". */
typedef struct {
  char *sql;
  size_t len;
  unsigned id;                   /* the n of its name */
  int ready;                     /* its Prepare has succeeded */
  char name[4 + ML_INT_BUFSIZE];
} stmt;

/* A connection; owned by its pool. */
struct pconn {
  ml_pg *pg;
  ml_ctimer timer;               /* bounds connecting */
  pool *pool;
  pconn *next, *prev;            /* the pool's idle list */
  pconn *anext, *aprev;          /* the pool's list of all */
  lease *leases;                 /* its holders: one, or with 'shared'
                                    any number */
  int nleases;
  op *first, *last;              /* QUERY ops in flight, oldest first */
  op *waiter;                    /* an IDLE op: waits for a drain */
  op *recv;                      /* a RECV waiter */
  note *notes, *notes_last;
  int nnotes;
  stmt stmts[MAX_STMTS];         /* the SQL the server has parsed */
  int nstmts;
  unsigned next_id;              /* the last statement's number */
  unsigned shared : 1;           /* lent to pipelined leases */
  unsigned connecting : 1;
  unsigned draining : 1;         /* a cancelled query is being read out */
  unsigned listening : 1;        /* LISTEN was sent: never pooled again */
  unsigned idle : 1;             /* in the idle list */
  unsigned doomed : 1;           /* its pools were closed: not reused */
};

/* The connections to one URL. */
struct pool {
  ml_gen *gen;
  pool *next;
  int closed;                    /* its part closed: it goes when empty */
  int max, total, opening;       /* bound; open or opening; opening */
  uint64_t timeout_ms;           /* the last connect's: bounds opening */
  int nwaiting;
  pconn *idle;
  pconn *all;
  op *first, *last;              /* coroutines waiting for a connection */
  char url[];
};

/* What Lua holds: db.  A pipelined lease ('shared') shares its
 * connection with other such leases; a statement that needs a session
 * of its own pins it to a connection of its own first. */
struct lease {
  pconn *c;                      /* NULL once closed */
  lease *lnext, *lprev;          /* c's holders */
  ml_defer defer;                /* ends with the coroutine that took it */
  unsigned shared : 1;
  unsigned busy : 1;             /* a query of its own is in flight */
  unsigned ended : 1;
};

static void pump(pool *p);

/* After a change to p: lend and open as needed, or free a closed pool
 * that has nothing left.  Callers do not touch p after it. */
static void settle(pool *p) {
  if (!p->closed)
    pump(p);
  else if (p->total == 0 && p->first == NULL)
    free(p);
}

/*
** {======================================================
** Waking coroutines
** =======================================================
*/

/* Resumes co on the loop's next turn: pool work that wakes coroutines
 * runs no Lua in its midst (a woken handler could close the state), and
 * may come from inside another coroutine (db:close handing its
 * connection to a waiter). */
static void wake(ml_co *co, int n) {
  ml_sched_resume_soon(co, n);
}

static void op_free(op *o) {
  ml_clock_timer_stop(&o->timer);
  free(o);
}

/* Ends o with nil, err (its coroutine resumed unless cancelled). */
static void op_fail(op *o, const char *err) {
  ml_co *co = ml_sched_unpark(&o->w);
  op_free(o);
  if (co != NULL)
    wake(co, ml_lib_fail(co->L, err));
}

/* }====================================================== */

/*
** {======================================================
** Connections
** =======================================================
*/

static void notes_clear(pconn *c) {
  note *n;
  while ((n = c->notes) != NULL) {
    c->notes = n->next;
    PQfreemem(n->n);
    free(n);
  }
  c->notes_last = NULL;
  c->nnotes = 0;
}

static void idle_unlink(pconn *c) {
  if (!c->idle)
    return;
  c->idle = 0;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    c->pool->idle = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  c->next = c->prev = NULL;
}

/* Closes and frees c; its holder sees "closed" from now on.  Waiters on
 * it are failed by the caller first. */
static void conn_free(pconn *c) {
  pool *p = c->pool;
  idle_unlink(c);
  if (c->aprev != NULL)
    c->aprev->anext = c->anext;
  else
    p->all = c->anext;
  if (c->anext != NULL)
    c->anext->aprev = c->aprev;
  while (c->leases != NULL) {
    lease *d = c->leases;
    c->leases = d->lnext;
    d->c = NULL;
    d->lnext = d->lprev = NULL;
    d->busy = 0;
  }
  if (c->connecting)
    p->opening--;
  ml_clock_timer_stop(&c->timer);
  p->total--;
  notes_clear(c);
  while (c->nstmts > 0)
    free(c->stmts[--c->nstmts].sql);
  ml_pg_close(c->pg);
  free(c);
}

/* The connection broke: whoever waits on it learns why (every query in
 * flight on it), and the pool may open another for its queue. */
static void conn_broken(pconn *c, const char *err) {
  pool *p = c->pool;
  op *o = c->first, *r = c->recv, *iw = c->waiter;
  char why[256];
  snprintf(why, sizeof why, "%s", err);
  c->first = c->last = c->recv = c->waiter = NULL;
  if (c->connecting && p->first != NULL) {   /* tell the first in line */
    op *w = p->first;
    p->first = w->next;
    if (p->first != NULL)
      p->first->prev = NULL;
    else
      p->last = NULL;
    p->nwaiting--;
    conn_free(c);
    op_fail(w, why);
  } else {
    conn_free(c);
  }
  while (o != NULL) {
    op *next = o->qnext;
    if (o->dead)
      op_free(o);
    else
      op_fail(o, why);
    o = next;
  }
  if (iw != NULL)
    op_fail(iw, why);
  if (r != NULL)
    op_fail(r, why);
  settle(p);
}

/* c is free (just connected, or its holder let it go): into the idle
 * list, or closed when it cannot be trusted with another query. */
static void conn_put(pconn *c) {
  pool *p = c->pool;
  if (c->listening || c->doomed || p->closed || !ml_pg_idle(c->pg)) {
    conn_free(c);
    settle(p);
    return;
  }
  notes_clear(c);
  ml_pg_ref(c->pg, 0);           /* an idle pool keeps no loop alive */
  c->shared = 0;
  c->idle = 1;
  c->prev = NULL;
  c->next = p->idle;
  if (p->idle != NULL)
    p->idle->prev = c;
  p->idle = c;
  settle(p);
}

/* Adds d to c's holders. */
static void lease_bind(lease *d, pconn *c, int shared) {
  d->c = c;
  d->shared = shared != 0;
  d->lprev = NULL;
  d->lnext = c->leases;
  if (c->leases != NULL)
    c->leases->lprev = d;
  c->leases = d;
  c->nleases++;
  c->shared = shared != 0;
  ml_pg_ref(c->pg, 1);
}

/* Takes d off its connection's holders; its queries in flight stay, and
 * their results go to nobody. */
static void lease_unbind(lease *d) {
  pconn *c = d->c;
  op *o;
  if (d->lprev != NULL)
    d->lprev->lnext = d->lnext;
  else
    c->leases = d->lnext;
  if (d->lnext != NULL)
    d->lnext->lprev = d->lprev;
  d->lnext = d->lprev = NULL;
  d->c = NULL;
  d->busy = 0;
  c->nleases--;
  for (o = c->first; o != NULL; o = o->qnext)
    if (o->d == d)
      o->d = NULL;
}

/* A holder is done with c: back to the pool once it has none, and no
 * query or drain is in flight (query_done puts it then). */
static void conn_release(pconn *c) {
  if (c->nleases > 0 || c->first != NULL || c->draining || c->connecting)
    return;
  if (c->recv != NULL) {
    op *r = c->recv;
    c->recv = NULL;
    op_fail(r, "closed");
  }
  conn_put(c);
}

static void queue_note(pconn *c, PGnotify *n) {
  note *q;
  if (!c->listening || (q = malloc(sizeof *q)) == NULL) {
    PQfreemem(n);
    return;
  }
  if (c->nnotes >= MAX_NOTES) {  /* nobody reads: drop the oldest */
    note *old = c->notes;
    c->notes = old->next;
    PQfreemem(old->n);
    free(old);
    c->nnotes--;
  }
  q->n = n;
  q->next = NULL;
  if (c->notes_last != NULL)
    c->notes_last->next = q;
  else
    c->notes = q;
  c->notes_last = q;
  c->nnotes++;
}

/* Pushes the next queued notification as channel, payload, pid; 0 if
 * none. */
static int push_note(lua_State *L, pconn *c) {
  note *q = c->notes;
  if (q == NULL)
    return 0;
  c->notes = q->next;
  if (c->notes == NULL)
    c->notes_last = NULL;
  c->nnotes--;
  lua_pushstring(L, q->n->relname);
  lua_pushstring(L, q->n->extra);
  lua_pushinteger(L, q->n->be_pid);
  PQfreemem(q->n);
  free(q);
  return 3;
}

static void on_notify(pconn *c) {
  PGnotify *n;
  op *r;
  ml_co *co;
  while ((n = ml_pg_notifies(c->pg)) != NULL)
    queue_note(c, n);
  if ((r = c->recv) == NULL || c->notes == NULL)
    return;
  c->recv = NULL;
  co = ml_sched_unpark(&r->w);
  op_free(r);
  if (co != NULL)
    wake(co, push_note(co->L, c));
}

static void query_done(pconn *c);

/* Everything net/pg.c reports about one connection. */
static void on_event(ml_pg *pg, int ev, void *ud) {
  pconn *c = ud;
  ML_UNUSED(pg);
  if (ev == ML_PG_BROKEN) {
    conn_broken(c, ml_pg_error(c->pg));
  } else if (ev == ML_PG_NOTIFY) {
    on_notify(c);
  } else if (c->connecting) {
    c->connecting = 0;
    c->pool->opening--;
    ml_clock_timer_stop(&c->timer);
    conn_put(c);
  } else if (c->draining) {
    c->draining = 0;
    query_done(c);
  } else {
    query_done(c);
  }
}

/* A server that accepts and says nothing: libpq's connect_timeout is
 * only enforced by its blocking calls, so the deadline is ours. */
static void connect_timeout(ml_ctimer *t) {
  pconn *c = container_of(t, pconn, timer);
  conn_broken(c, "timeout");
}

/* Opens a connection for the pool's queue; 0 or -1 (with 'err'). */
static int conn_open(pool *p, char *err, size_t errlen) {
  pconn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    snprintf(err, errlen, "not enough memory");
    return -1;
  }
  ml_clock_timer_init_on(p->gen->clock, &c->timer);
  if (ml_clock_timer_start(&c->timer, connect_timeout, p->timeout_ms,
                           0) != 0) {
    free(c);
    snprintf(err, errlen, "not enough memory");
    return -1;
  }
  c->pool = p;
  c->connecting = 1;
  c->pg = ml_pg_open(p->gen->loop, p->url, on_event, c, err, errlen);
  if (c->pg == NULL) {
    ml_clock_timer_stop(&c->timer);
    free(c);
    return -1;
  }
  c->anext = p->all;
  if (p->all != NULL)
    p->all->aprev = c;
  p->all = c;
  p->total++;
  p->opening++;
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** Pools
** =======================================================
*/

static void queue_remove(op *o) {
  pool *p = o->pool;
  if (p == NULL)
    return;
  if (o->prev != NULL)
    o->prev->next = o->next;
  else
    p->first = o->next;
  if (o->next != NULL)
    o->next->prev = o->prev;
  else
    p->last = o->prev;
  o->pool = NULL;
  p->nwaiting--;
}

/* Makes a lease of c for the coroutine on L (the top of its stack). */
static void lease_push(lua_State *L, ml_co *co, pconn *c, int shared);

/* The connection lent to pipelined leases that has the fewest of them,
 * or NULL. */
static pconn *pick_shared(pool *p) {
  pconn *c, *best = NULL;
  for (c = p->all; c != NULL; c = c->anext)
    if (c->shared && !c->doomed &&
        (best == NULL || c->nleases < best->nleases))
      best = c;
  return best;
}

/* Gives c to the first in line, o: a new lease on its coroutine, or the
 * lease it pins.  0, or -1 when o's coroutine or lease has gone (c is
 * not taken). */
static int lend(op *o, pconn *c) {
  lease *d = o->d;
  int shared = o->shared;
  ml_co *co;
  queue_remove(o);
  co = ml_sched_unpark(&o->w);
  op_free(o);
  if (co == NULL)
    return -1;
  if (d == NULL) {
    lease_push(co->L, co, c, shared);
    wake(co, 1);
    return 0;
  }
  if (d->ended) {
    wake(co, ml_lib_fail(co->L, "closed"));
    return -1;
  }
  lease_bind(d, c, 0);
  wake(co, 0);                       /* its query goes now */
  return 0;
}

/*
 * Hands idle connections to the coroutines in line, oldest first, and
 * opens new ones while more wait than are being opened and the pool is
 * below its bound; once nothing is being opened, pipelined leases in
 * line share the least used connection.  A connection that went bad
 * while idle is dropped here, before anyone sees it.
 */
static void pump(pool *p) {
  char err[256];
  op *o;
  pconn *c;
  while ((o = p->first) != NULL && (c = p->idle) != NULL) {
    idle_unlink(c);
    if (!ml_pg_sound(c->pg)) {
      conn_free(c);
      continue;
    }
    if (lend(o, c) != 0) {           /* gone meanwhile: keep c */
      conn_put(c);
      return;
    }
  }
  while (p->nwaiting > p->opening && p->total < p->max)
    if (conn_open(p, err, sizeof err) != 0) {
      op_fail((o = p->first, queue_remove(o), o), err);
      return;
    }
  while ((o = p->first) != NULL && o->shared && p->opening == 0 &&
         (c = pick_shared(p)) != NULL)
    lend(o, c);
}

static pool *pool_find(pgstate *st, ml_gen *g, const char *url, int max) {
  pool *p;
  size_t n;
  for (p = st->pools; p != NULL; p = p->next)
    if (strcmp(p->url, url) == 0) {
      p->max = max;
      return p;
    }
  n = strlen(url) + 1;
  if ((p = calloc(1, sizeof *p + n)) == NULL)
    return NULL;
  memcpy(p->url, url, n);
  p->gen = g;
  p->max = max;
  p->next = st->pools;
  st->pools = p;
  return p;
}

/* An idle connection that is still sound, taken out; or NULL. */
static pconn *take_idle(pool *p) {
  pconn *c;
  while ((c = p->idle) != NULL) {
    idle_unlink(c);
    if (ml_pg_sound(c->pg))
      return c;
    conn_free(c);                  /* the server went away meanwhile */
  }
  return NULL;
}

/* The generation's pools, made on first use; NULL when out of memory. */
static pgstate *state_get(ml_gen *g, int make);

/* }====================================================== */

/*
** {======================================================
** Leases: moonlet.pg.connect and db:close
** =======================================================
*/

static void lease_end(lease *d) {
  pconn *c = d->c;
  ml_sched_undefer(&d->defer);
  d->ended = 1;
  if (c == NULL)
    return;
  lease_unbind(d);
  conn_release(c);
}

static void lease_deferred(ml_defer *df) {
  lease_end(container_of(df, lease, defer));
}

static void lease_push(lua_State *L, ml_co *co, pconn *c, int shared) {
  lease *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  luaL_setmetatable(L, DB_MT);
  lease_bind(d, c, shared);
  ml_sched_defer(co, &d->defer, lease_deferred);
}

static void acquire_timeout(ml_ctimer *t) {
  op *o = container_of(t, op, timer);
  queue_remove(o);
  op_fail(o, "timeout");
}

static void acquire_cancel(ml_wait *w) {
  op *o = (op *)w;
  pool *p = o->pool;
  queue_remove(o);
  op_free(o);
  ML_UNUSED(p);
}

/*
 * Parks co in p's line for a connection, until the pool's timeout: for a
 * new lease (pipelined or not), or to pin lease d.  Raises when out of
 * memory; the caller yields.
 */
static void wait_in_line(lua_State *L, ml_co *co, pool *p, lease *d,
                         int shared) {
  op *o = calloc(1, sizeof *o);
  if (o == NULL)
    luaL_error(L, "not enough memory");
  o->kind = OP_ACQUIRE;
  o->d = d;
  o->shared = shared != 0;
  o->pool = p;
  o->prev = p->last;
  if (p->last != NULL)
    p->last->next = o;
  else
    p->first = o;
  p->last = o;
  p->nwaiting++;
  ml_clock_timer_init_on(co->gen->clock, &o->timer);
  ml_sched_park(co, &o->w, acquire_cancel);
  if (ml_clock_timer_start(&o->timer, acquire_timeout, p->timeout_ms,
                           0) != 0) {
    ml_sched_unpark(&o->w);
    queue_remove(o);
    op_free(o);
    luaL_error(L, "not enough memory");
  }
  pump(p);              /* opens a connection for it; resumes nobody now */
}

/*
 * core.pg_connect(url, max, timeout, pipeline) -> db | nil, err.  An
 * idle connection is lent at once; a pipelined lease shares the least
 * used pipelined connection once the pool is full; otherwise the caller
 * waits in line, and a new connection is opened for it while the pool
 * has room.
 */
static int pg_connect(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  lua_Integer max = luaL_checkinteger(L, 2);
  lua_Number timeout = luaL_checknumber(L, 3);
  int shared = lua_toboolean(L, 4);
  pgstate *st;
  pool *p;
  pconn *c;
  ml_co *co;
  luaL_argcheck(L, max > 0 && max <= 10000, 2, "max out of range");
  luaL_argcheck(L, timeout >= 0 && timeout < 1e9, 3, "timeout out of range");
  co = ml_sched_current(L);
  st = state_get(co->gen, 1);
  if (st == NULL || (p = pool_find(st, co->gen, url, (int)max)) == NULL)
    return luaL_error(L, "not enough memory");
  p->timeout_ms = (uint64_t)(timeout * 1000 + 0.5);
  if (p->first == NULL && ((c = take_idle(p)) != NULL ||
                           (shared && p->total >= p->max &&
                            (c = pick_shared(p)) != NULL))) {
    lease_push(L, co, c, shared);  /* the common case: no wait */
    return 1;
  }
  wait_in_line(L, co, p, NULL, shared);
  return ml_sched_yield(L);
}

static lease *check_db(lua_State *L) {
  return luaL_checkudata(L, 1, DB_MT);
}

/* db:close(): back to the pool (after the query in flight, if any). */
static int db_close(lua_State *L) {
  lease_end(check_db(L));
  return 0;
}

static int db_gc(lua_State *L) {
  lease_end(check_db(L));
  return 0;
}

/* db:connected(): it still holds a connection. */
static int db_connected(lua_State *L) {
  lua_pushboolean(L, check_db(L)->c != NULL);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** Prepared statements and query ends
** =======================================================
*/

/* Forgets the statement cache entry i (the server may still have it,
 * under a name that is never used again). */
static void stmt_drop(pconn *c, int i) {
  free(c->stmts[i].sql);
  c->stmts[i] = c->stmts[--c->nstmts];
}

/* The cache entry of statement 'id', or -1. */
static int stmt_index(pconn *c, unsigned id) {
  int i;
  for (i = 0; i < c->nstmts; i++)
    if (c->stmts[i].id == id)
      return i;
  return -1;
}

/*
 * The query o has ended with r: a new entry whose query failed may not
 * have been prepared; an old one the server no longer knows (DEALLOCATE,
 * DISCARD ALL: 26000) or cannot run as it was planned (a changed table:
 * 0A000) is dropped, and made again next time.
 */
static void stmt_check(pconn *c, const op *o, const PGresult *r) {
  int i = o->stmt != 0 ? stmt_index(c, o->stmt) : -1;
  const char *code;
  if (i < 0)
    return;
  if (r == NULL) {
    stmt_drop(c, i);
    return;
  }
  if (PQresultStatus(r) != PGRES_FATAL_ERROR) {
    c->stmts[i].ready = 1;
    return;
  }
  code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  if (o->stmt_new || (code != NULL && (strcmp(code, "26000") == 0 ||
                                       strcmp(code, "0A000") == 0)))
    stmt_drop(c, i);
}

/* Whether sql starts with the keyword kw (any case, after blanks). */
static int starts_with(const char *sql, const char *kw) {
  size_t n = strlen(kw);
  while (*sql == ' ' || *sql == '\t' || *sql == '\n' || *sql == '\r')
    sql++;
  return ml_strieq(sql, n, kw) && !((sql[n] | 32) >= 'a' &&
                                   (sql[n] | 32) <= 'z');
}

/* The cache entry of sql (len bytes), or -1. */
static int stmt_find(pconn *c, const char *sql, size_t len) {
  int i;
  for (i = 0; i < c->nstmts; i++)
    if (c->stmts[i].len == len && memcmp(c->stmts[i].sql, sql, len) == 0)
      return i;
  return -1;
}

/* A new cache entry for sql, or -1 when it is full, the SQL too long or
 * memory short (the query then goes unprepared). */
static int stmt_add(pconn *c, const char *sql, size_t len) {
  stmt *st = &c->stmts[c->nstmts];
  if (c->nstmts == MAX_STMTS || len > MAX_STMT_SQL ||
      (st->sql = malloc(len + 1)) == NULL)
    return -1;
  memcpy(st->sql, sql, len + 1);
  st->len = len;
  st->id = ++c->next_id;
  st->ready = 0;
  memcpy(st->name, "ml", 2);
  ml_fmt_int(st->name + 2, (long long)st->id);
  return c->nstmts++;
}

/* Sends query o (sql, len bytes), as a prepared statement when it fits
 * the cache.  The app's own DEALLOCATE or DISCARD empties the cache
 * first (neither is ever in it).  SQL whose Prepare is still in flight
 * on a pipelined connection goes unprepared: were that Prepare to fail,
 * this query would find no statement. */
static int send_query(pconn *c, op *o, const char *sql, size_t len, int n,
                      const char *const *vals) {
  int i = stmt_find(c, sql, len);
  if (i < 0 && (starts_with(sql, "deallocate") ||
                starts_with(sql, "discard"))) {
    while (c->nstmts > 0)
      free(c->stmts[--c->nstmts].sql);
    return ml_pg_send(c->pg, sql, n, vals);
  }
  if ((i >= 0 && !c->stmts[i].ready) ||
      (i < 0 && (i = stmt_add(c, sql, len)) < 0))
    return ml_pg_send(c->pg, sql, n, vals);
  o->stmt = c->stmts[i].id;
  o->stmt_new = !c->stmts[i].ready;
  if (ml_pg_send_prepared(c->pg, c->stmts[i].name, sql, o->stmt_new, n,
                          vals) != 0) {
    stmt_drop(c, i);
    o->stmt = 0;
    return -1;
  }
  return 0;
}

/* Pushes on co what query o gets: its result r as rows, or nil, err;
 * the count. */
static int push_outcome(pconn *c, ml_co *co, PGresult *r) {
  lua_State *L = c->pool->gen->L;       /* calls run on the main thread, */
  int top = lua_gettop(L), n;            /* never on a suspended one */
  if (r == NULL) {
    lua_pushnil(co->L);
    lua_pushstring(co->L, ml_pg_error(c->pg));
    return 2;
  }
  lua_pushcfunction(L, ml_lib_pg_rows_push);
  lua_pushlightuserdata(L, r);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushliteral(L, "not enough memory");
  }
  n = lua_gettop(L) - top;
  lua_xmove(L, co->L, n);                /* at most 3 values */
  return n;
}

/* The drain of a cancelled query has ended: the coroutine waiting to
 * send on c goes now. */
static void waiter_go(pconn *c) {
  op *w = c->waiter;
  ml_co *co;
  if (w == NULL)
    return;
  c->waiter = NULL;
  co = ml_sched_unpark(&w->w);
  op_free(w);
  if (co != NULL)
    wake(co, 0);                         /* it sends its query then */
}

/* The oldest query on c ended (its waiter takes the result, unless it
 * was cancelled), or the drain of a cancelled one did; c goes back to
 * the pool when nobody holds it and nothing is in flight. */
static void query_done(pconn *c) {
  op *o = c->first;
  PGresult *r = ml_pg_take(c->pg);
  ml_co *co = NULL;
  int n = 0;
  if (o != NULL) {
    c->first = o->qnext;
    if (c->first == NULL)
      c->last = NULL;
    stmt_check(c, o, r);
    if (o->d != NULL)
      o->d->busy = 0;
    if (!o->dead && (co = ml_sched_unpark(&o->w)) != NULL)
      n = push_outcome(c, co, r);
    op_free(o);
  }
  PQclear(r);
  if (!c->draining)
    waiter_go(c);
  if (c->nleases == 0 && c->first == NULL && !c->draining)
    conn_put(c);                       /* its holders let go meanwhile */
  if (co != NULL)
    ml_sched_resume(co, n);            /* last: it may close the state */
}

/* }====================================================== */

/*
** {======================================================
** Queries
** =======================================================
*/

/*
 * A query's coroutine was cancelled.  Alone on its connection: cancel it
 * on the server, read out its results, and only then send on it again.
 * On a pipelined connection the server runs it to its end (PQcancel
 * would stop whichever query runs, maybe another lease's): its result is
 * dropped when it comes.
 */
static void query_cancel(ml_wait *w) {
  op *o = (op *)w;
  pconn *c = o->c;
  if (o->kind == OP_IDLE) {
    c->waiter = NULL;
    op_free(o);
    return;
  }
  o->dead = 1;
  if (o->d != NULL)
    o->d->busy = 0;
  if (!c->shared && c->first == o && o->qnext == NULL &&
      ml_pg_cancel(c->pg) == 0)
    c->draining = 1;
}

/* Room for a number parameter's text: "%.17g" of any double. */
#define NUM_SIZE 32

/* The parameter at idx as text, pushed, pointed to or written into 'num'
 * (NUM_SIZE bytes, for a number); NULL is SQL NULL.  Raises on a value
 * that has no SQL form. */
static const char *param(lua_State *L, int idx, char *num) {
  lua_Number x;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return NULL;
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL)
      return NULL;                     /* moonlet.null */
    break;
  case LUA_TBOOLEAN:
    return lua_toboolean(L, idx) ? "t" : "f";
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      ml_fmt_int(num, (long long)lua_tointeger(L, idx));
      return num;
    }
    x = lua_tonumber(L, idx);
    if (isnan(x))
      return "NaN";
    if (isinf(x))
      return x > 0 ? "Infinity" : "-Infinity";
    snprintf(num, NUM_SIZE, "%.17g", x);
    return num;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
      luaL_argerror(L, idx, "a string with a NUL byte cannot be a "
                            "text parameter");
    return s;
  }
  case LUA_TTABLE:
    lua_rawgetp(L, LUA_REGISTRYINDEX, &encode_key);
    lua_pushvalue(L, idx);
    lua_call(L, 1, 1);
    if (!lua_isstring(L, -1))
      luaL_argerror(L, idx, "a table that is not JSON");
    return lua_tostring(L, -1);
  default:
    break;
  }
  luaL_argerror(L, idx, "nil, moonlet.null, a boolean, a number, a string "
                        "or a table expected");
  return NULL;
}

static int query_k(lua_State *L, int status, lua_KContext ctx);

/* Whether sql may run on a connection that other leases share: the
 * statements that leave nothing behind in the session.  BEGIN, SET,
 * LISTEN, PREPARE, CREATE TEMP and the rest pin the lease first. */
static int shareable(const char *sql) {
  static const char *const kw[] = { "select", "insert", "update", "delete",
                                    "with", "values", "table", "show" };
  size_t i;
  for (i = 0; i < sizeof kw / sizeof kw[0]; i++)
    if (starts_with(sql, kw[i]))
      return 1;
  return 0;
}

/* Moves pipelined lease d to a connection of its own: an idle one at
 * once (1), or its coroutine waits in line (0: the caller yields).
 * Queries it sent before stay where they were. */
static int pin(lua_State *L, ml_co *co, lease *d) {
  pconn *c = d->c;
  pool *p = c->pool;
  lease_unbind(d);
  conn_release(c);
  if (p->first == NULL && (c = take_idle(p)) != NULL) {
    lease_bind(d, c, 0);
    return 1;
  }
  wait_in_line(L, co, p, d, 0);
  return 0;
}

/* Queues query o on c and parks its coroutine; o is sent already. */
static int query_park(lua_State *L, ml_co *co, lease *d, op *o, int base) {
  pconn *c = d->c;
  lua_settop(L, base);
  o->kind = OP_QUERY;
  o->d = d;
  if (c->last != NULL)
    c->last->qnext = o;
  else
    c->first = o;
  c->last = o;
  d->busy = 1;
  ml_sched_park(co, &o->w, query_cancel);
  return ml_sched_yield(L);
}

/*
 * db:query(sql, ...) -> rows | nil, err, code.  Parameters travel apart
 * from the text.  A connection still reading out a cancelled query is
 * waited for first, and a pipelined lease pinned first when the
 * statement needs a session of its own (the continuation sends then).
 */
static int db_query(lua_State *L) {
  lease *d = check_db(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  const char *vals[256];
  char nums[256][NUM_SIZE];        /* number parameters' text */
  int n = lua_gettop(L) - 2, i, base = lua_gettop(L);
  pconn *c;
  ml_co *co;
  op *o;
  luaL_argcheck(L, n <= 256, 258, "too many parameters (256 at most)");
  luaL_argcheck(L, strlen(sql) == len, 2, "SQL with a NUL byte");
  co = ml_sched_current(L);
  if ((c = d->c) == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (d->busy)
    return luaL_error(L, "this connection is busy with another query "
                         "(one query at a time per connection)");
  luaL_checkstack(L, n + 4, "too many parameters");
  for (i = 0; i < n; i++)
    vals[i] = param(L, 3 + i, nums[i]);
  if (d->shared && !shareable(sql)) {
    lua_settop(L, base);
    if (c->pool->closed)
      return ml_lib_fail(L, "closed");
    if (pin(L, co, d))
      return db_query(L);
    return ml_sched_yieldk(L, base, query_k);
  }
  if ((o = calloc(1, sizeof *o)) == NULL)
    return luaL_error(L, "not enough memory");
  ml_clock_timer_init_on(co->gen->clock, &o->timer);
  o->c = c;
  if (c->draining) {                   /* wait for it to be idle */
    lua_settop(L, base);
    o->kind = OP_IDLE;
    c->waiter = o;
    ml_sched_park(co, &o->w, query_cancel);
    return ml_sched_yieldk(L, base, query_k);
  }
  if (send_query(c, o, sql, len, n, vals) != 0) {
    const char *err = ml_pg_error(c->pg);
    free(o);
    lua_pushnil(L);
    lua_pushstring(L, err);
    if (strcmp(err, "busy") != 0)
      conn_broken(c, err);
    return 2;
  }
  return query_park(L, co, d, o, base);
}

/* Woken: after a drain or a pin (nothing pushed), send the query now;
 * else the results (or nil, err) are on top. */
static int query_k(lua_State *L, int status, lua_KContext ctx) {
  int base = (int)ctx;
  ML_UNUSED(status);
  if (lua_gettop(L) == base)
    return db_query(L);
  return lua_gettop(L) - base;
}

static int pin_k(lua_State *L, int status, lua_KContext ctx) {
  ML_UNUSED(status);
  if (lua_gettop(L) > (int)ctx)
    return lua_gettop(L) - (int)ctx;     /* nil, err */
  lua_pushboolean(L, 1);
  return 1;
}

/* core.pg_pin(db) -> true | nil, err (yields): a pipelined lease gets a
 * connection of its own (for LISTEN); others have one already. */
static int pg_pin(lua_State *L) {
  lease *d = check_db(L);
  lua_settop(L, 1);
  if (d->c == NULL || (d->shared && d->c->pool->closed))
    return ml_lib_fail(L, "closed");
  if (d->busy)
    return luaL_error(L, "this connection is busy with another query "
                         "(one query at a time per connection)");
  if (!d->shared || pin(L, ml_sched_current(L), d))
    return pin_k(L, LUA_OK, 1);
  return ml_sched_yieldk(L, 1, pin_k);
}

/* db:escape_identifier(s): s quoted as an SQL identifier. */
static int db_escape_identifier(lua_State *L) {
  lease *d = check_db(L);
  size_t len;
  const char *s = luaL_checklstring(L, 2, &len);
  char *q;
  if (d->c == NULL)
    return luaL_error(L, "the connection is closed");
  if ((q = PQescapeIdentifier(ml_pg_conn(d->c->pg), s, len)) == NULL)
    return luaL_error(L, "%s", PQerrorMessage(ml_pg_conn(d->c->pg)));
  lua_pushstring(L, q);
  PQfreemem(q);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** LISTEN
** =======================================================
*/

/* core.pg_listening(db): its connection keeps notifications and is
 * closed, not pooled, when let go. */
static int pg_listening(lua_State *L) {
  lease *d = check_db(L);
  if (d->c != NULL)
    d->c->listening = 1;
  return 0;
}

static void recv_timeout(ml_ctimer *t) {
  op *o = container_of(t, op, timer);
  ml_co *co = ml_sched_unpark(&o->w);
  o->c->recv = NULL;
  op_free(o);
  if (co == NULL)
    return;
  lua_pushnil(co->L);
  lua_pushliteral(co->L, "timeout");
  ml_sched_resume(co, 2);
}

static void recv_cancel(ml_wait *w) {
  op *o = (op *)w;
  o->c->recv = NULL;
  op_free(o);
}

/* core.pg_receive(db [, timeout]) -> channel, payload, pid | nil, err. */
static int pg_receive(lua_State *L) {
  lease *d = check_db(L);
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  ml_co *co;
  op *o;
  luaL_argcheck(L, lua_isnoneornil(L, 2) || (timeout >= 0 && timeout < 1e9),
                2, "timeout out of range");
  co = ml_sched_current(L);
  if (d->c == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (d->c->notes != NULL)
    return push_note(L, d->c);
  if (d->c->recv != NULL)
    return luaL_error(L, "another coroutine is receiving on this listener");
  if ((o = calloc(1, sizeof *o)) == NULL)
    return luaL_error(L, "not enough memory");
  o->kind = OP_RECV;
  o->c = d->c;
  ml_clock_timer_init_on(co->gen->clock, &o->timer);
  if (timeout >= 0 &&
      ml_clock_timer_start(&o->timer, recv_timeout,
                           (uint64_t)(timeout * 1000 + 0.5), 0) != 0) {
    free(o);
    return luaL_error(L, "not enough memory");
  }
  d->c->recv = o;
  ml_sched_park(co, &o->w, recv_cancel);
  return ml_sched_yield(L);
}

/* }====================================================== */

/*
** {======================================================
** The generation's pools
** =======================================================
*/

/*
 * The part closes (the generation's state is about to, or the Lua
 * module's moonlet.run has ended): idle connections close now; those in
 * use once their query ends, their waiters still get their results;
 * coroutines waiting for a connection get "closed".  A pool with nothing
 * left goes at once, the others with their last connection.
 */
static void part_close(ml_part *part) {
  pgstate *st = (pgstate *)part;
  pool *p, *next;
  pconn *c, *cnext;
  for (p = st->pools; p != NULL; p = next) {
    next = p->next;
    p->closed = 1;
    while (p->first != NULL) {
      op *o = p->first;
      queue_remove(o);
      op_fail(o, "closed");
    }
    for (c = p->all; c != NULL; c = cnext) {
      cnext = c->anext;
      if (c->first == NULL && c->waiter == NULL && c->recv == NULL &&
          !c->draining && !c->connecting)
        conn_free(c);
      else
        c->doomed = 1;
    }
    if (p->total == 0)
      free(p);
  }
  free(st);
}

static const ml_part_kind pg_kind = { "postgresql pools", NULL, part_close };

static pgstate *state_get(ml_gen *g, int make) {
  pgstate *st = (pgstate *)ml_gen_part(g, &pg_kind);
  if (st != NULL || !make)
    return st;
  if ((st = calloc(1, sizeof *st)) == NULL)
    return NULL;
  ml_gen_attach(g, &st->part, &pg_kind);
  return st;
}

/* core.pg_setup(encode, decode): once per state, by moonlet.pg. */
static int pg_setup(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &encode_key);
  ml_lib_pg_rows_set_decoder(L, 2);
  return 0;
}

/* core.pg_stats(url) -> total, idle, waiting: for tests of the pool. */
static int pg_stats(lua_State *L) {
  const char *url = luaL_checkstring(L, 1);
  pgstate *st = state_get(ml_sched_current(L)->gen, 0);
  pool *p = NULL;
  pconn *c;
  int idle = 0;
  if (st != NULL)
    for (p = st->pools; p != NULL; p = p->next)
      if (strcmp(p->url, url) == 0)
        break;
  if (p != NULL)
    for (c = p->idle; c != NULL; c = c->next)
      idle++;
  lua_pushinteger(L, p != NULL ? p->total : 0);
  lua_pushinteger(L, idle);
  lua_pushinteger(L, p != NULL ? p->nwaiting : 0);
  return 3;
}

/* }====================================================== */

static const luaL_Reg db_methods[] = {
  {"query", db_query},
  {"close", db_close},
  {"connected", db_connected},
  {"escape_identifier", db_escape_identifier},
  {NULL, NULL}
};

static const luaL_Reg pg_funcs[] = {
  {"pg_setup", pg_setup},
  {"pg_connect", pg_connect},
  {"pg_listening", pg_listening},
  {"pg_pin", pg_pin},
  {"pg_receive", pg_receive},
  {"pg_stats", pg_stats},
  {NULL, NULL}
};

/* Adds the pg_* functions to the table on top, and pg_db_mt, the db
 * objects' metatable, whose __index table moonlet.pg adds to. */
void ml_lib_pg_register(lua_State *L) {
  luaL_newmetatable(L, DB_MT);
  luaL_newlib(L, db_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, db_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, db_gc);
  lua_setfield(L, -2, "__close");
  lua_pushliteral(L, "moonlet.pg.Db");
  lua_setfield(L, -2, "__name");
  lua_setfield(L, -2, "pg_db_mt");
  luaL_setfuncs(L, pg_funcs, 0);
}
