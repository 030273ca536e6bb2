/*
 * test_gen.c - generations (gen.c): parts found by kind, retired and
 * closed through their hooks, newest first, each close once; a retired
 * generation that waits for its requests, then closes; a borrowed state
 * given back as it was.
 */
#include <string.h>
#include <lauxlib.h>
#include "vm/lib.h"
#include "vm/sched.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

typedef struct {
  ml_part part;
  int retired, closed;
  int detach_on_retire;
} rec_part;

static int close_order[4], nclosed;

static void rec_retire(ml_part *p) {
  rec_part *r = (rec_part *)p;
  r->retired++;
  if (r->detach_on_retire)
    ml_gen_detach(p);
}

static void rec_close(ml_part *p) {
  rec_part *r = (rec_part *)p;
  CHECK(p->next == NULL);             /* detached before the call */
  r->closed++;
  if (nclosed < 4)
    close_order[nclosed++] = r->retired * 10 + r->detach_on_retire;
}

static const ml_part_kind kind_a = { "a", rec_retire, rec_close };
static const ml_part_kind kind_b = { "b", NULL, rec_close };
static const ml_part_kind kind_c = { "c", rec_retire, rec_close };

TEST(gen_parts_by_kind_retire_close) {
  ml_gen g;
  rec_part a, b, c;
  memset(&g, 0, sizeof g);
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  nclosed = 0;
  CHECK(ml_gen_part(&g, &kind_a) == NULL);
  ml_gen_attach(&g, &a.part, &kind_a);
  ml_gen_attach(&g, &b.part, &kind_b);
  ml_gen_attach(&g, &c.part, &kind_c);
  c.detach_on_retire = 1;             /* its own business from now on */
  CHECK(ml_gen_part(&g, &kind_a) == &a.part);
  CHECK(ml_gen_part(&g, &kind_b) == &b.part);
  CHECK(a.part.gen == &g);
  ml_gen_parts_retire(&g);
  CHECK_INT(a.retired, 1);
  CHECK_INT(b.retired, 0);            /* no hook */
  CHECK_INT(c.retired, 1);
  CHECK(ml_gen_part(&g, &kind_c) == NULL);
  ml_gen_detach(&b.part);
  CHECK(ml_gen_part(&g, &kind_b) == NULL);
  ml_gen_attach(&g, &b.part, &kind_b);
  ml_gen_parts_close(&g);
  CHECK_INT(nclosed, 2);
  CHECK_INT(close_order[0], 0);       /* b, attached last, first */
  CHECK_INT(close_order[1], 10);      /* then a */
  CHECK_INT(a.closed, 1);
  CHECK_INT(c.closed, 0);             /* detached: not ours to close */
  CHECK(g.parts == NULL);
  ml_gen_parts_close(&g);             /* nothing left: no second close */
  CHECK_INT(a.closed + b.closed, 2);
}

/*
** {======================================================
** A real generation
** =======================================================
*/

static int jobs_done[3];

static void job_done(ml_co *co, int how) {
  (void)co;
  jobs_done[how + 1]++;       /* ML_CO_CANCELLED, ML_CO_ERROR, ML_CO_OK */
}

static const ml_job app_job = { .what = "timer callback",
                                .done = job_done };
static const ml_job request_job = { .what = "request", .done = job_done,
                                    .request = 1 };

/* A coroutine of g that sleeps 'secs' (a request's, or the app's). */
static ml_co *sleeper(ml_gen *g, int is_request, int secs) {
  ml_co *co = ml_sched_acquire(g, is_request ? &request_job : &app_job,
                               NULL);
  if (co == NULL)
    return NULL;
  lua_getglobal(co->L, "require");
  lua_pushliteral(co->L, "moonlet.core");
  lua_call(co->L, 1, 1);
  lua_getfield(co->L, -1, "sleep");
  lua_remove(co->L, -2);
  lua_pushinteger(co->L, secs);
  ml_sched_resume(co, 1);
  return co;
}

static void host_for(ml_host *h, uv_loop_t *loop) {
  memset(h, 0, sizeof *h);
  h->loop = loop;
  h->clock = ml_clock_new_real(loop);
  h->worker_id = 1;
  h->open_core = luaopen_moonlet_core;
}

/* Runs the loop until the clock and g's handles have closed. */
static int finish(ml_host *h, uv_loop_t *loop) {
  ml_clock_close(h->clock, NULL, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}

/* Retired: the parts are retired and the app's own coroutines cancelled
 * at once; a request's goes on, and the state closes (the parts with
 * it) when that one ends. */
TEST(gen_retire_waits_for_requests) {
  uv_loop_t loop;
  ml_host h;
  ml_gen *g;
  rec_part p;
  ml_co *req;
  lua_State *T;
  uv_loop_init(&loop);
  host_for(&h, &loop);
  memset(&p, 0, sizeof p);
  memset(jobs_done, 0, sizeof jobs_done);
  nclosed = 0;
  CHECK((g = ml_gen_new(&h)) != NULL);
  T = lua_newthread(g->L);            /* any thread finds its generation */
  CHECK(ML_GEN(T) == g);
  lua_pop(g->L, 1);
  ml_gen_attach(g, &p.part, &kind_a);
  CHECK(sleeper(g, 0, 10) != NULL);  /* the app's: a timer callback */
  CHECK((req = sleeper(g, 1, 10)) != NULL);
  CHECK_INT(g->live, 2);
  ml_gen_retire(g);
  CHECK_INT(p.retired, 1);
  CHECK_INT(jobs_done[0], 1);         /* the app's one is cancelled */
  CHECK_INT(g->live, 1);
  CHECK_INT(p.closed, 0);             /* the request still runs */
  ml_sched_cancel(req);               /* its client left */
  CHECK_INT(jobs_done[0], 2);
  CHECK_INT(p.closed, 1);             /* and the state closed */
  CHECK_INT(finish(&h, &loop), 0);
}

/* A borrowed state: threads made before it find the generation; when it
 * closes, the state is left open, with the allocator it had. */
TEST(gen_borrowed_state_is_given_back) {
  uv_loop_t loop;
  ml_host h;
  ml_gen *g;
  lua_State *L = luaL_newstate(), *old;
  void *ud = &ud;
  lua_Alloc f;
  CHECK(L != NULL);
  uv_loop_init(&loop);
  host_for(&h, &loop);
  f = lua_getallocf(L, &ud);
  old = lua_newthread(L);             /* made before the borrow */
  CHECK((g = ml_gen_borrow(&h, L)) != NULL);
  CHECK(ML_GEN(old) == g);
  CHECK(ML_GEN(L) == g);
  CHECK(g->L == L);
  ml_gen_retire(g);                   /* nothing running: closes now */
  CHECK(lua_getallocf(L, NULL) == f);
  CHECK(ML_GEN(L) == ud);
  lua_close(L);
  CHECK_INT(finish(&h, &loop), 0);
}

/* }====================================================== */
