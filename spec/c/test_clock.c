/*
 * test_clock.c - the clocks of clock.c: timers fire in due order (start
 * order among equals) on a virtual clock and on a real one (one libuv
 * timer for all), repeat, and may be stopped, restarted or freed from any
 * callback; a stopped timer never calls back and keeps no loop alive.
 * Deadlines move later or drop without firing, and leave the heap.
 */
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "base/clock.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/* A timer that records its firings and does what its fields say. */
typedef struct rec_timer {
  ml_ctimer t;
  int id;
  int fired;
  int stop_after;             /* stop itself after this many firings */
  struct rec_timer *stop;     /* stop this one when firing */
  struct rec_timer *start;    /* start this one when firing ... */
  uint64_t start_ms;          /* ... after this many ms */
  int restarts;               /* start itself again this many times */
  int free_self;              /* a malloc'd timer that frees itself */
} rec_timer;

static int order[512], norder;
static uint64_t at[512];
static ml_clock *clk;

static void on_fire(ml_ctimer *t) {
  rec_timer *r = (rec_timer *)t;
  r->fired++;
  if (norder < 512) {
    at[norder] = ml_clock_time(clk);
    order[norder++] = r->id;
  }
  if (r->stop != NULL)
    ml_clock_timer_stop(&r->stop->t);
  if (r->start != NULL)
    ml_clock_timer_start(&r->start->t, on_fire, r->start_ms, 0);
  if (r->stop_after > 0 && r->fired == r->stop_after)
    ml_clock_timer_stop(t);
  if (r->restarts > 0) {
    r->restarts--;
    ml_clock_timer_start(t, on_fire, 0, 0);
  }
  if (r->free_self) {
    ml_clock_timer_stop(t);
    free(r);
  }
}

static void no_turn(void *ud) {
  (void)ud;
}

static void clock_closed(void *ud) {
  *(int *)ud = 1;
}

static void reset(rec_timer *r, int n) {
  int i;
  memset(r, 0, (size_t)n * sizeof *r);
  for (i = 0; i < n; i++) {
    r[i].id = i;
    ml_clock_timer_init_on(clk, &r[i].t);
  }
  norder = 0;
}

/* Closes the real clock 'clk' and the loop; 0 when nothing leaked. */
static int close_real(uv_loop_t *loop) {
  int closed = 0;
  ml_clock_close(clk, clock_closed, &closed);
  uv_run(loop, UV_RUN_DEFAULT);
  return closed ? uv_loop_close(loop) : -1;
}

TEST(clock_timer_is_small) {
  CHECK(sizeof(ml_ctimer) <= 40);
}

/*
** {======================================================
** A virtual clock
** =======================================================
*/

TEST(clock_fires_in_due_order) {
  rec_timer r[4];
  int i;
  memset(r, 0, sizeof r);
  clk = ml_clock_new(1000, NULL);
  norder = 0;
  for (i = 0; i < 4; i++) {
    r[i].id = i;
    ml_clock_timer_init_on(clk, &r[i].t);
  }
  ml_clock_timer_start(&r[0].t, on_fire, 300, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 100, 0);
  ml_clock_timer_start(&r[2].t, on_fire, 100, 0);   /* after r[1] */
  ml_clock_timer_start(&r[3].t, on_fire, 200, 0);
  CHECK_INT(ml_clock_time(clk), 1000);
  ml_clock_advance(clk, 150, no_turn, NULL);
  CHECK_INT(norder, 2);
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 2);
  CHECK_INT(at[0], 1100);
  ml_clock_timer_stop(&r[3].t);                     /* never fires */
  ml_clock_timer_stop(&r[3].t);                     /* twice is fine */
  ml_clock_advance(clk, 1000, no_turn, NULL);
  CHECK_INT(norder, 3);
  CHECK_INT(order[2], 0);
  CHECK_INT(at[2], 1300);
  CHECK_INT(ml_clock_time(clk), 2150);
  ml_clock_free(clk);
}

TEST(clock_repeats_and_stops_itself) {
  rec_timer every, once;
  clk = ml_clock_new(0, NULL);
  memset(&every, 0, sizeof every);
  memset(&once, 0, sizeof once);
  norder = 0;
  every.id = 1;
  every.stop_after = 3;
  once.id = 2;
  ml_clock_timer_init_on(clk, &every.t);
  ml_clock_timer_init_on(clk, &once.t);
  ml_clock_timer_start(&every.t, on_fire, 60, 60);
  ml_clock_timer_start(&once.t, on_fire, 90, 0);
  ml_clock_advance(clk, 1000, no_turn, NULL);
  CHECK_INT(norder, 4);               /* 60, 90, 120, 180; then stopped */
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 2);
  CHECK_INT(at[1], 90);
  CHECK_INT(at[3], 180);
  CHECK_INT(every.fired, 3);
  ml_clock_free(clk);
}

/* Many timers, a third of them stopped: the rest fire sorted by (due,
 * start), which checks the heap's order after removals anywhere in it. */
TEST(clock_heap_keeps_order_under_stops) {
  enum { N = 300 };
  rec_timer *r = calloc(N, sizeof *r);
  uint64_t due[N];
  int stopped[N], i, prev;
  CHECK(r != NULL);
  clk = ml_clock_new(0, NULL);
  srand(7);
  memset(stopped, 0, sizeof stopped);
  for (i = 0; i < N; i++) {
    r[i].id = i;
    due[i] = (uint64_t)(rand() % 50);  /* many equal due times */
    ml_clock_timer_init_on(clk, &r[i].t);
    ml_clock_timer_start(&r[i].t, on_fire, due[i], 0);
  }
  for (i = 0; i < N; i += 3) {         /* scattered over the heap */
    stopped[(i * 7) % N] = 1;
    ml_clock_timer_stop(&r[(i * 7) % N].t);
  }
  norder = 0;
  ml_clock_advance(clk, 100, no_turn, NULL);
  CHECK_INT(norder, N - N / 3);
  for (i = 0; i < N; i++)
    CHECK_INT(r[i].fired, !stopped[i]);
  for (i = 1; i < norder; i++) {
    prev = order[i - 1];
    CHECK(due[order[i]] > due[prev] ||
          (due[order[i]] == due[prev] && order[i] > prev));
  }
  ml_clock_free(clk);
  free(r);
}

/* A zero wait under virtual time runs on the real clock's next firing:
 * the loop turns, no advance needed. */
TEST(clock_virtual_zero_wait_is_real) {
  uv_loop_t loop;
  ml_clock *real, *virt;
  rec_timer z, later;
  uv_loop_init(&loop);
  real = ml_clock_new_real(&loop);
  virt = ml_clock_new(5000, real);
  clk = virt;
  memset(&z, 0, sizeof z);
  memset(&later, 0, sizeof later);
  z.id = 1;
  later.id = 2;
  norder = 0;
  ml_clock_timer_init_on(virt, &z.t);
  ml_clock_timer_init_on(virt, &later.t);
  ml_clock_timer_start(&z.t, on_fire, 0, 0);
  ml_clock_timer_start(&later.t, on_fire, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);       /* returns: 'later' is virtual */
  CHECK_INT(z.fired, 1);
  CHECK_INT(later.fired, 0);
  ml_clock_timer_start(&z.t, on_fire, 0, 0);
  ml_clock_timer_stop(&z.t);           /* stopped on the real clock */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(z.fired, 1);
  ml_clock_advance(virt, 10, no_turn, NULL);
  CHECK_INT(later.fired, 1);
  ml_clock_free(virt);
  clk = real;
  CHECK_INT(close_real(&loop), 0);
}

/*
 * A deadline moved later fires once, at its last time; a dropped one
 * never; moving one earlier restarts it; a stop after a move stops it.
 */
TEST(clock_deadline_moves_and_drops) {
  rec_timer d[3];
  clk = ml_clock_new(0, NULL);
  reset(d, 3);
  CHECK_INT(ml_clock_deadline(&d[0].t, on_fire, 100), 0);
  CHECK_INT(ml_clock_deadline(&d[0].t, on_fire, 250), 0);  /* later */
  CHECK_INT(d[0].t.due, 100);           /* kept its place: no heap work */
  ml_clock_deadline(&d[1].t, on_fire, 50);
  ml_clock_deadline_drop(&d[1].t);
  ml_clock_deadline(&d[2].t, on_fire, 80);
  ml_clock_deadline(&d[2].t, on_fire, 120);
  ml_clock_advance(clk, 100, no_turn, NULL);
  CHECK_INT(norder, 0);                 /* d[1] left, d[2] went on */
  CHECK_INT(d[1].t.index, -1);
  ml_clock_advance(clk, 200, no_turn, NULL);
  CHECK_INT(norder, 2);
  CHECK_INT(order[0], 2);
  CHECK_INT(at[0], 120);
  CHECK_INT(order[1], 0);
  CHECK_INT(at[1], 250);
  ml_clock_deadline(&d[0].t, on_fire, 100);     /* at 400 */
  ml_clock_deadline(&d[0].t, on_fire, 10);      /* earlier: at 310 */
  ml_clock_deadline(&d[1].t, on_fire, 20);      /* at 320 ... */
  ml_clock_deadline(&d[1].t, on_fire, 90);      /* ... then 390 */
  ml_clock_timer_stop(&d[1].t);                 /* never */
  ml_clock_deadline(&d[2].t, on_fire, 30);      /* at 330 */
  ml_clock_deadline_drop(&d[2].t);
  ml_clock_deadline(&d[2].t, on_fire, 40);      /* set again: at 340 */
  ml_clock_advance(clk, 200, no_turn, NULL);
  CHECK_INT(norder, 4);
  CHECK_INT(order[2], 0);
  CHECK_INT(at[2], 310);
  CHECK_INT(order[3], 2);
  CHECK_INT(at[3], 340);
  CHECK_INT(d[1].fired, 0);
  ml_clock_free(clk);
}

/* }====================================================== */

/*
** {======================================================
** A real clock
** =======================================================
*/

TEST(clock_real_fires_in_due_then_start_order) {
  uv_loop_t loop;
  rec_timer r[5];
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(r, 5);
  ml_clock_timer_start(&r[0].t, on_fire, 30, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 10, 0);
  ml_clock_timer_start(&r[2].t, on_fire, 20, 0);
  ml_clock_timer_start(&r[3].t, on_fire, 10, 0);  /* due with r[1] */
  ml_clock_timer_start(&r[4].t, on_fire, 10, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(norder, 5);
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 3);
  CHECK_INT(order[2], 4);
  CHECK_INT(order[3], 2);
  CHECK_INT(order[4], 0);
  CHECK_INT(close_real(&loop), 0);
}

TEST(clock_real_stop_head_middle_last) {
  uv_loop_t loop;
  rec_timer r[5];
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(r, 5);
  ml_clock_timer_start(&r[0].t, on_fire, 5, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 10, 0);
  ml_clock_timer_start(&r[2].t, on_fire, 15, 0);
  ml_clock_timer_start(&r[3].t, on_fire, 20, 0);
  ml_clock_timer_start(&r[4].t, on_fire, 25, 0);
  ml_clock_timer_stop(&r[0].t);                   /* the head */
  ml_clock_timer_stop(&r[2].t);                   /* the middle */
  ml_clock_timer_stop(&r[4].t);                   /* the last */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(norder, 2);
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 3);
  CHECK_INT(r[0].fired + r[2].fired + r[4].fired, 0);
  CHECK_INT(close_real(&loop), 0);
}

/* r[0]'s callback stops r[1], due at the same time: it never fires; r[2]
 * frees itself in its callback (ASan would see a later touch). */
TEST(clock_real_stop_and_free_inside_callback) {
  uv_loop_t loop;
  rec_timer r[3], *self = calloc(1, sizeof *self);
  CHECK(self != NULL);
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(r, 3);
  r[0].stop = &r[1];
  ml_clock_timer_start(&r[0].t, on_fire, 5, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 5, 0);
  ml_clock_timer_start(&r[2].t, on_fire, 5, 0);
  self->id = 9;
  self->free_self = 1;
  ml_clock_timer_init_on(clk, &self->t);
  ml_clock_timer_start(&self->t, on_fire, 5, 5);  /* repeats: freed */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(norder, 3);
  CHECK_INT(order[0], 0);
  CHECK_INT(order[1], 2);
  CHECK_INT(order[2], 9);
  CHECK_INT(r[1].fired, 0);
  CHECK_INT(close_real(&loop), 0);
}

/* A callback restarts another pending timer (it moves later) and starts
 * a fired one again. */
TEST(clock_real_restart_inside_callback) {
  uv_loop_t loop;
  rec_timer r[3];
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(r, 3);
  r[0].start = &r[1];                 /* r[1], due at 10, moves to +30 */
  r[0].start_ms = 30;
  r[2].start = &r[0];                 /* r[0] fires again, 5 after r[2] */
  r[2].start_ms = 5;
  ml_clock_timer_start(&r[0].t, on_fire, 5, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 10, 0);
  ml_clock_timer_start(&r[2].t, on_fire, 20, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(norder, 4);
  CHECK_INT(order[0], 0);
  CHECK_INT(order[1], 2);
  CHECK_INT(order[2], 0);
  CHECK_INT(order[3], 1);
  CHECK_INT(close_real(&loop), 0);
}

TEST(clock_real_repeats) {
  uv_loop_t loop;
  rec_timer every, once;
  uint64_t t0;
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  memset(&every, 0, sizeof every);
  memset(&once, 0, sizeof once);
  norder = 0;
  every.id = 1;
  every.stop_after = 4;
  once.id = 2;
  ml_clock_timer_init_on(clk, &every.t);
  ml_clock_timer_init_on(clk, &once.t);
  uv_update_time(&loop);
  t0 = uv_now(&loop);
  ml_clock_timer_start(&every.t, on_fire, 10, 10);
  ml_clock_timer_start(&once.t, on_fire, 25, 0);
  uv_run(&loop, UV_RUN_DEFAULT);      /* ends: 'every' stopped itself */
  CHECK_INT(every.fired, 4);
  CHECK_INT(once.fired, 1);
  CHECK_INT(norder, 5);
  CHECK_INT(order[2], 2);             /* 10, 20, 25, 30, 40 */
  CHECK(uv_now(&loop) - t0 >= 40);
  CHECK_INT(close_real(&loop), 0);
}

/* A zero wait started by a callback comes after every entry already due
 * (on libuv's next turn from 1.45 on, whose timers do the same). */
TEST(clock_real_zero_wait_from_callback_goes_last) {
  uv_loop_t loop;
  rec_timer r[2];
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(r, 2);
  r[0].restarts = 3;
  ml_clock_timer_start(&r[0].t, on_fire, 0, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 0, 0);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(norder, 5);
  CHECK_INT(order[0], 0);
  CHECK_INT(order[1], 1);
  CHECK_INT(order[2], 0);
  CHECK_INT(order[4], 0);
  CHECK_INT(close_real(&loop), 0);
}

/* A deadline pushed back many times fires once, late enough; a dropped
 * one leaves the heap at its old time, so the loop then ends. */
TEST(clock_real_deadline_pushed_back) {
  uv_loop_t loop;
  rec_timer d[2];
  uint64_t t0;
  int i;
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(d, 2);
  uv_update_time(&loop);
  t0 = uv_now(&loop);
  ml_clock_deadline(&d[1].t, on_fire, 5);
  ml_clock_deadline_drop(&d[1].t);
  for (i = 0; i < 4; i++) {
    ml_clock_deadline(&d[0].t, on_fire, 10);
    uv_sleep(5);
    uv_update_time(&loop);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(d[0].fired, 1);
  CHECK_INT(d[1].fired, 0);
  CHECK(uv_now(&loop) - t0 >= 25);
  CHECK_INT(d[1].t.index, -1);
  CHECK_INT(close_real(&loop), 0);
}

/* Stopped timers keep no loop alive; closing drops what is left. */
TEST(clock_real_idle_and_close) {
  uv_loop_t loop;
  rec_timer r[2];
  uint64_t t0;
  uv_loop_init(&loop);
  clk = ml_clock_new_real(&loop);
  reset(r, 2);
  uv_update_time(&loop);
  t0 = uv_now(&loop);
  ml_clock_timer_start(&r[0].t, on_fire, 10000, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 20000, 0);
  ml_clock_timer_stop(&r[1].t);
  ml_clock_timer_stop(&r[0].t);
  uv_run(&loop, UV_RUN_DEFAULT);      /* at once: nothing armed */
  CHECK(uv_now(&loop) - t0 < 1000);
  ml_clock_timer_start(&r[0].t, on_fire, 10000, 0);
  CHECK_INT(close_real(&loop), 0);    /* r[0] dropped, never fires */
  CHECK_INT(r[0].fired, 0);
  ml_clock_timer_stop(&r[0].t);       /* a no-op now */
}

/* }====================================================== */
