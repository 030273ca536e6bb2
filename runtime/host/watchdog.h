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

/*
 * Starts the thread for the server configured by cfg (its watchdog_ms,
 * cpu_budget, grace and handle_signals), in the thread that will run the
 * server's loop (whose labels, base/activity.h, it then reads).  NULL
 * when it cannot start (logged).
 */
ml_watch *ml_watchdog_start(const moonlet_config *cfg);

/* Stops and frees it (NULL is fine), in the loop thread. */
void ml_watchdog_stop(ml_watch *w);

/*
 * What the scheduler calls for each resume (sched.h), so the watchdog
 * knows which Lua thread runs, since when, and for which coroutine: the
 * scheduler's own resumes, and those of the app's own coroutines inside
 * them (coroutine.resume or wrap in a handler), whose innermost running
 * thread it hooks.  NULL for a NULL w.
 */
ml_resume_hook *ml_watchdog_hook(ml_watch *w);

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
