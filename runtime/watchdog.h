/*
 * watchdog.h - notices Lua code that runs too long without waiting: logs
 * it (--watchdog) and stops it past a budget (--cpu-budget).
 */
#ifndef ML_WATCHDOG_H
#define ML_WATCHDOG_H

#include <stdint.h>
#include <lua.h>
#include "sched.h"

typedef struct ml_watch ml_watch;

/* What ml_watchdog_enter saves for a nested resume. */
typedef struct {
  lua_State *L;
  ml_co *co;
  uint64_t since;
} ml_watch_mark;

/* Starts the thread; NULL when both are off (or it cannot start). */
ml_watch *ml_watchdog_start(int watchdog_ms, double cpu_budget);

/* Stops and frees it (NULL is fine). */
void ml_watchdog_stop(ml_watch *w);

/* Around each lua_resume, in the loop thread. */
void ml_watchdog_enter(ml_watch *w, lua_State *L, ml_co *co,
                       ml_watch_mark *saved);
void ml_watchdog_leave(ml_watch *w, const ml_watch_mark *saved);

#endif
