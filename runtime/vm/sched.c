/*
 * sched.c - the coroutines that run every handler, hook, timer callback
 * and app load.  Coroutines come from a per-generation pool; a coroutine
 * that waits parks on an ml_wait and is resumed by the libuv callback of
 * what it waits on.  Generations are gen.c's; what Lua sees of time and
 * requests lives in lib_core.c and lib_req.c; connections in conn.c.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "vm/sched.h"
#include "base/log.h"
#include "vm/lib_json.h"
#include "base/util.h"

#define POOL_MAX 1024   /* idle coroutines kept per state ... */
#define POOL_KEEP 32    /* ... of which a sweep lets none go */
#define SWEEP_MS 5000   /* how often an outgrown pool is swept */

/* The token runtime waits yield, so coroutine wrappers can pass them up. */
static char yield_token;

/*
** {======================================================
** A generation's scheduler
** =======================================================
*/

void ml_sched_init(ml_gen *g) {
  uv_idle_init(g->loop, &g->ready_idle);   /* cannot fail */
}

/* The ready queue's idle handle is closed: the last of the state. */
static void gen_free(uv_handle_t *h) {
  free(container_of(h, ml_gen, ready_idle));
}

void ml_sched_close(ml_gen *g) {
  ml_co *co, *next;
  for (co = g->pool; co != NULL; co = next) {
    next = co->next;
    free(co);                  /* lua_close collected their threads */
  }
  g->pool = NULL;
  uv_close((uv_handle_t *)&g->ready_idle, gen_free);
}

int ml_sched_serves_request(const ml_co *co) {
  for (; co != NULL; co = co->parent)
    if (co->job != NULL && co->job->request)
      return 1;
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** The pool shrinks back after a burst
** =======================================================
*/

/*
 * A burst leaves up to POOL_MAX idle threads in the pool, 1.2 KiB each.
 * While the pool holds more than POOL_KEEP, a sweeper (a part of the
 * generation, its timer on the generation's clock) looks at it every
 * SWEEP_MS and lets go half of those that stayed idle through the whole
 * period (the pool's low-water mark), never going under POOL_KEEP: an
 * idle server is back to POOL_KEEP in about half a minute, while one
 * under steady load keeps what it uses.
 */
typedef struct {
  ml_part part;
  ml_ctimer timer;        /* one-shot, started again after each sweep */
  int low;                /* the fewest pooled since the last sweep */
} pool_sweeper;

static void sweeper_retire(ml_part *p) {
  ml_clock_timer_stop(&((pool_sweeper *)p)->timer);
}

static void sweeper_close(ml_part *p) {
  ml_clock_timer_stop(&((pool_sweeper *)p)->timer);
  free(p);
}

static const ml_part_kind sweeper_kind = { "coroutine pool", sweeper_retire,
                                           sweeper_close };

static void co_unref(ml_co *co);

/* Lets the pool's oldest coroutines go until it holds 'keep'. */
static void pool_trim(ml_gen *g, int keep) {
  ml_co **at = &g->pool, *co;
  int i;
  for (i = 0; i < keep && *at != NULL; i++)
    at = &(*at)->next;
  while ((co = *at) != NULL) {
    *at = co->next;
    g->pooled--;
    ml_closethread(co->L);     /* its stack shrinks now, not at the GC */
    co_unref(co);
  }
}

static void sweep(ml_ctimer *t) {
  pool_sweeper *s = container_of(t, pool_sweeper, timer);
  ml_gen *g = s->part.gen;
  int idle = s->low < g->pooled ? s->low : g->pooled;
  if (idle > POOL_KEEP)
    pool_trim(g, g->pooled - (idle - POOL_KEEP + 1) / 2);
  s->low = g->pooled;
  if (g->pooled > POOL_KEEP &&
      ml_clock_timer_start(&s->timer, sweep, SWEEP_MS, 0) == 0)
    return;
  ml_gen_detach(&s->part);    /* fired, so off the clock: free it now */
  free(s);
}

/* The pool holds more than POOL_KEEP: a sweeper, unless one is at work
 * (or out of memory: the pool then keeps what it has until the next). */
static void sweeper_start(ml_gen *g) {
  pool_sweeper *s;
  if (ml_gen_part(g, &sweeper_kind) != NULL ||
      (s = malloc(sizeof *s)) == NULL)
    return;
  ml_clock_timer_init_on(g->clock, &s->timer);
  if (ml_clock_timer_start(&s->timer, sweep, SWEEP_MS, 0) != 0) {
    free(s);
    return;
  }
  s->low = g->pooled;
  ml_gen_attach(g, &s->part, &sweeper_kind);
}

/* A coroutine left the pool: its low-water mark may have moved. */
static void pool_taken(ml_gen *g) {
  pool_sweeper *s;
  if (g->pooled < POOL_MAX &&
      (s = (pool_sweeper *)ml_gen_part(g, &sweeper_kind)) != NULL &&
      g->pooled < s->low)
    s->low = g->pooled;
}

/* }====================================================== */

/*
** {======================================================
** Coroutines
** =======================================================
*/

ml_co *ml_sched_acquire(ml_gen *g, const ml_job *job, void *data) {
  ml_co *co = g->pool;
  if (co != NULL) {
    g->pool = co->next;
    g->pooled--;
    pool_taken(g);
  } else {
    if ((co = calloc(1, sizeof *co)) == NULL)
      return NULL;
    co->gen = g;
    co->L = lua_newthread(g->L);      /* cannot fail short of memory */
    co->ref = luaL_ref(g->L, LUA_REGISTRYINDEX);
  }
  co->job = job;
  co->data = data;
  co->prev = NULL;
  co->next = g->lent;
  if (g->lent != NULL)
    g->lent->prev = co;
  g->lent = co;
  g->live++;
  return co;
}

/* The one luaL_unref of a coroutine's thread. */
static void co_unref(ml_co *co) {
  luaL_unref(co->gen->L, LUA_REGISTRYINDEX, co->ref);
  co->ref = LUA_NOREF;
  free(co);
}

/* Unlinks co from its parent's children; it no longer dies with it. */
static void orphan(ml_co *co) {
  ml_co *p = co->parent;
  if (p == NULL)
    return;
  if (co->sibling_prev != NULL)
    co->sibling_prev->sibling_next = co->sibling_next;
  else
    p->children = co->sibling_next;
  if (co->sibling_next != NULL)
    co->sibling_next->sibling_prev = co->sibling_prev;
  co->parent = co->sibling_prev = co->sibling_next = NULL;
}

void ml_sched_adopt(ml_co *parent, ml_co *child) {
  child->parent = parent;
  child->sibling_prev = NULL;
  child->sibling_next = parent->children;
  if (parent->children != NULL)
    parent->children->sibling_prev = child;
  parent->children = child;
}

void ml_sched_defer(ml_co *co, ml_defer *d, void (*fn)(ml_defer *d)) {
  d->fn = fn;
  d->co = co;
  d->prev = NULL;
  d->next = co->defers;
  if (co->defers != NULL)
    co->defers->prev = d;
  co->defers = d;
}

void ml_sched_undefer(ml_defer *d) {
  if (d->co == NULL)
    return;
  if (d->prev != NULL)
    d->prev->next = d->next;
  else
    d->co->defers = d->next;
  if (d->next != NULL)
    d->next->prev = d->prev;
  d->co = NULL;
  d->prev = d->next = NULL;
}

/* The job's deferred clean-ups, newest first; each may add or remove
 * others, so the list is read again after every one. */
static void run_defers(ml_co *co) {
  ml_defer *d;
  while ((d = co->defers) != NULL) {
    ml_sched_undefer(d);
    d->fn(d);
  }
}

/*
 * The job is over, however it ended: the thread is clean again and goes
 * back to the pool, or is dropped when the pool is full or the state is
 * retiring.  Its own tasks live on, no longer tied to it.  Closes a
 * retired state whose last coroutine this was.
 */
static void co_release(ml_co *co) {
  ml_gen *g = co->gen;
  run_defers(co);
  orphan(co);
  while (co->children != NULL)
    orphan(co->children);
  if (co->prev != NULL)
    co->prev->next = co->next;
  else
    g->lent = co->next;
  if (co->next != NULL)
    co->next->prev = co->prev;
  lua_settop(co->L, 0);
  co->wait = NULL;
  co->job = NULL;
  co->data = NULL;
  co->cancel_pending = 0;
  if (!g->retired && g->pooled < POOL_MAX) {
    co->next = g->pool;
    g->pool = co;
    if (++g->pooled > POOL_KEEP)
      sweeper_start(g);
  } else {
    if (!g->retired)
      ml_closethread(co->L);   /* its stack shrinks now, not at the GC */
    co_unref(co);
  }
  if (--g->live == 0 && g->retired)
    ml_gen_close(g);
}

void ml_sched_log_error(ml_co *co, const char *context) {
  lua_State *L = co->L;
  const char *msg = ml_json_describe(L, -1);  /* tables by contents */
  char what[700];
  luaL_traceback(L, L, msg, 0);
  if (co->job != NULL && co->job->name != NULL) {
    co->job->name(co, what, sizeof what);
    ml_log(MOONLET_LOG_ERROR, "%s: %s", what, lua_tostring(L, -1));
  } else {
    ml_log(MOONLET_LOG_ERROR, "%s failed: %s", context, lua_tostring(L, -1));
  }
  lua_pop(L, 2);
}

/* The job ended (returned or raised): tell its owner, then release. */
static void co_finish(ml_co *co, int ok) {
  const ml_job *job = co->job;
  if (!ok && !job->quiet)
    ml_sched_log_error(co, job->what);
  co->running = 1;      /* 'done' may retire the state: not cancel this */
  if (job->done != NULL)
    job->done(co, ok ? ML_CO_OK : ML_CO_ERROR);  /* values on co->L */
  co->running = 0;
  if (!ok)
    ml_closethread(co->L);
  co_release(co);
}

/*
 * Resumes co and handles how it stopped.  A yield must have parked it on
 * a wait; a bare coroutine.yield in a handler did not, and is an error.
 */
static void run(ml_co *co, int nargs) {
  ml_gen *g = co->gen;
  ml_co *prev = g->running;
  ml_resume_hook *hook = g->host->resume_hook;
  int status, nres;
  if (g->host->gc_stress)
    lua_gc(g->L, LUA_GCCOLLECT);
  g->running = co;
  co->running = 1;
  if (hook != NULL)
    status = hook->resume(hook, co->L, co, nargs, &nres);
  else
    status = lua_resume(co->L, NULL, nargs, &nres);
  co->running = 0;
  g->running = prev;
  if (status == LUA_YIELD) {
    lua_pop(co->L, nres);
    if (co->wait == NULL) {
      lua_pushliteral(co->L, "coroutine.yield() outside a coroutine of "
                             "your own: use moonlet.sleep or another wait");
      co_finish(co, 0);
    } else if (co->cancel_pending) {
      ml_sched_cancel(co);
    }
  } else {
    co_finish(co, status == LUA_OK);
  }
}

ml_co *ml_sched_current(lua_State *L) {
  ml_co *co = ML_GEN(L)->running;
  if (co == NULL || !lua_isyieldable(L))
    luaL_error(L, "attempt to wait outside a handler, timer or task "
                  "(or across a C call such as a table.sort comparator)");
  return co;
}

int ml_sched_yield(lua_State *L) {
  lua_pushlightuserdata(L, &yield_token);
  return lua_yield(L, 1);
}

int ml_sched_yieldk(lua_State *L, lua_KContext ctx, lua_KFunction k) {
  lua_pushlightuserdata(L, &yield_token);
  return lua_yieldk(L, 1, ctx, k);
}

/* The token as Lua sees it, for moonlet.boot's coroutine wrappers. */
void ml_sched_push_token(lua_State *L) {
  lua_pushlightuserdata(L, &yield_token);
}

void ml_sched_park(ml_co *co, ml_wait *w, void (*cancel)(ml_wait *)) {
  assert(co->wait == NULL);   /* a coroutine waits on one thing at a time */
  w->co = co;
  w->cancel = cancel;
  co->wait = w;
}

ml_co *ml_sched_unpark(ml_wait *w) {
  ml_co *co = w->co;
  if (co != NULL) {
    co->wait = NULL;
    w->co = NULL;
  }
  return co;
}

void ml_sched_resume(ml_co *co, int nargs) {
  run(co, nargs);
}

/*
 * The owner no longer wants the job (its client left, the task was
 * cancelled, the server stops).  Its own tasks go first.  A running
 * coroutine is cancelled at its next yield; a parked one has its wait
 * detached and stopped (the operation's callback still fires, sees
 * w->co == NULL and only frees), its thread reset so <close> variables
 * run, its owner told, and goes back to the pool.
 */
void ml_sched_cancel(ml_co *co) {
  ml_wait *w;
  while (co->children != NULL)
    ml_sched_cancel(co->children);   /* each one orphans itself */
  if (co->running) {
    co->cancel_pending = 1;
    return;
  }
  /* read only now: a child's end may have woken co from what it waited
   * on (freeing that wait) and queued it on its ready wait instead */
  w = co->wait;
  if (w != NULL) {
    co->wait = NULL;
    w->co = NULL;
    w->cancel(w);
  }
  ml_closethread(co->L);
  if (co->job->done != NULL) {
    co->running = 1;    /* 'done' may retire the state: not cancel this */
    co->job->done(co, ML_CO_CANCELLED);
    co->running = 0;
  }
  co_release(co);
}

/* Appends s to buf (size bytes), NUL-terminated: signal-safe. */
static size_t put(char *buf, size_t size, size_t n, const char *s) {
  while (*s != '\0' && n + 1 < size)
    buf[n++] = *s++;
  buf[n] = '\0';
  return n;
}

void ml_sched_describe(const ml_co *co, char *buf, size_t size) {
  const ml_job *job = co != NULL ? co->job : NULL;
  if (size == 0)
    return;
  if (job != NULL && job->describe != NULL) {
    job->describe(co, buf, size);
    return;
  }
  put(buf, size, put(buf, size, 0, "a "), job != NULL ? job->what
                                                       : "Lua code");
}

/*
** The ready queue: coroutines woken from inside another coroutine wait
** here, parked on their own 'ready' wait, until the loop's next turn.
*/

static void ready_cancel(ml_wait *w) {
  ml_co *co = container_of(w, ml_co, ready), **p;
  ml_gen *g = co->gen;
  for (p = &g->ready_head; *p != NULL; p = &(*p)->ready_next)
    if (*p == co) {
      *p = co->ready_next;
      break;
    }
  g->ready_tail = NULL;
  for (co = g->ready_head; co != NULL; co = co->ready_next)
    g->ready_tail = co;
  if (g->ready_head == NULL)
    uv_idle_stop(&g->ready_idle);
}

static void on_ready(uv_idle_t *h) {
  ml_gen *g = container_of(h, ml_gen, ready_idle);
  ml_co *co, *last = g->ready_tail;  /* later wakes wait for next turn */
  int more = 1;
  g->live++;                         /* no close while we walk */
  while (more && (co = g->ready_head) != NULL) {
    more = co != last;
    g->ready_head = co->ready_next;
    if (g->ready_head == NULL)
      g->ready_tail = NULL;
    co->ready_next = NULL;
    ml_sched_unpark(&co->ready);
    run(co, co->ready_nargs);
  }
  if (g->ready_head == NULL)
    uv_idle_stop(&g->ready_idle);
  if (--g->live == 0 && g->retired)
    ml_gen_close(g);
}

void ml_sched_resume_soon(ml_co *co, int nargs) {
  ml_gen *g = co->gen;
  co->ready_nargs = nargs;
  ml_sched_park(co, &co->ready, ready_cancel);
  co->ready_next = NULL;
  if (g->ready_tail != NULL)
    g->ready_tail->ready_next = co;
  else
    g->ready_head = co;
  g->ready_tail = co;
  uv_idle_start(&g->ready_idle, on_ready);
}

/* }====================================================== */
