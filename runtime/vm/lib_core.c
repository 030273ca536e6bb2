/*
 * lib_core.c - the module "moonlet.core" that lua/moonlet builds on:
 * sleep, now, after/every timers, logging, and the hooks the Lua side
 * registers.  Request objects are lib_req.c's, streamed responses
 * lib_stream.c's, routers lib_router.c's.
 */
#include <stdlib.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "vm/lib.h"
#include "vm/lib_json.h"
#include "vm/lib_template.h"
#include "vm/lib_crypto.h"
#include "vm/lib_stream.h"
#include "base/log.h"
#include "base/util.h"

/*
** {======================================================
** sleep
** =======================================================
*/

/* Timers run on the state's clock (clock.c): libuv's, or virtual.  A
 * stopped timer never calls back, so the op is freed at once. */
typedef struct { ml_wait w; ml_ctimer timer; } sleep_op;

static void sleep_done(ml_ctimer *t) {
  sleep_op *op = container_of(t, sleep_op, timer);
  ml_co *co = ml_sched_unpark(&op->w);     /* detach first */
  free(op);                                /* fired: off the clock */
  if (co != NULL)
    ml_sched_resume(co, 0);                /* last: it may free the conn */
}

static void sleep_cancel(ml_wait *w) {
  ml_clock_timer_stop(&((sleep_op *)w)->timer);
  free(w);
}

static int core_sleep(lua_State *L) {
  lua_Number s = luaL_checknumber(L, 1);   /* raise before any malloc */
  ml_co *co;
  sleep_op *op;
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "duration out of range");
  co = ml_sched_current(L);
  if ((op = malloc(sizeof *op)) == NULL)
    return luaL_error(L, "not enough memory");
  ml_clock_timer_init_on(co->gen->clock, &op->timer);
  if (ml_clock_timer_start(&op->timer, sleep_done,
                           (uint64_t)(s * 1000 + 0.5), 0) != 0) {
    free(op);
    return luaL_error(L, "not enough memory");
  }
  ml_sched_park(co, &op->w, sleep_cancel);
  return ml_sched_yield(L);  /* resume's values become sleep's results */
}

static int core_now(lua_State *L) {
  lua_pushnumber(L, (lua_Number)ml_clock_time(ML_GEN(L)->clock) / 1000.0);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** A request's body
** =======================================================
*/

/*
 * What a request's coroutine runs (moonlet.app's dispatch, as the server
 * sees it): a C closure over dispatch and its stages table, [id] the
 * handler of route id, [-1] the message handler, [0] the rest of dispatch,
 * handled(a, b, c, ok, req, id).  It calls the route's handler itself
 * under the message handler, as dispatch's xpcall did, so a waiting
 * handler has one frame below it instead of two (dispatch and xpcall): a
 * CallInfo, 64 bytes, less per waiting request.  Upvalues 3 to 5 are
 * what lets it answer the common returns without handled: the value
 * that means "sent already", the table of requests whose session changed,
 * and the set of routes without after hooks.
 */
enum { UP_DISPATCH = 1, UP_STAGES, UP_SENT, UP_CHANGED, UP_PLAIN };

static int body_done(lua_State *L, int status, lua_KContext ctx) {
  ML_UNUSED(L);
  ML_UNUSED(status);
  ML_UNUSED(ctx);
  return 0;
}

/*
 * Route id's handler returned the values at idx: answered here when they
 * are "sent already", or when the route has no after hooks, the session
 * did not change and they are a string or plain table with an optional
 * status and headers (ml_lib_req_answer).  1 if done.
 */
static int answer(lua_State *L, int idx, lua_Integer id) {
  int plain;
  if (lua_rawequal(L, idx, lua_upvalueindex(UP_SENT)))
    return 1;
  plain = lua_rawgeti(L, lua_upvalueindex(UP_PLAIN), id) != LUA_TNIL;
  lua_pop(L, 1);
  if (!plain)
    return 0;
  lua_pushvalue(L, 1);
  plain = lua_rawget(L, lua_upvalueindex(UP_CHANGED)) == LUA_TNIL;
  lua_pop(L, 1);
  return plain && ml_lib_req_answer(L, idx);
}

/*
 * The handler has returned (its first three results at 'n' + 2) or raised
 * (what the message handler made of the error, there): answered here, or
 * by handled(a, b, c, ok, req, id), which may wait too.  Its frame starts
 * where the message handler was, low enough that answering stays within
 * the thread's first stack (40 slots): a grown stack would double, for
 * every pooled thread.
 */
static int handler_done(lua_State *L, int status, lua_KContext ctx) {
  int n = (int)ctx, ok = status == LUA_OK || status == LUA_YIELD;
  if (ok && answer(L, n + 2, lua_tointeger(L, 2)))
    return 0;
  if (!ok)
    lua_settop(L, n + 4);        /* the error is one value: pad it */
  lua_rawgeti(L, lua_upvalueindex(UP_STAGES), 0);
  lua_replace(L, n + 1);
  lua_pushboolean(L, ok);
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_callk(L, 6, 0, 0, body_done);
  return 0;
}

/* request_body(req, id, values...): no route (id 0), dispatch answers;
 * else handler(req, values...), then handled. */
static int request_body(lua_State *L) {
  int n = lua_gettop(L), i;
  lua_Integer id = lua_tointeger(L, 2);
  if (id <= 0) {
    lua_pushvalue(L, lua_upvalueindex(UP_DISPATCH));
    lua_insert(L, 1);
    lua_callk(L, n, 0, 0, body_done);
    return 0;
  }
  lua_rawgeti(L, lua_upvalueindex(UP_STAGES), -1);   /* at n + 1 */
  lua_rawgeti(L, lua_upvalueindex(UP_STAGES), id);
  lua_pushvalue(L, 1);
  for (i = 3; i <= n; i++)
    lua_pushvalue(L, i);
  return handler_done(L, lua_pcallk(L, n - 1, 3, n + 1, n, handler_done),
                      n);
}

/* core.request_body(dispatch, stages, answers): the function the server
 * runs for each request, from moonlet.app.serve; answers holds 'sent',
 * 'changed' and 'plain' (see above). */
static int core_request_body(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 3);
  lua_getfield(L, 3, "sent");
  if (lua_getfield(L, 3, "changed") != LUA_TTABLE)
    return luaL_argerror(L, 3, "'changed' must be a table");
  if (lua_getfield(L, 3, "plain") != LUA_TTABLE)
    return luaL_argerror(L, 3, "'plain' must be a table");
  lua_remove(L, 3);
  lua_pushcclosure(L, request_body, 5);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** after / every
** =======================================================
*/

/*
 * A timer belongs to its generation (not to a request): it lives until it
 * is stopped, has fired once ('after'), or the generation is retired.
 * The Lua userdata only points at it; either may go first.
 */
typedef struct ml_timer ml_timer;
typedef struct timer_set timer_set;

struct ml_timer {
  ml_ctimer timer;
  timer_set *set;
  int fn_ref;             /* the callback */
  ml_timer **ud;          /* the userdata's pointer to us, or NULL */
  ml_timer *prev, *next;  /* the set's list */
  int repeat;
  int single;             /* {single = true}: one worker only */
};

/* A generation's timers: a part of it (gen.h), made with its first
 * timer; retiring the generation stops them all. */
struct timer_set {
  ml_part part;
  ml_timer *list;
};

/* Unlinks, drops the callback's ref, stops and frees: callers must not
 * use t after.  Safe from t's own firing (clock.c no longer touches t). */
static void timer_stop(ml_timer *t) {
  timer_set *set = t->set;
  if (t->fn_ref == LUA_NOREF)
    return;
  luaL_unref(set->part.gen->L, LUA_REGISTRYINDEX, t->fn_ref);
  t->fn_ref = LUA_NOREF;
  if (t->ud != NULL)
    *t->ud = NULL;
  if (t->prev != NULL)
    t->prev->next = t->next;
  else
    set->list = t->next;
  if (t->next != NULL)
    t->next->prev = t->prev;
  ml_clock_timer_stop(&t->timer);
  free(t);
}

static void timers_retire(ml_part *p) {
  timer_set *set = (timer_set *)p;
  while (set->list != NULL)
    timer_stop(set->list);
}

static void timers_close(ml_part *p) {
  timers_retire(p);
  free(p);
}

static const ml_part_kind timers_kind = {
  "timers", timers_retire, timers_close
};

/* g's timer set, made on first use; NULL when out of memory. */
static timer_set *timers_of(ml_gen *g) {
  timer_set *set = (timer_set *)ml_gen_part(g, &timers_kind);
  if (set == NULL && (set = calloc(1, sizeof *set)) != NULL)
    ml_gen_attach(g, &set->part, &timers_kind);
  return set;
}

static const ml_job timer_job = { .what = "timer callback" };

/* Each firing runs the callback in a fresh coroutine of the pool. */
static void on_timer(ml_ctimer *h) {
  ml_timer *t = container_of(h, ml_timer, timer);
  ml_gen *g = t->set->part.gen;
  ml_co *co;
  if (t->single && g->host->single_turn != NULL &&
      !g->host->single_turn(g->host->single_ud)) {
    if (!t->repeat)
      timer_stop(t);       /* another worker's firing */
    return;
  }
  if ((co = ml_sched_acquire(g, &timer_job, NULL)) == NULL) {
    ml_log(MOONLET_LOG_ERROR, "timer: out of memory, firing skipped");
    return;
  }
  lua_rawgeti(co->L, LUA_REGISTRYINDEX, t->fn_ref);
  if (!t->repeat)
    timer_stop(t);         /* the coroutine holds the function now */
  ml_sched_resume(co, 0);
}

static int new_timer(lua_State *L, int repeat) {
  lua_Number s = luaL_checknumber(L, 1);
  ml_gen *g = ML_GEN(L);
  ml_timer **ud, *t;
  timer_set *set;
  uint64_t ms;
  int single = 0;
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "interval out of range");
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (!lua_isnoneornil(L, 3)) {   /* options: {single = true} */
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "single");
    single = lua_toboolean(L, -1);
    lua_pop(L, 1);
  }
  if (g->retired)
    return luaL_error(L, "this version of the app has been replaced");
  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, "moonlet.Timer");
  if ((set = timers_of(g)) == NULL ||
      (t = calloc(1, sizeof *t)) == NULL)
    return luaL_error(L, "not enough memory");
  ms = (uint64_t)(s * 1000 + 0.5);
  if (repeat && ms == 0)
    ms = 1;                /* an every(0) would starve the loop */
  t->set = set;
  t->repeat = repeat;
  t->single = single;
  lua_pushvalue(L, 2);
  t->fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  t->next = set->list;
  if (set->list != NULL)
    set->list->prev = t;
  set->list = t;
  t->ud = ud;
  *ud = t;
  ml_clock_timer_init_on(g->clock, &t->timer);
  if (ml_clock_timer_start(&t->timer, on_timer, ms, repeat ? ms : 0) != 0) {
    timer_stop(t);
    return luaL_error(L, "not enough memory");
  }
  return 1;
}

static int core_after(lua_State *L) {
  return new_timer(L, 0);
}

static int core_every(lua_State *L) {
  return new_timer(L, 1);
}

static int timer_stop_l(lua_State *L) {
  ml_timer **ud = luaL_checkudata(L, 1, "moonlet.Timer");
  if (*ud != NULL)
    timer_stop(*ud);
  return 0;
}

static int timer_gc(lua_State *L) {   /* the timer keeps running */
  ml_timer **ud = luaL_checkudata(L, 1, "moonlet.Timer");
  if (*ud != NULL)
    (*ud)->ud = NULL;
  return 0;
}

static int timer_active(lua_State *L) {
  ml_timer **ud = luaL_checkudata(L, 1, "moonlet.Timer");
  lua_pushboolean(L, *ud != NULL);
  return 1;
}

/* }====================================================== */

static int core_log(lua_State *L) {
  int level = luaL_checkoption(L, 1, NULL, ml_log_levels);
  const char *msg = luaL_checkstring(L, 2);
  ml_log(level, "%s", msg);
  return 0;
}

/* core.log_capture(on): the error log goes to a buffer (on) or stderr. */
static int core_log_capture(lua_State *L) {
  ml_log_capture(lua_toboolean(L, 1));
  return 0;
}

/* core.log_take(): the lines captured since the last call, as a string. */
static int core_log_take(lua_State *L) {
  size_t n;
  char *p = ml_log_take(&n);
  lua_pushlstring(L, p != NULL ? p : "", n);
  free(p);
  return 1;
}

static int core_log_enabled(lua_State *L) {
  lua_pushboolean(L, ml_log_enabled(luaL_checkoption(L, 1, NULL,
                                                      ml_log_levels)));
  return 1;
}

static int core_pid(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)uv_os_getpid());
  return 1;
}

/* core.worker_id(): 1..N under --workers, else 1. */
static int core_worker_id(lua_State *L) {
  lua_pushinteger(L, ML_GEN(L)->host->worker_id);
  return 1;
}

static int core_debug(lua_State *L) {
  lua_pushboolean(L, ML_GEN(L)->host->debug);
  return 1;
}

/* core.yield_token(): the value runtime waits yield first. */
static int core_yield_token(lua_State *L) {
  ml_sched_push_token(L);
  return 1;
}

/*
 * core.resume(co, ...): coroutine.resume for moonlet.boot's wrappers,
 * which tells the watchdog the thread that runs now, so that it can hook
 * the innermost one.  true and the values, or false and the error.
 */
static int core_resume(lua_State *L) {
  lua_State *co = lua_tothread(L, 1);
  ml_resume_hook *hook = ML_GEN(L)->host->resume_hook;
  int n = lua_gettop(L) - 1, status, nres;
  luaL_argexpected(L, co != NULL, 1, "coroutine");
  if (!lua_checkstack(co, n)) {
    lua_pushboolean(L, 0);
    lua_pushliteral(L, "too many arguments to resume");
    return 2;
  }
  lua_xmove(L, co, n);
  if (hook != NULL)
    status = hook->nested(hook, co, L, n, &nres);
  else
    status = lua_resume(co, L, n, &nres);
  if (status != LUA_OK && status != LUA_YIELD) {
    lua_xmove(co, L, 1);              /* the error */
    nres = 1;
  } else if (!lua_checkstack(L, nres + 1)) {
    lua_pop(co, nres);
    lua_pushliteral(L, "too many results to resume");
    nres = 1;
    status = LUA_ERRRUN;
  } else {
    lua_xmove(co, L, nres);
  }
  lua_pushboolean(L, status == LUA_OK || status == LUA_YIELD);
  lua_insert(L, -(nres + 1));         /* co may be L: its error is on top */
  return nres + 1;
}

void ml_lib_push_abort(lua_State *L, int status, const char *msg) {
  lua_createtable(L, 0, 3);
  lua_pushinteger(L, status);
  lua_setfield(L, -2, "status");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  if (luaL_getmetatable(L, ML_ABORT_MT) == LUA_TTABLE)
    lua_setmetatable(L, -2);
  else
    lua_pop(L, 1);
}

/* core.set_abort_class(mt): moonlet.abort's errors, which the watchdog
 * raises too (a 503 past --cpu-budget), as registry[ML_ABORT_MT]. */
static int core_set_abort_class(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  lua_setfield(L, LUA_REGISTRYINDEX, ML_ABORT_MT);
  return 0;
}

static const luaL_Reg timer_methods[] = {
  {"stop", timer_stop_l},
  {"active", timer_active},
  {NULL, NULL}
};

static const luaL_Reg core_funcs[] = {
  {"sleep", core_sleep},
  {"now", core_now},
  {"after", core_after},
  {"every", core_every},
  {"log", core_log},
  {"log_enabled", core_log_enabled},
  {"log_capture", core_log_capture},
  {"log_take", core_log_take},
  {"debug", core_debug},
  {"pid", core_pid},
  {"worker_id", core_worker_id},
  {"yield_token", core_yield_token},
  {"resume", core_resume},
  {"set_abort_class", core_set_abort_class},
  {"request_body", core_request_body},
  {NULL, NULL}
};

int luaopen_moonlet_core(lua_State *L) {
  luaL_newmetatable(L, "moonlet.Timer");
  luaL_newlib(L, timer_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, timer_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  luaL_newlib(L, core_funcs);
  lua_pushstring(L, MOONLET_VERSION);
  lua_setfield(L, -2, "version");
  ml_lib_req_register(L);
  ml_lib_stream_register(L);
  ml_lib_router_register(L);
  ml_lib_static_register(L);
  ml_lib_shared_register(L);
  ml_lib_drain_register(L);
  ml_lib_task_register(L);
  ml_lib_http_register(L);
  ml_lib_thread_register(L);
  ml_lib_json_register(L);
  ml_lib_template_register(L);
  ml_lib_crypto_register(L);
  ml_lib_pg_register(L);
  ml_lib_redis_register(L);
  ml_lib_tcp_register(L);
  ml_lib_ws_register(L);
  return 1;
}
