/*
 * watchdog.c - a thread that notices Lua code running too long without
 * waiting.  The loop thread records each lua_resume as it starts and
 * ends; when one runs past --watchdog ms or --cpu-budget seconds, this
 * thread sends the loop thread a signal, whose handler sets a count hook
 * on the running Lua thread (lua_sethook is safe in a signal handler of
 * the thread running Lua: it is how lua.c stops a script on Ctrl-C).  The
 * hook logs the route and the traceback, and past the budget raises a 503
 * in the handler.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>
#include "conn.h"
#include "log.h"
#include "watchdog.h"

#define HOOK_COUNT 1000     /* instructions between checks once hooked */
#define WATCH_SIGNAL (SIGRTMIN + 7)

struct ml_watch {
  pthread_t thread;
  pthread_t loop_thread;    /* the thread that runs Lua */
  pthread_mutex_t lock;     /* guards 'stop' */
  pthread_cond_t wake;
  int stop;
  uint64_t report_ns;       /* log past this; 0: never */
  uint64_t budget_ns;       /* stop past this; 0: never */
  /* written by the loop thread with atomics, read by the watchdog */
  lua_State *L;             /* inside lua_resume, or NULL */
  ml_co *co;
  uint64_t since;           /* uv_hrtime when that resume began */
  uint64_t hooked;          /* the resume the hook was set for */
  uint64_t reported;        /* the resume already logged */
};

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

/* Logs what the loop is busy with: the request line and a traceback. */
static void report(lua_State *L, ml_watch *w, ml_co *co, uint64_t ns) {
  const char *what = co != NULL && co->what ? co->what : "Lua code";
  luaL_traceback(L, L, NULL, 0);   /* level 0: what tripped the hook */
  if (co != NULL && co->is_request && co->data != NULL) {
    size_t n;
    ml_conn *c = co->data;
    const char *url = ml_conn_url(c, &n);
    ml_log(MOONLET_LOG_WARN, "watchdog: the loop has been busy for %llu ms "
           "in %s %.*s, without waiting:\n%s", (unsigned long long)(ns /
           1000000), llhttp_method_name((llhttp_method_t)ml_conn_req(c)->
           method), (int)n, url, lua_tostring(L, -1));
  } else {
    ml_log(MOONLET_LOG_WARN, "watchdog: the loop has been busy for %llu ms "
           "in a %s, without waiting:\n%s", (unsigned long long)(ns /
           1000000), what, lua_tostring(L, -1));
  }
  lua_pop(L, 1);
  w->reported = LOAD(w->since);
}

/*
 * The count hook, in the loop thread.  A hook left over from a resume
 * that has ended removes itself; otherwise it reports once, and past the
 * budget raises moonlet's abort(503) at every check until the code waits
 * or ends (a pcall in the handler cannot swallow it for long).
 */
static void hook(lua_State *L, lua_Debug *ar) {
  ml_gen *g = ML_GEN(L);
  ml_watch *w = g->watch;
  uint64_t since, ns;
  if (w == NULL || LOAD(w->L) != L ||
      (since = LOAD(w->since)) != LOAD(w->hooked)) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  ns = uv_hrtime() - since;
  if (w->report_ns && ns >= w->report_ns && w->reported != since)
    report(L, w, LOAD(w->co), ns);
  if (w->budget_ns == 0) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  if (ns < w->budget_ns) {
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);
    return;
  }
  /* over: raise at every instruction of the app's code, so that a pcall
   * in the hot loop catches one error but the code around it meets the
   * next; once the error is back in moonlet's own code (which renders
   * the 503), the hook goes */
  if (lua_getinfo(L, "S", ar) && strncmp(ar->source, "@lua/moonlet/", 13)
      == 0) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, 503);
  lua_setfield(L, -2, "status");
  lua_pushfstring(L, "stopped after computing for %f s without waiting "
                  "(--cpu-budget)", (double)ns / 1e9);
  lua_setfield(L, -2, "message");
  if (g->abort_mt_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, g->abort_mt_ref);
    lua_setmetatable(L, -2);
  }
  lua_error(L);
}

/* Sleeps until 'ns' from now or until told to stop; 1 when stopping. */
static int nap(ml_watch *w, uint64_t ns) {
  struct timespec ts;
  int stop;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)(ns / 1000000000u);
  ts.tv_nsec += (long)(ns % 1000000000u);
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&w->lock);
  if (!w->stop)
    pthread_cond_timedwait(&w->wake, &w->lock, &ts);
  stop = w->stop;
  pthread_mutex_unlock(&w->lock);
  return stop;
}

/* The watchdog whose loop runs in this thread, for the signal handler. */
static __thread ml_watch *this_thread_watch;

/*
 * In the loop thread, interrupting it: if the resume the watchdog saw is
 * still running, hook its Lua thread.  Anything else has ended already.
 */
static void on_watch_signal(int sig) {
  ml_watch *w = this_thread_watch;
  lua_State *L;
  (void)sig;
  if (w != NULL && (L = LOAD(w->L)) != NULL &&
      LOAD(w->since) == LOAD(w->hooked))
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
}

static void *watch_loop(void *arg) {
  ml_watch *w = arg;
  uint64_t limit = w->report_ns;
  uint64_t tick;
  if (w->budget_ns && (limit == 0 || w->budget_ns < limit))
    limit = w->budget_ns;
  tick = limit / 4 > 5000000u ? limit / 4 : 5000000u;  /* >= 5 ms */
  while (!nap(w, tick)) {
    uint64_t since = LOAD(w->since);
    if (LOAD(w->L) != NULL && since != LOAD(w->hooked) &&
        uv_hrtime() - since >= limit) {
      STORE(w->hooked, since);
      pthread_kill(w->loop_thread, WATCH_SIGNAL);
    }
  }
  return NULL;
}

ml_watch *ml_watchdog_start(int watchdog_ms, double cpu_budget) {
  ml_watch *w;
  if (watchdog_ms <= 0 && cpu_budget <= 0)
    return NULL;
  if ((w = calloc(1, sizeof *w)) == NULL)
    return NULL;
  w->report_ns = watchdog_ms > 0 ? (uint64_t)watchdog_ms * 1000000u : 0;
  w->budget_ns = cpu_budget > 0 ? (uint64_t)(cpu_budget * 1e9) : 0;
  w->loop_thread = pthread_self();
  this_thread_watch = w;
  {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watch_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(WATCH_SIGNAL, &sa, NULL);
  }
  pthread_mutex_init(&w->lock, NULL);
  pthread_cond_init(&w->wake, NULL);
  if (pthread_create(&w->thread, NULL, watch_loop, w) != 0) {
    ml_log(MOONLET_LOG_WARN, "watchdog: cannot start its thread");
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->wake);
    free(w);
    return NULL;
  }
  return w;
}

void ml_watchdog_stop(ml_watch *w) {
  if (w == NULL)
    return;
  pthread_mutex_lock(&w->lock);
  w->stop = 1;
  pthread_cond_signal(&w->wake);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  if (this_thread_watch == w)
    this_thread_watch = NULL;
  pthread_mutex_destroy(&w->lock);
  pthread_cond_destroy(&w->wake);
  free(w);
}

void ml_watchdog_enter(ml_watch *w, lua_State *L, ml_co *co,
                       ml_watch_mark *saved) {
  saved->L = LOAD(w->L);
  saved->co = LOAD(w->co);
  saved->since = LOAD(w->since);
  STORE(w->co, co);
  STORE(w->since, uv_hrtime());
  STORE(w->L, L);
}

void ml_watchdog_leave(ml_watch *w, const ml_watch_mark *saved) {
  STORE(w->L, saved->L);      /* a nested resume gives its caller back */
  STORE(w->co, saved->co);
  STORE(w->since, saved->since);
}
