/*
 * sched.h - Lua states ("generations" of an app) and the coroutines that
 * run handlers, hooks, timer callbacks and the app file itself.  Every
 * yielding call parks its coroutine on an ml_wait and resumes it from a
 * libuv callback; a closed connection cancels it.
 */
#ifndef ML_SCHED_H
#define ML_SCHED_H

#include <lua.h>
#include <uv.h>
#include "base/router.h"
#include "vm/gen.h"

typedef struct moonlet_server moonlet_server;
typedef struct ml_co ml_co;
typedef struct ml_gen ml_gen;
typedef struct ml_wait ml_wait;
typedef struct ml_clock ml_clock;
typedef struct ml_watch ml_watch;
typedef struct ml_defer ml_defer;

/* The first member of every pending operation. */
struct ml_wait {
  ml_co *co;                    /* parked coroutine; NULL once cancelled */
  void (*cancel)(ml_wait *w);   /* stop the operation; never resumes */
};

/*
 * Something to do when a coroutine's job ends, however it ends: a
 * database connection it borrowed goes back to its pool.  Embedded in
 * what it cleans up; owned by that.
 */
struct ml_defer {
  void (*fn)(ml_defer *d);      /* runs once, then d is unlinked */
  ml_co *co;                    /* whose end it waits for; NULL: none */
  ml_defer *prev, *next;
};

/*
 * A Lua thread from its generation's pool.  Owned by the generation; lent
 * to one job (a request, a timer firing, the app load) at a time.  One per
 * waiting request: the ref and the bits share a word so that it stays 136
 * bytes (a 144-byte malloc chunk, not 160).
 */
struct ml_co {
  lua_State *L;
  int ref;                          /* anchors L in the registry */
  unsigned running : 1;             /* inside lua_resume */
  unsigned is_request : 1;          /* a retired state lets it finish */
  unsigned quiet : 1;               /* its owner reports its errors */
  unsigned cancel_pending : 1;      /* cancel at its next yield */
  unsigned ready_nargs : 28;        /* values for a resume from the queue
                                       (Lua's stack holds fewer) */
  ml_gen *gen;
  ml_wait *wait;                    /* what it is parked on, or NULL */
  void (*done)(ml_co *co, int how); /* the job ended: ML_CO_OK (results
                                       on co->L), ML_CO_ERROR (the error
                                       on co->L) or ML_CO_CANCELLED */
  void *data;                       /* the job's owner, for 'done' */
  ml_co *parent;                    /* who spawned it; cancelled with it */
  ml_co *children;                  /* tasks it spawned, still running */
  ml_co *sibling_prev, *sibling_next;
  ml_co *ready_next;                /* the ready queue */
  ml_wait ready;                    /* parked here while queued */
  ml_defer *defers;                 /* run when the job ends */
  const char *what;                 /* "request", "timer" ... for logs */
  ml_co *next;                      /* pool link, or the lent list */
  ml_co *prev;                      /* the lent list */
};

/*
 * One loaded app: a Lua state, its compiled router and dispatch function.
 * Owned by the server; closed when retired and its last coroutine ended.
 */
struct ml_gen {
  moonlet_server *server;
  uv_loop_t *loop;
  lua_State *L;
  ml_router *router;     /* built from the app's routes */
  int dispatch_ref;      /* runs a request (req, route, ...): moonlet.app's
                            dispatch, wrapped by core.request_body */
  int app_ref;           /* the app table */
  int reqmethods_ref;    /* request methods (moonlet.request) */
  int reqlazy_ref;       /* request fields computed on first use */
  int headers_mt_ref;    /* case-insensitive headers metatable */
  ml_co *running;        /* the coroutine inside lua_resume, if any */
  ml_co *pool;           /* idle coroutines */
  ml_co *lent;           /* coroutines at work */
  ml_co *ready_head, *ready_tail;  /* woken, to resume next turn */
  uv_idle_t ready_idle;  /* runs the ready queue */
  int pooled;
  int live;              /* coroutines lent out */
  ml_part *parts;        /* what subsystems attach (gen.h) */
  ml_clock *clock;       /* its timers' clock: the server's real one, or
                            a virtual one (moonlet.testing) */
  ml_watch *watch;       /* the server's watchdog, or NULL */
  int abort_mt_ref;      /* moonlet.abort's metatable, for the watchdog */
  size_t mem, mem_limit; /* bytes the state holds; its cap (0: none) */
  int retired;           /* no new work; close when live == 0 */
  int gc_stress;         /* MOONLET_GC_STRESS: full GC before resumes */
  /* limits from the app's options (0: not set) */
  size_t max_body, max_url, max_headers;
  double header_timeout, keepalive_timeout, send_timeout;
  int borrowed;          /* L is a host's own state (module.c): its host
                            closes it, not us */
};

enum { ML_CO_CANCELLED = -1, ML_CO_ERROR = 0, ML_CO_OK = 1 };

/*
 * The generation of any thread of its state: new threads copy the main
 * thread's extra space.  In a host's own state (the Lua module,
 * module.c) threads made before the require copied whatever the host
 * left there (Lua does not clear it), so once a module is loaded the
 * registry is asked, and the answer cached in the thread.
 */
#define ML_GEN(L) (*ml_sched_gen_slot(L))

extern int ml_module_loaded;   /* a state has required the module */
ml_gen **ml_module_gen_slot(lua_State *L, ml_gen **slot);

static inline ml_gen **ml_sched_gen_slot(lua_State *L) {
  ml_gen **slot = lua_getextraspace(L);
  return ml_module_loaded ? ml_module_gen_slot(L, slot) : slot;
}

/*
 * A new Lua state with the standard libraries, moonlet's modules and the
 * host's on_state hooks.  NULL when out of memory.
 */
ml_gen *ml_sched_gen_new(moonlet_server *s, uv_loop_t *loop);

/* The same over L, a state the host made (the Lua module, module.c):
 * moonlet's searcher, core and boot are added to it; it is never closed
 * by a retire.  NULL when out of memory or on a Lua error (logged). */
ml_gen *ml_sched_gen_borrow(moonlet_server *s, uv_loop_t *loop,
                            lua_State *L);

/* No new work: its parts are retired and every coroutine not serving a
 * request is cancelled; the state closes once the last request has
 * ended. */
void ml_sched_gen_retire(ml_gen *g);

/* The Lua module's end of a moonlet.run: what a retire stops is stopped
 * (parts retired, coroutines not serving a request cancelled) and the
 * parts are closed, but g goes on serving its app. */
void ml_sched_gen_reset(ml_gen *g);

/*
 * Lends a coroutine from the pool (or makes one).  The caller pushes a
 * function and its arguments on co->L, sets done/data/what, then calls
 * ml_sched_start.  NULL when out of memory.
 */
ml_co *ml_sched_acquire(ml_gen *g);

/* Runs a coroutine's function, pushed with its nargs arguments. */
void ml_sched_start(ml_co *co, int nargs);

/* The coroutine running Lua code on L's state; raises if none can wait. */
ml_co *ml_sched_current(lua_State *L);

/* Records what co waits on; it must then return lua_yield. */
void ml_sched_park(ml_co *co, ml_wait *w, void (*cancel)(ml_wait *));

/* Detaches w from its coroutine; NULL if it was cancelled. */
ml_co *ml_sched_unpark(ml_wait *w);

/* Resumes co with the nargs values pushed on co->L. */
void ml_sched_resume(ml_co *co, int nargs);

/*
 * Like ml_sched_resume, but on the loop's next turn: for wakes that come
 * from inside another coroutine (a future set, a task done), so that no
 * resume nests in another.  co must not be parked (unpark it first).
 */
void ml_sched_resume_soon(ml_co *co, int nargs);

/* Runs fn(d) when co's job ends (before its thread is reused). */
void ml_sched_defer(ml_co *co, ml_defer *d, void (*fn)(ml_defer *d));

/* Takes d off its coroutine's list; safe if it is on none. */
void ml_sched_undefer(ml_defer *d);

/* Makes child a task of parent: cancelled when parent is cancelled. */
void ml_sched_adopt(ml_co *parent, ml_co *child);

/* Its owner gave up on it (connection closed, task cancelled): cancel its
 * tasks, stop its wait, reset it, call done(ML_CO_CANCELLED), release. */
void ml_sched_cancel(ml_co *co);

/* Yields the private token that user-level coroutine wrappers pass up. */
int ml_sched_yield(lua_State *L);

/* ml_sched_yield with a continuation k(L, status, ctx) that receives the
 * wake values (lua_yieldk), for waits whose result needs work. */
int ml_sched_yieldk(lua_State *L, lua_KContext ctx, lua_KFunction k);

/* Pushes that token, for moonlet.boot's coroutine wrappers. */
void ml_sched_push_token(lua_State *L);

/* Logs the error on top of co->L with a traceback of co->L. */
void ml_sched_log_error(ml_co *co, const char *context);

/* Lua 5.4.4 lacks lua_closethread (5.4.6). */
#if LUA_VERSION_RELEASE_NUM >= 50406
#define ml_closethread(L) lua_closethread((L), NULL)
#else
#define ml_closethread(L) lua_resetthread(L)
#endif

#endif
