/*
 * gen.h - a generation: one loaded app and its Lua state.  gen.c makes
 * the state, loads the app into it, retires and closes it, for both
 * hosts: the server (host/server.c) and the Lua module (host/module.c),
 * whose generation borrows the host's own state.  Its coroutines are sched.c's.
 *
 * A subsystem with state of its own per generation (the after/every
 * timers, the outbound client's pool, a TLS context, a database pool)
 * attaches it as a part, with hooks the generation calls when it is
 * retired and when it closes, instead of adding a field to struct ml_gen
 * (lib_http.c's pool, in short):
 *
 *   typedef struct { ml_part part; ml_client *client; } http_pool;
 *   static void pool_close(ml_part *p) {
 *     ml_client_close(((http_pool *)p)->client);
 *     free(p);
 *   }
 *   static const ml_part_kind pool_kind = { "http client", NULL,
 *                                           pool_close };
 *   ...
 *   http_pool *pool = (http_pool *)ml_gen_part(g, &pool_kind);
 *   if (pool == NULL && (pool = malloc(sizeof *pool)) != NULL) {
 *     pool->client = ml_client_new(g->loop);
 *     ml_gen_attach(g, &pool->part, &pool_kind);
 *   }
 */
#ifndef ML_GEN_H
#define ML_GEN_H

#include <stddef.h>
#include <lua.h>
#include <uv.h>
#include "base/clock.h"
#include "base/router.h"
#include "base/shared.h"

typedef struct ml_gen ml_gen;
typedef struct ml_part ml_part;
typedef struct ml_co ml_co;
typedef struct ml_resume_hook ml_resume_hook;

/*
 * What a host gives each of its generations: the loop and services the
 * app's Lua code reaches, and the hooks through which the vm/ layer asks
 * the host something.  Owned by the host; it outlives its generations.
 */
typedef struct ml_host {
  uv_loop_t *loop;
  ml_clock *clock;           /* real time: timers unless a test's virtual */
  ml_shared *shared;         /* moonlet.shared's store, or NULL */
  size_t lua_memory;         /* each state's cap in bytes; 0: none */
  int worker_id;             /* moonlet.worker.id */
  int debug;                 /* --debug: tracebacks in 500 responses */
  int gc_stress;             /* a full collection before each resume */
  lua_CFunction open_core;   /* opens "moonlet.core" */
  /* Runs on each new state before moonlet.boot (moonlet_on_state's). */
  void (*on_state)(void *ud, lua_State *L);
  void *ud;
  /* Whether {single = true} timers run in this process now; NULL:
   * always (one process). */
  int (*single_turn)(void *single_ud);
  void *single_ud;
  ml_resume_hook *resume_hook;   /* sched.h; NULL: plain lua_resume */
  const int *draining;       /* nonzero once a stop has begun
                                (moonlet.draining()); NULL: never */
} ml_host;

/*
 * One loaded app.  Owned by its host until retired, then by itself: it
 * closes once retired with no coroutine left.
 */
struct ml_gen {
  const ml_host *host;
  uv_loop_t *loop;       /* host->loop */
  lua_State *L;          /* the state's main thread */
  ml_clock *clock;       /* its timers' clock: host->clock, or virtual */
  ml_router *router;     /* the app's routes (a userdata of the app) */
  int dispatch_ref;      /* runs a request (req, route, ...) */
  int app_ref;           /* the app table */
  ml_part *parts;
  int retired;           /* no new work; closes when live == 0 */
  /* the allocator's: the state's bytes and their cap (0: none); a
   * borrowed state's own allocator, given back at close (NULL: ours) */
  size_t mem, mem_limit;
  lua_Alloc host_alloc;
  void *host_alloc_ud;
  /* the scheduler's (sched.c) */
  ml_co *running;        /* the coroutine inside lua_resume, if any */
  ml_co *pool;           /* idle coroutines */
  ml_co *lent;           /* coroutines at work */
  ml_co *ready_head, *ready_tail;  /* woken, to resume next turn */
  uv_idle_t ready_idle;  /* runs the ready queue */
  int pooled;
  int live;              /* coroutines lent out */
};

/*
 * The generation of L, any thread of its state: the state's allocator
 * is the generation's, with the generation as its user data, so the
 * answer is right for threads of a lent state made before it was lent.
 */
static inline ml_gen *ml_gen_of(lua_State *L) {
  void *g;
  lua_getallocf(L, &g);
  return g;
}
#define ML_GEN(L) ml_gen_of(L)

/*
 * A new state with the standard libraries, moonlet's built-in modules,
 * the host's on_state hook and moonlet.boot.  NULL when out of memory or
 * on a Lua error (logged).
 */
ml_gen *ml_gen_new(const ml_host *h);

/* The same over L, a state the host lends (the Lua module's): it is
 * never closed here, and gets its allocator back when g closes. */
ml_gen *ml_gen_borrow(const ml_host *h, lua_State *L);

/*
 * Loads the app file 'path' into g: moonlet.boot.load_app runs in a
 * coroutine of g, so the app file may wait.  When it has ended, done(g,
 * status, ud) is called once: 0 (g serves the app now), MOONLET_ELOAD
 * (the error was logged with file:line), MOONLET_ENOAPP (the file
 * returned no app) or UV_ECANCELED (g was retired meanwhile).  That may
 * be before ml_gen_load returns.  0, or UV_ENOMEM (no call then).
 */
typedef void (*ml_gen_loaded)(ml_gen *g, int status, void *ud);
int ml_gen_load(ml_gen *g, const char *path, ml_gen_loaded done, void *ud);

/*
 * g serves the app at idx on L's stack, with its router and dispatch
 * function at idx + 1 and idx + 2 (moonlet.app.serve's); what it served
 * before is let go.  0, or MOONLET_ENOAPP when they are not that.
 */
int ml_gen_serve(ml_gen *g, lua_State *L, int idx);

/* No new work: its parts are retired and every coroutine not serving a
 * request is cancelled; it closes once the last request has ended. */
void ml_gen_retire(ml_gen *g);

/* The Lua module's end of a moonlet.run: what a retire stops is stopped,
 * and the parts are closed, but g goes on serving its app. */
void ml_gen_reset(ml_gen *g);

/* For sched.c: the last coroutine of a retired g has ended. */
void ml_gen_close(ml_gen *g);

/*
 * Pushes the compiled chunk of moonlet's built-in Lua module 'name' and
 * returns its file name, or returns NULL with nothing pushed when there
 * is no such module.  A chunk that does not compile raises.
 */
const char *ml_gen_builtin(lua_State *L, const char *name);

/*
** {======================================================
** Parts
** =======================================================
*/

/*
 * What a kind of part does at the two ends of its generation's life.  One
 * static const per kind (its address is the kind's identity).
 *
 * 'retire' (may be NULL): the generation takes no new work (a reload
 * replaced it, the server stops, or the Lua module ends a moonlet.run):
 * stop what belongs to the app rather than to a request, such as timers.
 * Requests still running on the generation may go on using the part.  It
 * may detach its own part (no other).
 *
 * 'close': the part is dropped: free it and what it holds idle.  Once a
 * retired generation's last coroutine has ended, so nothing of the app
 * uses it any more; or, in the Lua module, right after 'retire' when a
 * moonlet.run ends, while the app it serves goes on.  An operation still
 * running (an outbound exchange of a request) then finishes on its own
 * and frees itself, as ml_client_close lets it.  The part is detached
 * before the call.
 */
typedef struct ml_part_kind {
  const char *name;                 /* for logs: "timers", "http client" */
  void (*retire)(ml_part *p);
  void (*close)(ml_part *p);
} ml_part_kind;

/*
 * The head of a part: the first member of the subsystem's own struct,
 * which the subsystem allocates and its 'close' frees.  The generation
 * owns the list; the subsystem owns the memory.
 */
struct ml_part {
  const ml_part_kind *kind;
  ml_gen *gen;
  ml_part *next;
};

/* g's part of this kind, or NULL: a few pointer compares. */
ml_part *ml_gen_part(ml_gen *g, const ml_part_kind *kind);

/*
 * Attaches p, of this kind, to g.  One part per kind and generation:
 * callers look for it first (ml_gen_part) and attach on first use.  A
 * part attached to a retired generation is closed with it; its 'retire'
 * is not called.
 */
void ml_gen_attach(ml_gen *g, ml_part *p, const ml_part_kind *kind);

/* Detaches p from its generation without calling its hooks: the
 * subsystem is done with it and frees it itself. */
void ml_gen_detach(ml_part *p);

/* Calls every part's 'retire' hook. */
void ml_gen_parts_retire(ml_gen *g);

/* Detaches every part and calls its 'close' hook, newest first. */
void ml_gen_parts_close(ml_gen *g);

/* }====================================================== */

#endif
