/*
 * watchdog.h - notices Lua code that runs too long without waiting: logs
 * it (--watchdog), stops it past a budget (--cpu-budget), and stops it
 * once a graceful stop's grace period is over, so that a server whose
 * loop is stuck in Lua still stops.  Notices a loop stuck in C too.
 */
#ifndef ML_WATCHDOG_H
#define ML_WATCHDOG_H

#include <stdint.h>
#include <lua.h>
#include "moonlet.h"
#include "vm/sched.h"

typedef struct ml_watch ml_watch;

/* What ml_watchdog_enter saves for a nested resume. */
typedef struct {
  ml_watch *w;
  lua_State *L;
  ml_co *co;
  uint64_t since;
} ml_watch_mark;

/*
 * Starts the thread for the server configured by cfg (its watchdog_ms,
 * cpu_budget, grace and handle_signals), in the thread that will run the
 * server's loop (whose labels, base/activity.h, it then reads).  NULL
 * when it cannot start (logged).
 */
ml_watch *ml_watchdog_start(const moonlet_config *cfg);

/* Stops and frees it (NULL is fine), in the loop thread. */
void ml_watchdog_stop(ml_watch *w);

/* Around each lua_resume of the scheduler, in the loop thread. */
void ml_watchdog_enter(ml_watch *w, lua_State *L, ml_co *co,
                       ml_watch_mark *saved);
void ml_watchdog_leave(const ml_watch_mark *saved);

/*
 * Around a resume of the app's own coroutine L (coroutine.resume or wrap
 * inside a handler): the watchdog hooks the innermost running thread.
 * Nothing happens outside the scheduler's resumes.
 */
void ml_watchdog_nest(lua_State *L, lua_State **saved);
void ml_watchdog_unnest(lua_State *saved);

/* The server handles SIGINT and SIGTERM from now on: the watchdog sees
 * them too, so a stop asked while the loop is stuck is still noticed. */
void ml_watchdog_signals(ml_watch *w);

/*
 * A graceful stop begins (moonlet_close).  Returns the milliseconds of
 * the grace period left: all of it, or less when the watchdog saw the
 * stop signal earlier, while the loop was busy.  Past the grace, Lua
 * code still running is stopped with a 503.
 */
uint64_t ml_watchdog_stopping(ml_watch *w);

/* The stop has finished: nothing more to enforce. */
void ml_watchdog_stopped(ml_watch *w);

#endif
