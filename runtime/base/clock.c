/*
 * clock.c - timers for Lua's waits and connection timeouts.  A clock is a
 * binary heap of timers ordered by due time, then by start order.  A real
 * clock keeps one uv_timer_t armed for its earliest entry, and fires
 * entries due already after the loop's next poll; a virtual one only
 * moves in ml_clock_advance.  Who owns which clock, and which clock a
 * generation's timers use, is decided above (server.c, module.c).
 */
#include <stdlib.h>
#include "base/clock.h"
#include "base/util.h"

#define NOT_ARMED UINT64_MAX

struct ml_clock {
  uv_loop_t *loop;        /* a real clock's loop; NULL: virtual */
  ml_clock *real;         /* a virtual clock's zero waits run there */
  uint64_t now;           /* a virtual clock's time */
  uint32_t seq;           /* the next start's number */
  uint64_t armed;         /* the due time 'uv' fires at, or NOT_ARMED */
  ml_ctimer **heap;
  int n, cap;
  int firing;             /* inside on_fire: arm once at its end */
  int turn_armed;         /* 'check' and 'spin' are started */
  int closing;
  int closes;             /* handles still closing */
  void (*done)(void *ud); /* ml_clock_close's callback */
  void *done_ud;
  uv_timer_t uv;          /* a real clock's one libuv timer */
  uv_check_t check;       /* fires entries due already, after a poll */
  uv_idle_t spin;         /* keeps that poll from blocking meanwhile */
};

/*
** {======================================================
** The heap
** =======================================================
*/

/* Start numbers wrap: compared by difference, they stay in order while
 * fewer than 2^31 starts separate two timers due at the same time. */
static int earlier(const ml_ctimer *a, const ml_ctimer *b) {
  return a->due < b->due ||
         (a->due == b->due && (int32_t)(a->seq - b->seq) < 0);
}

static void place(ml_clock *c, int i, ml_ctimer *t) {
  c->heap[i] = t;
  t->index = i;
}

static void sift_up(ml_clock *c, int i) {
  ml_ctimer *t = c->heap[i];
  while (i > 0 && earlier(t, c->heap[(i - 1) / 2])) {
    place(c, i, c->heap[(i - 1) / 2]);
    i = (i - 1) / 2;
  }
  place(c, i, t);
}

static void sift_down(ml_clock *c, int i) {
  ml_ctimer *t = c->heap[i];
  for (;;) {
    int k = 2 * i + 1;
    if (k >= c->n)
      break;
    if (k + 1 < c->n && earlier(c->heap[k + 1], c->heap[k]))
      k++;
    if (!earlier(c->heap[k], t))
      break;
    place(c, i, c->heap[k]);
    i = k;
  }
  place(c, i, t);
}

/* 0, or UV_ENOMEM when the heap cannot grow. */
static int heap_push(ml_clock *c, ml_ctimer *t) {
  if (c->n == c->cap) {
    int cap = c->cap ? c->cap * 2 : 16;
    ml_ctimer **h = realloc(c->heap, (size_t)cap * sizeof *h);
    if (h == NULL)
      return UV_ENOMEM;
    c->heap = h;
    c->cap = cap;
  }
  t->seq = c->seq++;
  place(c, c->n++, t);
  sift_up(c, c->n - 1);
  return 0;
}

static void heap_remove(ml_clock *c, ml_ctimer *t) {
  int i = t->index;
  ml_ctimer *last;
  t->index = -1;
  t->moved = 0;
  last = c->heap[--c->n];
  if (i == c->n)
    return;
  place(c, i, last);
  if (i > 0 && earlier(last, c->heap[(i - 1) / 2]))
    sift_up(c, i);
  else
    sift_down(c, i);
}

/* Forgets every entry: they never fire, and stopping them is a no-op. */
static void heap_drop_all(ml_clock *c) {
  int i;
  for (i = 0; i < c->n; i++)
    c->heap[i]->index = -1;
  c->n = 0;
}

/* }====================================================== */

/*
** {======================================================
** Firing
** =======================================================
*/

static uint64_t clock_time(ml_clock *c) {
  return c->loop != NULL ? uv_now(c->loop) : c->now;
}

/*
 * Takes the head t off the heap before its callback, or queues it again
 * if it repeats (in place: no allocation), then runs the callback, which
 * may stop, restart or free t: nothing here touches t after it.
 */
static void fire_head(ml_clock *c, ml_ctimer *t, uint64_t next_due) {
  if (t->repeat > 0) {
    t->due = next_due;
    t->seq = c->seq++;
    sift_down(c, 0);
  } else {
    heap_remove(c, t);
  }
  t->cb(t);
}

/*
 * The head t has come due.  A deadline moved later goes back in at its new
 * time, or leaves if dropped; either way it does not fire (1).  One moved
 * to a time already past fires (0).
 */
static int moved_on(ml_clock *c, ml_ctimer *t, uint64_t now) {
  uint64_t due = t->repeat;
  if (!t->moved)
    return 0;
  t->moved = 0;
  t->repeat = 0;
  if (due == UINT64_MAX) {
    heap_remove(c, t);
    return 1;
  }
  if (due <= now)
    return 0;
  t->due = due;
  t->seq = c->seq++;
  sift_down(c, t->index);
  return 1;
}

static void on_fire(uv_timer_t *h);
static void on_turn(uv_check_t *h);

static void on_spin(uv_idle_t *h) {
  ML_UNUSED(h);                /* being active is its whole job */
}

/*
 * Keeps a real clock's uv_timer_t armed no later than its head's due time
 * and stopped when the heap is empty (so an idle clock does not keep the
 * loop alive).  A stopped head leaves it armed early: that firing finds
 * nothing due and arms again, which is cheaper than re-arming on each stop.
 * A head due already (a zero wait) waits for the loop to poll instead:
 * libuv 1.44 runs a timer started at 0 from a timer callback again in the
 * same phase, so a coroutine that sleeps 0 in a loop would never let a
 * socket be read.  It fires in the check phase, after the poll, which
 * the idle handle keeps from blocking.
 */
static void arm(ml_clock *c) {
  uint64_t now, due;
  if (c->loop == NULL || c->firing || c->closing)
    return;
  if (c->n == 0) {
    if (c->armed != NOT_ARMED)
      uv_timer_stop(&c->uv);
    c->armed = NOT_ARMED;
    return;
  }
  due = c->heap[0]->due;
  now = uv_now(c->loop);
  if (due <= now && !c->turn_armed) {
    uv_check_start(&c->check, on_turn);
    uv_idle_start(&c->spin, on_spin);
    c->turn_armed = 1;
  }
  if (due <= now || due >= c->armed)
    return;
  uv_timer_start(&c->uv, on_fire, due - now, 0);
  c->armed = due;
}

/*
 * Every entry due by the loop's cached time fires, in (due, start) order.
 * Entries started during this pass (a callback that sleeps 0 again) wait
 * for the next poll.
 */
static void fire_due(ml_clock *c) {
  uint64_t now = uv_now(c->loop);
  uint32_t last = c->seq;
  ml_ctimer *t;
  c->firing = 1;
  while (!c->closing && c->n > 0 && (t = c->heap[0])->due <= now &&
         (int32_t)(t->seq - last) < 0)
    if (!moved_on(c, t, now))
      fire_head(c, t, now + t->repeat);
  c->firing = 0;
  arm(c);
}

/* The real clock's timer. */
static void on_fire(uv_timer_t *h) {
  ml_clock *c = container_of(h, ml_clock, uv);
  c->armed = NOT_ARMED;                  /* a one-shot: it has stopped */
  fire_due(c);
}

/* After a poll, with entries due already. */
static void on_turn(uv_check_t *h) {
  ml_clock *c = container_of(h, ml_clock, check);
  uv_check_stop(&c->check);
  uv_idle_stop(&c->spin);
  c->turn_armed = 0;
  fire_due(c);
}

/* }====================================================== */

void ml_clock_timer_init_on(ml_clock *c, ml_ctimer *t) {
  t->clock = c;
  t->cb = NULL;
  t->due = t->repeat = 0;
  t->seq = 0;
  t->index = -1;
  t->on_real = 0;
  t->moved = 0;
}

int ml_clock_timer_start(ml_ctimer *t, ml_ctimer_cb cb, uint64_t ms,
                         uint64_t repeat) {
  ml_clock *c = t->clock;
  int rc;
  ml_clock_timer_stop(t);
  t->on_real = c->loop == NULL && c->real != NULL && ms == 0 && repeat == 0;
  if (t->on_real)
    c = c->real;
  t->cb = cb;
  t->repeat = repeat;
  t->due = clock_time(c) + ms;
  if ((rc = heap_push(c, t)) != 0)
    return rc;
  arm(c);
  return 0;
}

void ml_clock_timer_stop(ml_ctimer *t) {
  ml_clock *c;
  if (t->index < 0)
    return;
  c = t->on_real ? t->clock->real : t->clock;
  heap_remove(c, t);
  arm(c);
}

/* A one-shot on its own clock's heap: one a deadline may move lazily. */
static int lazy(const ml_ctimer *t) {
  return t->index >= 0 && !t->on_real && (t->moved || t->repeat == 0);
}

int ml_clock_deadline(ml_ctimer *t, ml_ctimer_cb cb, uint64_t ms) {
  uint64_t due;
  if (lazy(t) && (due = clock_time(t->clock) + ms) >= t->due) {
    t->cb = cb;
    t->moved = due > t->due;
    t->repeat = t->moved ? due : 0;
    return 0;
  }
  return ml_clock_timer_start(t, cb, ms, 0);
}

void ml_clock_deadline_drop(ml_ctimer *t) {
  if (lazy(t)) {
    t->moved = 1;
    t->repeat = UINT64_MAX;
  } else {
    ml_clock_timer_stop(t);
  }
}

uint64_t ml_clock_time(ml_clock *c) {
  if (c->loop == NULL)
    return c->now;
  uv_update_time(c->loop);
  return uv_now(c->loop);
}

/*
** {======================================================
** Making and freeing clocks
** =======================================================
*/

ml_clock *ml_clock_new_real(uv_loop_t *loop) {
  ml_clock *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->loop = loop;
  c->armed = NOT_ARMED;
  uv_timer_init(loop, &c->uv);           /* these cannot fail */
  uv_check_init(loop, &c->check);
  uv_idle_init(loop, &c->spin);
  c->uv.data = c->check.data = c->spin.data = c;
  return c;
}

static void on_closed(uv_handle_t *h) {
  ml_clock *c = h->data;
  void (*done)(void *) = c->done;
  void *ud = c->done_ud;
  if (--c->closes > 0)
    return;
  free(c->heap);
  free(c);
  if (done != NULL)
    done(ud);
}

void ml_clock_close(ml_clock *c, void (*done)(void *ud), void *ud) {
  if (c->closing)
    return;
  c->closing = 1;
  c->done = done;
  c->done_ud = ud;
  heap_drop_all(c);
  c->closes = 3;
  uv_close((uv_handle_t *)&c->uv, on_closed);
  uv_close((uv_handle_t *)&c->check, on_closed);
  uv_close((uv_handle_t *)&c->spin, on_closed);
}

ml_clock *ml_clock_new(uint64_t now, ml_clock *real) {
  ml_clock *c = calloc(1, sizeof *c);
  if (c != NULL) {
    c->now = now;
    c->real = real;
    c->armed = NOT_ARMED;
  }
  return c;
}

void ml_clock_free(ml_clock *c) {
  if (c == NULL)
    return;
  heap_drop_all(c);
  free(c->heap);
  free(c);
}

/* }====================================================== */

ml_clock *ml_clock_real(ml_clock *c) {
  return c->loop != NULL ? c : c->real;
}

void ml_clock_advance(ml_clock *c, uint64_t ms, void (*turn)(void *ud),
                      void *ud) {
  uint64_t target = c->now + ms;
  ml_ctimer *t;
  while (c->n > 0 && (t = c->heap[0])->due <= target) {
    if (t->due > c->now)
      c->now = t->due;
    if (moved_on(c, t, c->now))
      continue;
    fire_head(c, t, t->due + t->repeat);   /* t may be gone now */
    turn(ud);
  }
  c->now = target;
  turn(ud);
}
