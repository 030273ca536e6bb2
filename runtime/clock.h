/*
 * clock.h - the one clock every moonlet timer of Lua's (sleep, after,
 * every, future and queue timeouts) runs on: libuv's timers normally, or
 * a virtual clock that only moves when a test advances it (moonlet.testing
 * with {virtual_time = true}).  Connection timeouts stay on libuv's.
 */
#ifndef ML_CLOCK_H
#define ML_CLOCK_H

#include <stdint.h>
#include <uv.h>
#include "sched.h"

typedef struct ml_clock ml_clock;
typedef struct ml_ctimer ml_ctimer;
typedef void (*ml_ctimer_cb)(ml_ctimer *t);

/*
 * A timer, embedded in the operation that owns it (like a uv_timer_t).
 * Closing it always ends in close_cb, where the owner frees, on a later
 * turn of the loop: a virtual timer closes its (never started) libuv
 * handle too, so both kinds end the same way.
 */
struct ml_ctimer {
  uv_timer_t uv;          /* a real timer's handle */
  ml_clock *clock;        /* the virtual clock, or NULL */
  ml_ctimer_cb cb, close_cb;
  uint64_t due, repeat;   /* virtual milliseconds */
  uint64_t seq;           /* order among timers due together */
  int index;              /* its place in the clock's heap; -1: none */
  int real;               /* runs on 'uv' */
};

/* Prepares t on g's clock: virtual if the state has one (g->clock). */
void ml_clock_timer_init(ml_gen *g, ml_ctimer *t);

/* Fires cb after 'ms', then every 'repeat' ms if not 0.  A zero-length
 * one-shot under virtual time still fires on the loop's next turn: it
 * means "let others run", not "wait". */
void ml_clock_timer_start(ml_ctimer *t, ml_ctimer_cb cb, uint64_t ms,
                          uint64_t repeat);

/* Stops t for good; close_cb(t) follows, where the owner frees it. */
void ml_clock_timer_close(ml_ctimer *t, ml_ctimer_cb close_cb);

/* The state's time in milliseconds: the loop's, or the virtual clock's. */
uint64_t ml_clock_now(ml_gen *g);

/* A virtual clock starting at 'now' ms; NULL when out of memory. */
ml_clock *ml_clock_new(uint64_t now);

/* Frees it; its timers must all have closed. */
void ml_clock_free(ml_clock *c);

/*
 * Moves the clock 'ms' forward, firing the timers that come due in order
 * of their due times, each at its own time; after each firing, turn(ud)
 * lets what it woke run (the loop's idle and I/O).
 */
void ml_clock_advance(ml_clock *c, uint64_t ms, void (*turn)(void *ud),
                      void *ud);

/* The virtual time in milliseconds. */
uint64_t ml_clock_virtual_now(ml_clock *c);

#endif
