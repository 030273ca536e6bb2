/*
 * lib_task.c - futures (moonlet.future) and tasks (moonlet.spawn).  A
 * future holds values or an error once, and wakes every coroutine waiting
 * on it; a task is a coroutine whose end resolves its future.  gather,
 * first and timeout are built on these in lua/moonlet/task.lua.
 */
#include <stdlib.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "vm/lib.h"
#include "vm/lib_json.h"
#include "base/log.h"
#include "base/util.h"

#define FUTURE_MT "moonlet.Future"
#define TASK_MT "moonlet.Task"

/* What a future holds; the values are its userdata's user value. */
enum { PENDING, RESOLVED, FAILED, CANCELLED };

/* How a waiter is woken: the first value its continuation receives. */
enum { WAKE_OK, WAKE_ERROR, WAKE_TIMEOUT, WAKE_CANCELLED };

typedef struct waiter waiter;

typedef struct {
  int state;
  waiter *waiters;
} future;

/*
 * One coroutine waiting on a future, with its own deadline.  Owned by the
 * wait: freed when woken, timed out or cancelled.
 */
struct waiter {
  ml_wait w;
  ml_ctimer timer;          /* on the state's clock (clock.c) */
  future *f;                 /* NULL once unlinked */
  waiter *prev, *next;
};

/* A task: its future comes first, so a task is also a future. */
typedef struct {
  future f;
  ml_co *co;                 /* while it runs */
  int self_ref;              /* anchors the userdata while it runs */
  int retrieved;             /* someone saw its result */
} task;

/*
** {======================================================
** Waiting on a future
** =======================================================
*/

static void unlink_waiter(waiter *w) {
  if (w->f == NULL)
    return;
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    w->f->waiters = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  w->f = NULL;
}

/* Unlinks, stops the timer (if started) and frees: nothing calls back. */
static void waiter_drop(waiter *w) {
  unlink_waiter(w);
  ml_clock_timer_stop(&w->timer);
  free(w);
}

static void waiter_cancel(ml_wait *mw) {
  waiter_drop((waiter *)mw);
}

static void waiter_timeout(ml_ctimer *t) {
  waiter *w = container_of(t, waiter, timer);
  ml_co *co = ml_sched_unpark(&w->w);
  waiter_drop(w);
  if (co != NULL) {
    lua_pushinteger(co->L, WAKE_TIMEOUT);
    ml_sched_resume(co, 1);
  }
}

/*
 * Pushes what a waiter returns: the values of a resolved future, or
 * raises its error.  'base' is the stack top below the wake values.
 */
static int wait_k(lua_State *L, int status, lua_KContext base) {
  int code = (int)lua_tointeger(L, (int)base + 1);
  int n = lua_gettop(L) - (int)base - 1;
  ML_UNUSED(status);
  switch (code) {
  case WAKE_OK:
    return n;
  case WAKE_ERROR:
    lua_pushvalue(L, (int)base + 2);
    return lua_error(L);
  default:
    lua_pushnil(L);
    if (code == WAKE_TIMEOUT)
      lua_pushliteral(L, "timeout");
    else
      lua_pushliteral(L, "cancelled");
    return 2;
  }
}

/*
 * Pushes onto L the wake code and values of the settled future whose
 * userdata is at idx in 'from' (which may be L itself); returns how many.
 */
static int push_outcome(lua_State *from, int idx, future *f, lua_State *L) {
  int i, n, t;
  if (f->state == CANCELLED) {
    lua_pushinteger(L, WAKE_CANCELLED);
    return 1;
  }
  idx = lua_absindex(from, idx);
  lua_getiuservalue(from, idx, 1);
  t = lua_gettop(from);
  lua_getfield(from, t, "n");
  n = (int)lua_tointeger(from, -1);
  lua_pop(from, 1);
  luaL_checkstack(from, n + 2, "too many results");
  lua_pushinteger(from, f->state == RESOLVED ? WAKE_OK : WAKE_ERROR);
  for (i = 1; i <= n; i++)
    lua_geti(from, t, i);
  lua_remove(from, t);
  if (from != L) {
    luaL_checkstack(L, n + 2, "too many results");
    lua_xmove(from, L, n + 1);
  }
  return n + 1;
}

/*
 * f:get([timeout]) and task:wait([timeout]): the values now if settled,
 * else park until it is (or the timeout passes).
 */
static int wait_on(lua_State *L, future *f) {
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  int base;
  ml_co *co;
  waiter *w;
  luaL_argcheck(L, lua_isnoneornil(L, 2) || (timeout >= 0 && timeout < 1e9),
                2, "timeout out of range");
  lua_settop(L, 1);
  base = lua_gettop(L);
  if (f->state != PENDING) {          /* settled: no need to wait */
    push_outcome(L, 1, f, L);
    return wait_k(L, LUA_OK, base);
  }
  co = ml_sched_current(L);
  if ((w = calloc(1, sizeof *w)) == NULL)
    return luaL_error(L, "not enough memory");
  ml_clock_timer_init_on(co->gen->clock, &w->timer);
  if (timeout >= 0 &&
      ml_clock_timer_start(&w->timer, waiter_timeout,
                           (uint64_t)(timeout * 1000 + 0.5), 0) != 0) {
    free(w);
    return luaL_error(L, "not enough memory");
  }
  w->f = f;
  w->next = f->waiters;
  if (f->waiters != NULL)
    f->waiters->prev = w;
  f->waiters = w;
  ml_sched_park(co, &w->w, waiter_cancel);
  return ml_sched_yieldk(L, base, wait_k);
}

/*
 * Settles the future whose userdata is at idx with the values in the
 * table on top (popped): wakes every waiter on the loop's next turn.
 */
static void settle(lua_State *L, int idx, future *f, int state) {
  waiter *w;
  idx = lua_absindex(L, idx);
  lua_setiuservalue(L, idx, 1);
  f->state = state;
  while ((w = f->waiters) != NULL) {
    ml_co *co = ml_sched_unpark(&w->w);
    waiter_drop(w);
    if (co != NULL)
      ml_sched_resume_soon(co, push_outcome(L, idx, f, co->L));
  }
}

/* }====================================================== */

/*
** {======================================================
** moonlet.future()
** =======================================================
*/

static future *check_future(lua_State *L) {
  return luaL_checkudata(L, 1, FUTURE_MT);
}

static int future_new(lua_State *L) {
  future *f = lua_newuserdatauv(L, sizeof *f, 1);
  f->state = PENDING;
  f->waiters = NULL;
  luaL_setmetatable(L, FUTURE_MT);
  return 1;
}

/* Packs the arguments from 'first' on into a table {n=, ...}. */
static void pack(lua_State *L, int first) {
  int i, n = lua_gettop(L) - first + 1;
  lua_createtable(L, n > 0 ? n : 0, 1);
  for (i = 0; i < n; i++) {
    lua_pushvalue(L, first + i);
    lua_rawseti(L, -2, i + 1);
  }
  lua_pushinteger(L, n);
  lua_setfield(L, -2, "n");
}

static int future_set(lua_State *L) {
  future *f = check_future(L);
  if (f->state != PENDING)
    return luaL_error(L, "future already resolved");
  pack(L, 2);
  settle(L, 1, f, RESOLVED);
  return 0;
}

static int future_fail(lua_State *L) {
  future *f = check_future(L);
  luaL_checkany(L, 2);
  if (f->state != PENDING)
    return luaL_error(L, "future already resolved");
  lua_settop(L, 2);
  pack(L, 2);
  settle(L, 1, f, FAILED);
  return 0;
}

static int future_get(lua_State *L) {
  return wait_on(L, check_future(L));
}

static int future_done(lua_State *L) {
  lua_pushboolean(L, check_future(L)->state != PENDING);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** moonlet.spawn(fn, ...)
** =======================================================
*/

static task *check_task(lua_State *L) {
  return luaL_checkudata(L, 1, TASK_MT);
}

/* The task's coroutine ended: keep its results, wake its waiters. */
static void task_done(ml_co *co, int how) {
  task *t = co->data;
  lua_State *L = co->L;
  int state = how == ML_CO_OK ? RESOLVED
            : how == ML_CO_ERROR ? FAILED : CANCELLED;
  t->co = NULL;
  if (how == ML_CO_CANCELLED)
    lua_settop(L, 0);
  else if (how == ML_CO_ERROR && lua_gettop(L) > 1) {
    lua_replace(L, 1);           /* keep only the error, from the top */
    lua_settop(L, 1);
  }
  pack(L, 1);
  lua_rawgeti(L, LUA_REGISTRYINDEX, t->self_ref);
  lua_insert(L, -2);
  settle(L, -2, &t->f, state);
  luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
  t->self_ref = LUA_NOREF;
}

/* quiet: its waiter gets the error */
static const ml_job task_job = { .what = "task", .done = task_done,
                                 .quiet = 1 };

static int task_spawn(lua_State *L) {
  ml_gen *g = ML_GEN(L);
  int nargs = lua_gettop(L) - 1;
  task *t;
  ml_co *co;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (g->retired)
    return luaL_error(L, "this version of the app has been replaced");
  t = lua_newuserdatauv(L, sizeof *t, 1);
  t->f.state = PENDING;
  t->f.waiters = NULL;
  t->co = NULL;
  t->retrieved = 0;
  t->self_ref = LUA_NOREF;
  luaL_setmetatable(L, TASK_MT);
  if ((co = ml_sched_acquire(g, &task_job, t)) == NULL)
    return luaL_error(L, "not enough memory");
  luaL_checkstack(co->L, nargs + 1, "too many arguments");
  lua_pushvalue(L, -1);
  t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_rotate(L, 1, 1);               /* task, fn, args... */
  lua_xmove(L, co->L, nargs + 1);    /* fn and args move to the task */
  t->co = co;
  if (g->running != NULL)
    ml_sched_adopt(g->running, co);  /* cancelled with its spawner */
  ml_sched_resume_soon(co, nargs);   /* it starts on the next turn */
  return 1;
}

/* task:wait([timeout]): fn's results, its error raised, or nil and
 * "timeout" / "cancelled". */
static int task_wait(lua_State *L) {
  task *t = check_task(L);
  t->retrieved = 1;
  return wait_on(L, &t->f);
}

/* task:cancel(): stops it and its own tasks; true if it was running. */
static int task_cancel(lua_State *L) {
  task *t = check_task(L);
  ml_co *co = t->co;
  lua_pushboolean(L, co != NULL);
  t->retrieved = 1;
  if (co != NULL)
    ml_sched_cancel(co);
  return 1;
}

static int task_done_l(lua_State *L) {
  lua_pushboolean(L, check_task(L)->f.state != PENDING);
  return 1;
}

/* An error nobody waited for would vanish: say so when it is collected. */
static int task_gc(lua_State *L) {
  task *t = check_task(L);
  if (t->f.state == FAILED && !t->retrieved) {
    lua_getiuservalue(L, 1, 1);
    lua_geti(L, -1, 1);
    ml_log(MOONLET_LOG_WARN, "a task failed and nobody waited for it: %s",
           ml_json_describe(L, -1));   /* a table by its contents */
  }
  return 0;
}

/* }====================================================== */

static const luaL_Reg future_methods[] = {
  {"set", future_set},
  {"fail", future_fail},
  {"get", future_get},
  {"done", future_done},
  {NULL, NULL}
};

static const luaL_Reg task_methods[] = {
  {"wait", task_wait},
  {"cancel", task_cancel},
  {"done", task_done_l},
  {NULL, NULL}
};

static void new_class(lua_State *L, const char *name, const luaL_Reg *m) {
  luaL_newmetatable(L, name);
  lua_newtable(L);
  luaL_setfuncs(L, m, 0);
  lua_setfield(L, -2, "__index");
}

void ml_lib_task_register(lua_State *L) {
  new_class(L, FUTURE_MT, future_methods);
  lua_pop(L, 1);
  new_class(L, TASK_MT, task_methods);
  lua_pushcfunction(L, task_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, future_new);
  lua_setfield(L, -2, "future");
  lua_pushcfunction(L, task_spawn);
  lua_setfield(L, -2, "spawn");
}
