/*
 * clock.h - timers as entries of a clock's heap.  A real clock runs on
 * libuv's time with one uv_timer_t for all its timers (the server owns
 * one); a virtual clock only moves when a test advances it (moonlet.testing
 * with {virtual_time = true}).  Lua's waits use their generation's
 * clock; connection timeouts the server's real one.  Every deadline a Lua
 * program or a client can observe is an entry here, so that virtual time
 * covers Lua's; a uv_timer_t of its own is for process plumbing only (the
 * stop's grace period, the watchdog's tick, --reload's debounce, an idle
 * pool's sweep).
 */
#ifndef ML_CLOCK_H
#define ML_CLOCK_H

#include <stdint.h>
#include <uv.h>

typedef struct ml_clock ml_clock;
typedef struct ml_ctimer ml_ctimer;
typedef void (*ml_ctimer_cb)(ml_ctimer *t);

/*
 * A timer, embedded in the operation that owns it.  It holds no libuv
 * handle: stopping it is immediate, and its owner may free it at once
 * (from its own callback too).
 */
struct ml_ctimer {
  ml_clock *clock;        /* the clock it was made on */
  ml_ctimer_cb cb;
  uint64_t due;           /* its key in the heap, ms on its clock */
  uint64_t repeat;        /* its period (0: once); for a deadline moved
                             later, the time it is now due instead */
  uint32_t seq;           /* order among timers due together (wraps) */
  signed int index : 30;  /* its place in a heap; -1: not started */
  unsigned on_real : 1;   /* a virtual clock's zero wait, queued on that
                             clock's real one */
  unsigned moved : 1;     /* a deadline moved later or dropped: 'repeat'
                             says when it is due (UINT64_MAX: never) */
};

/* Prepares t on the clock c (a generation's is 'gen->clock'). */
void ml_clock_timer_init_on(ml_clock *c, ml_ctimer *t);

/*
 * Fires cb after 'ms', then every 'repeat' ms if not 0; a started timer
 * starts again from now.  On a real clock 'now' is the loop's cached time
 * (uv_now), as for a uv_timer_t.  A zero-length one-shot under virtual
 * time fires on the loop's next turn: it means "let others run", not
 * "wait".  0, or UV_ENOMEM when the heap cannot grow (t is then stopped).
 */
int ml_clock_timer_start(ml_ctimer *t, ml_ctimer_cb cb, uint64_t ms,
                         uint64_t repeat);

/* Stops t at once (safe if not started); afterwards the owner may free t
 * right away: no callback follows. */
void ml_clock_timer_stop(ml_ctimer *t);

/*
 * Deadlines: one-shot timers moved often, and mostly later (a
 * connection's timeout, pushed back by every request it serves).  Moving
 * a started one later, or dropping it, costs no heap work: it keeps its
 * place, and when that place comes round it goes back in at its new time,
 * or leaves, without calling back.  So a busy keep-alive connection costs
 * no timer work per request.  Moving one earlier, or setting one that is
 * not started, starts it as ml_clock_timer_start(t, cb, ms, 0) does, with
 * the same result.  ml_clock_timer_stop stops a deadline at once: only
 * then may its owner free it.
 */
int ml_clock_deadline(ml_ctimer *t, ml_ctimer_cb cb, uint64_t ms);

/* Drops a deadline: it will not call back, and leaves the heap when its
 * old time comes.  A repeating timer stops at once. */
void ml_clock_deadline_drop(ml_ctimer *t);

/* The clock's time in milliseconds: a real clock's loop time, updated
 * first (uv_update_time), or the virtual time. */
uint64_t ml_clock_time(ml_clock *c);

/* A real clock on 'loop'; NULL when out of memory. */
ml_clock *ml_clock_new_real(uv_loop_t *loop);

/*
 * Closes a real clock: its libuv handles close, then it is freed and
 * done(ud) runs, on a later turn of the loop.  Timers still on it are
 * dropped without firing; their owners must not start them again.
 */
void ml_clock_close(ml_clock *c, void (*done)(void *ud), void *ud);

/* A virtual clock starting at 'now' ms, whose zero waits run on 'real';
 * NULL when out of memory. */
ml_clock *ml_clock_new(uint64_t now, ml_clock *real);

/* Frees a virtual clock (NULL is fine); timers still on it are dropped. */
void ml_clock_free(ml_clock *c);

/*
 * Moves a virtual clock 'ms' forward, firing the timers that come due in
 * order of their due times, each at its own time; after each firing,
 * turn(ud) lets what it woke run (the loop's idle and I/O).
 */
void ml_clock_advance(ml_clock *c, uint64_t ms, void (*turn)(void *ud),
                      void *ud);

/* The real clock under c: c itself, or the one whose loop a virtual
 * clock's zero waits run on (NULL if it has none). */
ml_clock *ml_clock_real(ml_clock *c);

#endif
