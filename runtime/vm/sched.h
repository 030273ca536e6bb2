/*
 * sched.h - the coroutines that run handlers, hooks, timer callbacks and
 * the app file itself, each in a generation (gen.h).  Every yielding
 * call parks its coroutine on an ml_wait and resumes it from a libuv
 * callback; a closed connection cancels it.
 */
#ifndef ML_SCHED_H
#define ML_SCHED_H

#include <lua.h>
#include <uv.h>
#include "vm/gen.h"

typedef struct ml_wait ml_wait;
typedef struct ml_defer ml_defer;
typedef struct ml_job ml_job;

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
 * A kind of job a coroutine runs (a request, a timer firing, the app
 * load, a task): one static const per kind, given with the job, with
 * designated initializers (what it leaves out is NULL or 0):
 *   static const ml_job task_job = { .what = "task", .done = task_done,
 *                                    .quiet = 1 };
 * Only its own functions read the job's data.
 */
struct ml_job {
  const char *what;           /* "request", "timer callback": for logs */
  /* The job ended: ML_CO_OK (results on co->L), ML_CO_ERROR (the error
   * on co->L) or ML_CO_CANCELLED.  NULL: nobody needs to know. */
  void (*done)(ml_co *co, int how);
  /* What the job is busy with ("GET /x") into buf, for the watchdog's
   * log: async-signal-safe, it runs in a signal handler.  NULL: "a"
   * and 'what'. */
  void (*describe)(const ml_co *co, char *buf, size_t size);
  /* How the error log names the job when it fails ("GET /x?y=1 HTTP/1.1
   * (from ADDR, request ID)"); NULL: "<what> failed". */
  void (*name)(const ml_co *co, char *buf, size_t size);
  unsigned request : 1;       /* serves a request: a retired generation
                                 lets it, and its tasks, finish */
  unsigned quiet : 1;         /* 'done' reports its errors: not logged */
};

/*
 * A Lua thread from its generation's pool.  Owned by the generation; lent
 * to one job (a request, a timer firing, the app load) at a time.  One per
 * waiting request: 128 bytes, a 144-byte malloc chunk (137 would be 160).
 */
struct ml_co {
  lua_State *L;
  int ref;                          /* anchors L in the registry */
  unsigned running : 1;             /* inside lua_resume */
  unsigned cancel_pending : 1;      /* cancel at its next yield */
  unsigned ready_nargs : 30;        /* values for a resume from the queue
                                       (Lua's stack holds fewer) */
  ml_gen *gen;
  ml_wait *wait;                    /* what it is parked on, or NULL */
  const ml_job *job;                /* what it runs; NULL once ended */
  void *data;                       /* the job's, for its kind's functions
                                       (a request's connection, a task) */
  ml_co *parent;                    /* who spawned it; cancelled with it */
  ml_co *children;                  /* tasks it spawned, still running */
  ml_co *sibling_prev, *sibling_next;
  ml_co *ready_next;                /* the ready queue */
  ml_wait ready;                    /* parked here while queued */
  ml_defer *defers;                 /* run when the job ends */
  ml_co *next;                      /* pool link, or the lent list */
  ml_co *prev;                      /* the lent list */
};

/*
 * A host that watches Lua code run (host/watchdog.c) wraps the
 * scheduler's resumes: 'resume' runs lua_resume(L, NULL, nargs, nres)
 * for the coroutine co, 'nested' lua_resume(L, from, nargs, nres) for
 * an app's own coroutine L inside one (coroutine.resume in a handler),
 * each with what it does around it, and returns its status.  Embedded in
 * the host's own struct; the host's ml_host points at it.
 */
struct ml_resume_hook {
  int (*resume)(ml_resume_hook *h, lua_State *L, ml_co *co, int nargs,
                int *nres);
  int (*nested)(ml_resume_hook *h, lua_State *L, lua_State *from,
                int nargs, int *nres);
};

enum { ML_CO_CANCELLED = -1, ML_CO_ERROR = 0, ML_CO_OK = 1 };

/* Sets up g's scheduler, its ready queue (gen.c, making g). */
void ml_sched_init(ml_gen *g);

/* Frees g's idle coroutines, and g itself once its ready queue's handle
 * has closed (gen.c, closing g; the Lua state is closed already). */
void ml_sched_close(ml_gen *g);

/* Whether co serves a request (or is a task of one): a retired
 * generation lets it finish. */
int ml_sched_serves_request(const ml_co *co);

/*
 * Lends a coroutine from the pool (or makes one) for a job of this kind,
 * with its data.  The caller pushes a function and its arguments on
 * co->L, then starts it with ml_sched_resume(co, nargs).  NULL when out
 * of memory.
 */
ml_co *ml_sched_acquire(ml_gen *g, const ml_job *job, void *data);

/* What co is busy with, into buf (its job's describe, or "a " and its
 * 'what'): for the watchdog, async-signal-safe. */
void ml_sched_describe(const ml_co *co, char *buf, size_t size);

/* The coroutine running Lua code on L's state; raises if none can wait. */
ml_co *ml_sched_current(lua_State *L);

/* Records what co waits on; it must then return lua_yield. */
void ml_sched_park(ml_co *co, ml_wait *w, void (*cancel)(ml_wait *));

/* Detaches w from its coroutine; NULL if it was cancelled. */
ml_co *ml_sched_unpark(ml_wait *w);

/* Resumes co with the nargs values pushed on co->L; the first resume
 * calls the function under them. */
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
