/*
 * clock.c - timers for Lua's waits, on libuv or on a virtual clock.  The
 * virtual clock is a binary heap ordered by due time (then by start
 * order); only ml_clock_advance moves it.  Who owns a virtual clock and
 * when it is used is module.c's business (moonlet.testing).
 */
#include <stdlib.h>
#include "clock.h"
#include "util.h"

struct ml_clock {
  uint64_t now;           /* virtual milliseconds */
  uint64_t seq;
  ml_ctimer **heap;
  int n, cap;
};

/*
** {======================================================
** The heap
** =======================================================
*/

static int earlier(const ml_ctimer *a, const ml_ctimer *b) {
  return a->due < b->due || (a->due == b->due && a->seq < b->seq);
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
  if (i < 0)
    return;
  t->index = -1;
  last = c->heap[--c->n];
  if (i == c->n)
    return;
  place(c, i, last);
  if (i > 0 && earlier(last, c->heap[(i - 1) / 2]))
    sift_up(c, i);
  else
    sift_down(c, i);
}

/* }====================================================== */

static void on_uv_timer(uv_timer_t *h) {
  ml_ctimer *t = container_of(h, ml_ctimer, uv);
  t->cb(t);
}

static void on_uv_close(uv_handle_t *h) {
  ml_ctimer *t = container_of(h, ml_ctimer, uv);
  t->close_cb(t);
}

void ml_clock_timer_init(ml_gen *g, ml_ctimer *t) {
  t->clock = g->clock;
  t->index = -1;
  t->real = t->clock == NULL;
  uv_timer_init(g->loop, &t->uv);   /* cannot fail; closed either way */
}

void ml_clock_timer_start(ml_ctimer *t, ml_ctimer_cb cb, uint64_t ms,
                          uint64_t repeat) {
  t->cb = cb;
  if (t->clock != NULL && (ms > 0 || repeat > 0)) {
    t->real = 0;
    t->due = t->clock->now + ms;
    t->repeat = repeat;
    if (heap_push(t->clock, t) == 0)
      return;
  }
  t->real = 1;                       /* or out of memory: real time */
  uv_timer_start(&t->uv, on_uv_timer, ms, repeat);
}

void ml_clock_timer_close(ml_ctimer *t, ml_ctimer_cb close_cb) {
  t->close_cb = close_cb;
  if (t->clock != NULL)
    heap_remove(t->clock, t);
  uv_close((uv_handle_t *)&t->uv, on_uv_close);
}

uint64_t ml_clock_now(ml_gen *g) {
  if (g->clock != NULL)
    return g->clock->now;
  uv_update_time(g->loop);
  return uv_now(g->loop);
}

ml_clock *ml_clock_new(uint64_t now) {
  ml_clock *c = calloc(1, sizeof *c);
  if (c != NULL)
    c->now = now;
  return c;
}

void ml_clock_free(ml_clock *c) {
  int i;
  if (c == NULL)
    return;
  for (i = 0; i < c->n; i++)
    c->heap[i]->index = -1;          /* its owner still closes it */
  free(c->heap);
  free(c);
}

uint64_t ml_clock_virtual_now(ml_clock *c) {
  return c->now;
}

void ml_clock_advance(ml_clock *c, uint64_t ms, void (*turn)(void *ud),
                      void *ud) {
  uint64_t target = c->now + ms;
  ml_ctimer *t;
  while (c->n > 0 && (t = c->heap[0])->due <= target) {
    heap_remove(c, t);
    if (t->due > c->now)
      c->now = t->due;
    if (t->repeat > 0) {             /* re-armed first: cb may stop it */
      t->due += t->repeat;
      if (heap_push(c, t) != 0)
        t->repeat = 0;
    }
    t->cb(t);                        /* may close (free) t */
    turn(ud);
  }
  c->now = target;
  turn(ud);
}
