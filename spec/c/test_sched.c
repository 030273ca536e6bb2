/*
 * test_sched.c - what sched.c keeps per coroutine: every waiting request
 * holds one ml_co, so its size is part of the cost of a request; and the
 * pool a burst leaves, shrinking back.  Includes sched.c for its statics.
 */
#include <string.h>
#include <uv.h>
#include <lauxlib.h>
#include "vm/lib.h"
#include "vm/sched.h"
#include "vm/sched.c"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/* 136 bytes is a 144-byte malloc chunk on 64-bit glibc; 137 is 160. */
TEST(sched_co_is_small) {
  CHECK(sizeof(ml_co) <= 136);
  CHECK(sizeof(ml_wait) <= 16);
}

/*
** {======================================================
** The pool after a burst
** =======================================================
*/

static const ml_job sleep_job = { .what = "request", .request = 1 };

/* A coroutine of g sleeping 'ms' on g's clock. */
static void nap(ml_gen *g, int ms) {
  ml_co *co = ml_sched_acquire(g, &sleep_job, NULL);
  CHECK(co != NULL);
  lua_getglobal(co->L, "require");
  lua_pushliteral(co->L, "moonlet.core");
  lua_call(co->L, 1, 1);
  lua_getfield(co->L, -1, "sleep");
  lua_remove(co->L, -2);
  lua_pushnumber(co->L, ms / 1000.0);
  ml_sched_resume(co, 1);
}

static void no_turn(void *ud) {
  (void)ud;
}

/* The sweeper lets half of the coroutines that stayed idle through a
 * period go, down to POOL_KEEP; what is taken from the pool during a
 * period stays; the sweeper leaves once the pool is small again. */
TEST(sched_pool_shrinks_after_a_burst) {
  uv_loop_t loop;
  ml_host h;
  ml_gen *g;
  int i;
  uv_loop_init(&loop);
  memset(&h, 0, sizeof h);
  h.loop = &loop;
  h.clock = ml_clock_new(0, NULL);    /* virtual: sweeps come on advance */
  h.worker_id = 1;
  h.open_core = luaopen_moonlet_core;
  CHECK((g = ml_gen_new(&h)) != NULL);
  for (i = 0; i < 600; i++)
    nap(g, 1000);
  CHECK_INT(g->live, 600);
  ml_clock_advance(h.clock, 1000, no_turn, NULL);   /* the burst ends */
  CHECK_INT(g->live, 0);
  CHECK_INT(g->pooled, 600);
  CHECK(ml_gen_part(g, &sweeper_kind) != NULL);
  ml_clock_advance(h.clock, SWEEP_MS, no_turn, NULL);
  CHECK_INT(g->pooled, 599);          /* 33 were pooled at its start */
  ml_clock_advance(h.clock, SWEEP_MS, no_turn, NULL);
  CHECK_INT(g->pooled, 315);          /* 599 idle: (599 - 32 + 1) / 2 go */
  for (i = 0; i < 300; i++)           /* 300 busy through the next sweep */
    nap(g, SWEEP_MS + 500);
  CHECK_INT(g->pooled, 15);
  ml_clock_advance(h.clock, SWEEP_MS, no_turn, NULL);
  CHECK_INT(g->pooled, 15);           /* none of them was idle */
  ml_clock_advance(h.clock, 1000, no_turn, NULL);
  CHECK_INT(g->pooled, 315);          /* back from work */
  for (i = 0; i < 12; i++)
    ml_clock_advance(h.clock, SWEEP_MS, no_turn, NULL);
  CHECK_INT(g->pooled, POOL_KEEP);
  CHECK(ml_gen_part(g, &sweeper_kind) == NULL);
  ml_gen_retire(g);                   /* no coroutine: closes at once */
  ml_clock_free(h.clock);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* }====================================================== */
