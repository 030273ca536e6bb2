/*
 * module.c - the runtime as a Lua C module (build/moonlet.so): a stock
 * lua5.4 that requires "moonlet" gets one server and one generation over
 * its own state, on a loop of their own.  moonlet.run and moonlet.testing
 * drive that loop; everything they reach is the code the binary runs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/cert.h"
#include "base/clock.h"
#include "host/https.h"
#include "vm/lib.h"
#include "host/server.h"

/*
 * One per Lua state that required the module, owned by a userdata in its
 * registry: the state's close (its __gc) stops the server and frees all.
 */
typedef struct ml_module {
  uv_loop_t loop;
  moonlet_server *server;
  ml_host host;         /* the server's, with the loop functions' core */
  ml_gen *gen;          /* over the host's own state */
  ml_clock *clock;      /* the virtual clock, once asked for */
  int port;             /* the listening port once an app is served */
  ml_tls *tls;          /* core.loop_tls's context, lent to the server
                           while TLS is on */
  uv_timer_t wake;      /* bounds loop_once(timeout); unref'd */
} ml_module;

static char module_key;   /* registry[&module_key]: the ml_module box */

/* The state's module, or NULL; leaves the stack as it was. */
static ml_module *module_get(lua_State *L) {
  ml_module **box;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &module_key);
  box = lua_touserdata(L, -1);
  lua_pop(L, 1);
  return box != NULL ? *box : NULL;
}

static ml_module *module_check(lua_State *L) {
  ml_module *m = module_get(L);
  if (m == NULL || m->gen == NULL)
    luaL_error(L, "moonlet: the module is closed");
  return m;
}

/*
** {======================================================
** Running the loop from the host's Lua
** =======================================================
*/

typedef struct run_job {
  lua_State *L;        /* the host's thread, waiting in core_loop_run */
  int finished, how, nres;
} run_job;

/* The coroutine ended: its results (or its error, with a traceback) go
 * onto the waiting host thread's stack. */
static void run_done(ml_co *co, int how) {
  run_job *job = co->data;
  int n = lua_gettop(co->L);
  job->finished = 1;
  job->how = how;
  if (how == ML_CO_CANCELLED || !lua_checkstack(job->L, n + 1))
    return;
  if (how == ML_CO_ERROR) {
    if (lua_type(co->L, -1) == LUA_TSTRING)
      luaL_traceback(job->L, co->L, lua_tostring(co->L, -1), 0);
    else
      lua_xmove(co->L, job->L, 1);   /* an error object (luassert's) */
    return;
  }
  lua_xmove(co->L, job->L, n);
  job->nres = n;
}

/* quiet: core_loop_run raises its error */
static const ml_job run_kind = { .what = "moonlet.run", .done = run_done,
                                 .quiet = 1 };

/*
 * core.loop_run(fn, ...): runs fn(...) in a coroutine of the state's
 * generation and turns the loop until it has returned; its results, or
 * its error raised again.  Everything else on the loop (the app's
 * requests, timers) runs meanwhile.
 */
static int core_loop_run(lua_State *L) {
  ml_module *m = module_check(L);
  run_job job;
  ml_co *co;
  int n = lua_gettop(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  if (m->gen->running != NULL)
    return luaL_error(L, "moonlet.run inside a moonlet coroutine: call "
                         "the function directly");
  memset(&job, 0, sizeof job);
  job.L = L;
  if ((co = ml_sched_acquire(m->gen, &run_kind, &job)) == NULL)
    return luaL_error(L, "not enough memory");
  lua_xmove(L, co->L, n);
  uv_update_time(&m->loop);  /* the host ran for a while: a sleep made
                                now counts from now, not the last turn */
  ml_sched_resume(co, n - 1);
  while (!job.finished && uv_run(&m->loop, UV_RUN_ONCE) != 0)
    ;
  if (!job.finished) {
    ml_sched_cancel(co);             /* before 'job' leaves the stack */
    return luaL_error(L, "moonlet.run: the function waits on something "
                         "that cannot happen (the loop ran dry)");
  }
  if (job.how == ML_CO_CANCELLED)
    return luaL_error(L, "moonlet.run: cancelled");
  if (job.how == ML_CO_ERROR)
    return lua_error(L);
  return job.nres;
}

/*
 * core.loop_cleanup(): what moonlet.run opened is closed: after/every
 * timers, tasks still running (requests finish), pooled outbound
 * connections.  The loop turns until their handles have closed.
 */
static int core_loop_cleanup(lua_State *L) {
  ml_module *m = module_check(L);
  int i;
  ml_gen_reset(m->gen);
  for (i = 0; i < 4; i++)
    uv_run(&m->loop, UV_RUN_NOWAIT);
  return 0;
}

/*
 * core.loop_serve(app, router, dispatch [, options]): the state serves
 * this app (moonlet.app.serve's router and dispatch) from now on, on
 * 127.0.0.1 and a free port, which it returns.  A state serves one app
 * at a time: a second call replaces the first on the same port.
 */
static int core_loop_serve(lua_State *L) {
  ml_module *m = module_check(L);
  int port;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argcheck(L, ml_lib_router_get(L, 2) != NULL, 2, "a router expected");
  luaL_checktype(L, 3, LUA_TFUNCTION);
  ml_gen_serve(m->gen, L, 1);
  ml_server_switch(m->server, m->gen);  /* its settings' limits apply */
  if (m->port == 0) {
    if ((port = moonlet_listen(m->server)) < 0)
      return luaL_error(L, "moonlet: cannot listen: %s",
                        moonlet_strerror(port));
    m->port = port;
  }
  lua_pushinteger(L, m->port);
  lua_pushstring(L, moonlet_scheme(m->server));
  return 2;
}

/*
 * core.loop_tls(cert, key): connections accepted from now on speak TLS
 * with this pair (files); core.loop_tls(nil): clear text again.  The
 * context is made once and its pair replaced after, so connections
 * already open never see it freed.  Raises when the pair does not load.
 */
static int core_loop_tls(lua_State *L) {
  ml_module *m = module_check(L);
  const char *cert = luaL_optstring(L, 1, NULL);
  const char *key = cert != NULL ? luaL_checkstring(L, 2) : NULL;
  char err[256];
  if (cert == NULL) {
    ml_https_use(m->server, NULL);
    return 0;
  }
  if (m->tls == NULL) {
    if (ml_https_load(cert, key, NULL, &m->tls) != 0)
      return luaL_error(L, "moonlet: the TLS pair did not load");
  } else if (ml_tls_reload(m->tls, cert, key, err, sizeof err) != 0) {
    return luaL_error(L, "moonlet: %s", err);
  }
  ml_https_use(m->server, m->tls);
  return 0;
}

/* core.tls_throwaway(): a new self-signed certificate for localhost,
 * 127.0.0.1 and ::1, and its key, as PEM strings. */
static int core_tls_throwaway(lua_State *L) {
  ml_buf cert = {0}, key = {0};
  int ok = ml_cert_throwaway(&cert, &key) == 0;
  if (ok) {
    lua_pushlstring(L, cert.data, cert.len);
    lua_pushlstring(L, key.data, key.len);
  }
  ml_buf_free(&cert);
  ml_buf_free(&key);
  return ok ? 2 : luaL_error(L, "moonlet: cannot make a certificate");
}

/* Refuses a loop turn from inside one of the state's coroutines. */
static ml_module *check_outside(lua_State *L, const char *what) {
  ml_module *m = module_check(L);
  if (m->gen->running != NULL)
    luaL_error(L, "%s inside a moonlet coroutine", what);
  return m;
}

static void on_wake(uv_timer_t *t) {
  (void)t;                           /* only ends the loop's wait */
}

/* core.loop_once([timeout]): one turn of the loop, waiting for an event,
 * or for at most timeout seconds (client:stream reads a socket of its
 * own between turns). */
static int core_loop_once(lua_State *L) {
  ml_module *m = check_outside(L, "loop_once");
  lua_Number s = luaL_optnumber(L, 1, -1);
  if (s >= 0)
    uv_timer_start(&m->wake, on_wake, (uint64_t)(s * 1000 + 0.5), 0);
  uv_run(&m->loop, UV_RUN_ONCE);
  uv_timer_stop(&m->wake);
  return 0;
}

/* core.loop_live(): coroutines at work in the state (requests, tasks,
 * timer callbacks): moonlet.testing watches a request reach its app. */
static int core_loop_live(lua_State *L) {
  lua_pushinteger(L, module_check(L)->gen->live);
  return 1;
}

/*
 * core.loop_virtual_time(on): timers, sleeps and timeouts made from now
 * on run on a virtual clock (on) or libuv's (off); those made before keep
 * the clock they had.  The virtual clock starts at the loop's time and
 * keeps its time when switched off and on again.
 */
static int core_loop_virtual_time(lua_State *L) {
  ml_module *m = module_check(L);
  if (lua_toboolean(L, 1)) {
    if (m->clock == NULL) {
      uv_update_time(&m->loop);
      if ((m->clock = ml_clock_new(uv_now(&m->loop), m->host.clock))
          == NULL)
        return luaL_error(L, "not enough memory");
    }
    m->gen->clock = m->clock;
  } else {
    m->gen->clock = m->host.clock;
  }
  return 0;
}

static void advance_turn(void *ud) {
  ml_module *m = ud;
  int i;
  for (i = 0; i < 4; i++)            /* woken coroutines, their writes */
    uv_run(&m->loop, UV_RUN_NOWAIT);
}

/* core.loop_advance(seconds): moves the virtual clock, firing what
 * comes due in order, and turns the loop after each firing. */
static int core_loop_advance(lua_State *L) {
  ml_module *m = check_outside(L, "clock:advance");
  lua_Number s = luaL_checknumber(L, 1);
  luaL_argcheck(L, s >= 0 && s < 1e9, 1, "seconds out of range");
  if (m->clock == NULL || m->gen->clock != m->clock)
    return luaL_error(L, "clock:advance: virtual time is off");
  advance_turn(m);                   /* what is in flight gets going */
  ml_clock_advance(m->clock, (uint64_t)(s * 1000 + 0.5), advance_turn, m);
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** Setting up and closing
** =======================================================
*/

/* The state closes: stop the server, close every handle, free. */
static int module_gc(lua_State *L) {
  ml_module **box = lua_touserdata(L, 1), *m = *box;
  if (m == NULL)
    return 0;
  *box = NULL;
  m->gen = NULL;
  if (m->server != NULL)
    ml_server_close_wait(m->server);   /* retires gen */
  ml_tls_free(m->tls);                 /* open streams kept their own */
  uv_close((uv_handle_t *)&m->wake, NULL);
  uv_run(&m->loop, UV_RUN_DEFAULT);  /* the last close callbacks */
  uv_loop_close(&m->loop);
  ml_clock_free(m->clock);
  free(m);
  return 0;
}

static const luaL_Reg loop_funcs[] = {
  {"loop_run", core_loop_run},
  {"loop_serve", core_loop_serve},
  {"loop_cleanup", core_loop_cleanup},
  {"loop_once", core_loop_once},
  {"loop_live", core_loop_live},
  {"loop_virtual_time", core_loop_virtual_time},
  {"loop_advance", core_loop_advance},
  {"loop_tls", core_loop_tls},
  {"tls_throwaway", core_tls_throwaway},
  {NULL, NULL}
};

/* "moonlet.core" in a module's state: the core and the loop functions. */
static int open_core(lua_State *L) {
  luaopen_moonlet_core(L);
  luaL_setfuncs(L, loop_funcs, 0);
  return 1;
}

/*
 * Gives the state its server and generation, once: moonlet's searcher,
 * "moonlet.core" (with the loop functions above) and moonlet.boot, as
 * the binary's states have them.  The generation serves no app until
 * moonlet.serve gives it one.
 */
static int module_setup(lua_State *L) {
  ml_module *m, **box;
  moonlet_config cfg;
  if (module_get(L) != NULL)
    return 0;
  if ((m = calloc(1, sizeof *m)) == NULL)
    return luaL_error(L, "not enough memory");
  if (uv_loop_init(&m->loop) != 0) {
    free(m);
    return luaL_error(L, "moonlet: cannot make a loop");
  }
  uv_timer_init(&m->loop, &m->wake);
  uv_unref((uv_handle_t *)&m->wake);
  box = lua_newuserdatauv(L, sizeof *box, 0);
  *box = m;
  lua_newtable(L);
  lua_pushcfunction(L, module_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &module_key);
  moonlet_config_init(&cfg);
  cfg.port = 0;
  cfg.grace = 0.2;            /* the state is closing: do not linger */
  if ((m->server = moonlet_new(&m->loop, &cfg)) == NULL)
    return luaL_error(L, "not enough memory");
  m->host = *ml_server_host(m->server);
  m->host.open_core = open_core;
  if ((m->gen = ml_gen_borrow(&m->host, L)) == NULL)
    return luaL_error(L, "moonlet: cannot set up the Lua state");
  ml_server_switch(m->server, m->gen);
  return 0;
}

/* package.loadlib's entry for lua/moonlet/init.lua found on a path. */
int moonlet_lua_setup(lua_State *L);
int moonlet_lua_setup(lua_State *L) {
  return module_setup(L);
}

/* Sets the state up, then runs the built-in module 'name' (whose file
 * is 'file') as require would and returns its value. */
static int open_builtin(lua_State *L, const char *name) {
  const char *file;
  module_setup(L);
  if ((file = ml_gen_builtin(L, name)) == NULL)
    return luaL_error(L, "moonlet: no built-in module '%s'", name);
  lua_pushstring(L, name);
  lua_pushstring(L, file);
  lua_call(L, 2, 1);
  return 1;
}

/* require "moonlet" from a stock Lua: the moonlet module. */
int luaopen_moonlet(lua_State *L);
int luaopen_moonlet(lua_State *L) {
  return open_builtin(L, "moonlet");
}

/* require "moonlet.testing" first: Lua's all-in-one searcher finds it in
 * moonlet.so under this name. */
int luaopen_moonlet_testing(lua_State *L);
int luaopen_moonlet_testing(lua_State *L) {
  return open_builtin(L, "moonlet.testing");
}

/* }====================================================== */
