/*
 * test_clock.c - the virtual clock of clock.c: timers fire in due order
 * (start order among equals), each at its own time, repeat, stop from
 * their own callback, and close through the loop like libuv timers.
 */
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "clock.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

typedef struct {
  ml_ctimer t;
  int id;
  int fired;
  int stop_after;          /* close itself after this many firings */
} rec_timer;

static int order[32], norder, closes;
static uint64_t at[32];
static ml_clock *clk;

static void on_close(ml_ctimer *t) {
  (void)t;
  closes++;
}

static void on_fire(ml_ctimer *t) {
  rec_timer *r = (rec_timer *)t;
  r->fired++;
  if (norder < 32) {
    at[norder] = ml_clock_virtual_now(clk);
    order[norder++] = r->id;
  }
  if (r->stop_after > 0 && r->fired == r->stop_after)
    ml_clock_timer_close(t, on_close);
}

static void no_turn(void *ud) {
  (void)ud;
}

TEST(clock_fires_in_due_order) {
  uv_loop_t loop;
  ml_gen g;
  rec_timer r[4];
  int i;
  uv_loop_init(&loop);
  memset(&g, 0, sizeof g);
  memset(r, 0, sizeof r);
  g.loop = &loop;
  g.clock = clk = ml_clock_new(1000);
  norder = closes = 0;
  for (i = 0; i < 4; i++) {
    r[i].id = i;
    ml_clock_timer_init(&g, &r[i].t);
  }
  ml_clock_timer_start(&r[0].t, on_fire, 300, 0);
  ml_clock_timer_start(&r[1].t, on_fire, 100, 0);
  ml_clock_timer_start(&r[2].t, on_fire, 100, 0);   /* after r[1] */
  ml_clock_timer_start(&r[3].t, on_fire, 200, 0);
  CHECK_INT(ml_clock_now(&g), 1000);
  ml_clock_advance(clk, 150, no_turn, NULL);
  CHECK_INT(norder, 2);
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 2);
  CHECK_INT(at[0], 1100);
  ml_clock_timer_close(&r[3].t, on_close);          /* never fires */
  ml_clock_advance(clk, 1000, no_turn, NULL);
  CHECK_INT(norder, 3);
  CHECK_INT(order[2], 0);
  CHECK_INT(at[2], 1300);
  CHECK_INT(ml_clock_now(&g), 2150);
  for (i = 0; i < 3; i++)
    ml_clock_timer_close(&r[i].t, on_close);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(closes, 4);
  ml_clock_free(clk);
  CHECK_INT(uv_loop_close(&loop), 0);
}

TEST(clock_repeats_and_stops_itself) {
  uv_loop_t loop;
  ml_gen g;
  rec_timer every, once;
  uv_loop_init(&loop);
  memset(&g, 0, sizeof g);
  memset(&every, 0, sizeof every);
  memset(&once, 0, sizeof once);
  g.loop = &loop;
  g.clock = clk = ml_clock_new(0);
  norder = closes = 0;
  every.id = 1;
  every.stop_after = 3;
  once.id = 2;
  ml_clock_timer_init(&g, &every.t);
  ml_clock_timer_init(&g, &once.t);
  ml_clock_timer_start(&every.t, on_fire, 60, 60);
  ml_clock_timer_start(&once.t, on_fire, 90, 0);
  ml_clock_advance(clk, 1000, no_turn, NULL);
  CHECK_INT(norder, 4);               /* 60, 90, 120, 180; then stopped */
  CHECK_INT(order[0], 1);
  CHECK_INT(order[1], 2);
  CHECK_INT(at[1], 90);
  CHECK_INT(at[3], 180);
  CHECK_INT(every.fired, 3);
  ml_clock_timer_close(&once.t, on_close);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(closes, 2);
  ml_clock_free(clk);
  CHECK_INT(uv_loop_close(&loop), 0);
}
