/*
 * watchdog.c - a thread that notices Lua code running too long without
 * waiting.  The loop thread records each lua_resume as it starts and
 * ends, and which Lua thread runs innermost (the app's own coroutines
 * too); when one runs past --watchdog ms or --cpu-budget seconds, or past
 * the grace period of a stop, this thread sends the loop thread a signal,
 * whose handler sets a count hook on that Lua thread (lua_sethook is safe
 * in a signal handler of the thread running Lua: it is how lua.c stops a
 * script on Ctrl-C).  The hook logs the route and the traceback, and past
 * the budget or the grace raises a 503 in the handler.  The thread runs a
 * libuv loop of its own that sees SIGINT and SIGTERM too, so a stop asked
 * while the loop thread is stuck is noticed; when even the hook cannot
 * end that stop, the process ends.  Past the grace, moonlet.thread.run's
 * jobs are stopped too, and while one runs the stop is not over: the
 * watchdog outlives its server to see them end.  It also sees the loop
 * stuck in C for --watchdog ms: in a callback that labelled its work
 * (base/activity.h), the same label still there tick after tick, or in a
 * C function Lua called, where the hook cannot run; it logs what the loop
 * is stuck in, then again once it runs.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include "base/activity.h"
#include "base/log.h"
#include "vm/lib.h"
#include "vm/lib_thread.h"
#include "host/watchdog.h"
#include "base/util.h"

#define HOOK_COUNT 1000     /* instructions between checks once hooked */
#define WATCH_SIGNAL (SIGRTMIN + 7)
#define STOP_TICK_MS 20     /* how often a stop under way is checked */
#define STOP_BOUND_NS 1000000000u  /* after the grace: then give up */
#define EXIT_STUCK 3        /* the exit status when giving up */
#define BUSY_AT_SIGNAL_NS 100000000u  /* a stop signal then is logged */

/*
 * Owned by the server (server.c starts and stops it).  Fields the two
 * threads share are read and written with atomics; the loop thread's own
 * are also touched by its signal handler, hence atomics there too.
 */
struct ml_watch {
  ml_resume_hook hook;      /* the scheduler's way in (sched.h) */
  pthread_t thread;
  pthread_t loop_thread;    /* the thread that runs Lua */
  uv_loop_t loop;           /* the watchdog thread's own */
  uv_async_t wake;          /* the loop thread has news: on_wake */
  uv_timer_t tick;
  uv_signal_t sigs[2];      /* SIGINT, SIGTERM, once the server has them */
  int nsigs;
  int nstops;               /* stop signals seen */
  uint64_t period;          /* of 'tick' in ms; 0: stopped */
  int gave_up;              /* said once that it cannot stop */
  int jobs_told;            /* thread.run jobs were told to stop */
  int alone;                /* its server is gone; thread jobs run on */
  uint64_t report_ns;       /* log past this; 0: never */
  uint64_t budget_ns;       /* stop past this; 0: never */
  uint64_t limit_ns;        /* the lower of the two; 0: neither */
  uint64_t grace_ns;        /* a stop's grace period */
  int owns_process;         /* the server handles its signals: it may
                               end the process */
  /* shared with the loop thread */
  int quit;                 /* ml_watchdog_stop */
  int detach;               /* ml_watchdog_stop, while thread jobs run */
  int detached;             /* ... and this thread has let go of its loop */
  int want_signals;         /* ml_watchdog_signals */
  uint64_t deadline;        /* a stop's grace ends; 0: no stop asked */
  int finished;             /* the stop has finished */
  lua_State *L;             /* innermost thread of the resume, or NULL */
  ml_co *co;                /* the coroutine of that resume */
  uint64_t since;           /* uv_hrtime when that resume began */
  uint64_t hooked;          /* the resume signalled for report/budget */
  uint64_t kicked;          /* the resume signalled to stop (grace) */
  uint64_t what_since;      /* the resume 'what' describes */
  char what[160];           /* "GET /x": the signalled resume, for logs */
  uint64_t hook_ran;        /* the resume whose hook has run */
  ml_activity act;          /* the loop thread's labels */
  /* the watchdog thread's: what the loop was last seen in */
  int in_lua;               /* a resume ('key' is its 'since') ... */
  uint64_t key;             /* ... else a label's seq; 0: neither */
  uint64_t key_at;          /* since when (uv_hrtime) */
  int lag_told;             /* this stall was logged */
  /* the loop thread's (and its signal handler's) */
  uint64_t armed;           /* the resume whose threads get hooked */
  uint64_t reported;        /* the resume already logged */
  uint64_t told;            /* the resume logged as stopped */
};

/* What a resume saves of the one it runs inside, to give it back. */
typedef struct {
  ml_watch *w;
  lua_State *L;
  ml_co *co;
  uint64_t since;
} watch_mark;

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

/* The watchdog of the resume this thread runs, for the signal handler,
 * the hook and nested resumes. */
static __thread ml_watch *this_thread_watch;

/*
** {======================================================
** In the loop thread: the signal handler and the hook
** =======================================================
*/

/* Logs "watchdog: <before><what the loop is busy with><after>:" and
 * L's traceback. */
static void report(lua_State *L, ml_watch *w, const char *before,
                   const char *after) {
  char what[sizeof w->what];
  ml_sched_describe(LOAD(w->co), what, sizeof what);
  luaL_traceback(L, L, NULL, 0);   /* level 0: what tripped the hook */
  ml_log(MOONLET_LOG_WARN, "watchdog: %s%s%s:\n%s", before, what, after,
         lua_tostring(L, -1));
  lua_pop(L, 1);
}

/* Raises moonlet.abort(503, msg), an error moonlet renders. */
static int raise_503(lua_State *L, const char *msg) {
  ml_lib_push_abort(L, 503, msg);
  return lua_error(L);
}

/* The hook's work for this resume is done: threads resumed from now on
 * are not hooked, and this one is unhooked. */
static void disarm(ml_watch *w, lua_State *L) {
  STORE(w->armed, 0);
  lua_sethook(L, NULL, 0, 0);
}

static void hook(lua_State *L, lua_Debug *ar);

/*
 * Stops the code: raises at every instruction of the app's code, so that
 * a pcall in the hot loop catches one error but the code around it meets
 * the next.  moonlet.boot's coroutine wrappers pass the error on to the
 * app's code; once it is in the rest of moonlet's own code (which renders
 * the 503), the hook goes.
 */
static void stop_code(lua_State *L, lua_Debug *ar, ml_watch *w,
                      uint64_t since, uint64_t ns, int stopping) {
  char msg[160];
  double s = (double)ns / 1e9;
  if (lua_getinfo(L, "S", ar) && strncmp(ar->source, "@lua/moonlet/", 13)
      == 0) {
    if (strcmp(ar->source + 13, "boot.lua") == 0)
      lua_sethook(L, hook, LUA_MASKCOUNT, 1);
    else
      disarm(w, L);
    return;
  }
  lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  if (stopping) {
    snprintf(msg, sizeof msg, ": the server is stopping, the grace period "
             "is over, and it has computed for %.3f s without waiting", s);
    if (w->told != since)
      report(L, w, "stopping ", msg);
    w->told = since;
    snprintf(msg, sizeof msg, "stopped: the server is stopping and the "
             "grace period is over (computing for %.3f s without waiting)",
             s);
  } else {
    snprintf(msg, sizeof msg, "stopped after computing for %f s without "
             "waiting (--cpu-budget)", s);
  }
  raise_503(L, msg);
}

/*
 * The count hook, in the loop thread.  A hook left from a resume that has
 * ended, or on a thread no longer innermost, removes itself.  Otherwise
 * it reports once, and past the budget, or once the watchdog stops the
 * code for a stop, stops it.
 */
static void hook(lua_State *L, lua_Debug *ar) {
  ml_watch *w = this_thread_watch;
  uint64_t since, ns;
  int stopping;
  if (w == NULL || LOAD(w->L) != L ||
      (since = LOAD(w->since)) != LOAD(w->armed)) {
    lua_sethook(L, NULL, 0, 0);
    return;
  }
  STORE(w->hook_ran, since);
  ns = uv_hrtime() - since;
  if (w->report_ns && ns >= w->report_ns && w->reported != since) {
    char why[64];
    w->reported = since;
    snprintf(why, sizeof why, "the loop has been busy for %llu ms in ",
             (unsigned long long)(ns / 1000000));
    report(L, w, why, ", without waiting");
  }
  stopping = LOAD(w->kicked) == since;
  if (stopping || (w->budget_ns && ns >= w->budget_ns))
    stop_code(L, ar, w, since, ns, stopping);
  else if (w->budget_ns)
    lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);
  else
    disarm(w, L);
}

/*
 * The watchdog's signal, in the loop thread, interrupting it: if the
 * resume the watchdog saw is still running, hook its innermost thread
 * (and, through nest(), the threads it resumes).  Anything else has
 * ended already.  The resume is described first, for the watchdog
 * thread's own lines should the hook never run (code inside a C call).
 */
static void on_watch_signal(int sig) {
  ml_watch *w = this_thread_watch;
  lua_State *L;
  uint64_t since;
  (void)sig;
  if (w == NULL || (L = LOAD(w->L)) == NULL)
    return;
  since = LOAD(w->since);
  if ((since == LOAD(w->kicked) || since == LOAD(w->hooked)) &&
      LOAD(w->what_since) != since) {
    ml_sched_describe(LOAD(w->co), w->what, sizeof w->what);
    STORE(w->what_since, since);
  }
  if (since == LOAD(w->hooked) || since == LOAD(w->kicked)) {
    STORE(w->armed, since);
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
  }
}

/* }====================================================== */

/*
** {======================================================
** The watchdog thread
** =======================================================
*/

/* *p = v if v is earlier (0 in *p: no time yet); either thread. */
static void lower(uint64_t *p, uint64_t v) {
  uint64_t cur = LOAD(*p);
  while ((cur == 0 || v < cur) &&
         !__atomic_compare_exchange_n(p, &cur, v, 0, __ATOMIC_ACQ_REL,
                                      __ATOMIC_ACQUIRE))
    ;
}

static void on_tick(uv_timer_t *t);

/* A stop is under way and not over: its server, or thread jobs, run. */
static int stop_under_way(ml_watch *w) {
  return LOAD(w->deadline) != 0 &&
         (!LOAD(w->finished) || ml_lib_thread_running() > 0);
}

/* Ticks often enough for the limits, and for a stop under way. */
static void retime(ml_watch *w) {
  uint64_t p = 0;
  if (w->limit_ns && !w->alone)
    p = w->limit_ns / 4 / 1000000 > 5 ? w->limit_ns / 4 / 1000000 : 5;
  if (stop_under_way(w) && (p == 0 || p > STOP_TICK_MS))
    p = STOP_TICK_MS;
  if (p == w->period)
    return;
  w->period = p;
  if (p != 0)
    uv_timer_start(&w->tick, on_tick, p, p);
  else
    uv_timer_stop(&w->tick);
}

/*
 * The stop cannot finish: STOP_BOUND_NS after the grace, the loop is
 * still busy (C code that never returns, or a hook that cannot fire), or
 * the stop is still not done.  The moonlet binary's process (the server
 * handles its signals) ends; a host's is the host's to end: say so once.
 * The line goes out without stdio, whose lock the stuck thread may hold.
 */
static void give_up(ml_watch *w, int busy, int jobs, uint64_t since) {
  char line[384];
  const char *what = busy && LOAD(w->what_since) == since ? w->what
                     : "Lua code";
  if (busy)
    snprintf(line, sizeof line, "watchdog: the server cannot stop: the "
             "loop is still busy in %s %.1f s after the grace period "
             "ended (in C code, or a hook cannot run)", what,
             (double)STOP_BOUND_NS / 1e9);
  else if (jobs > 0)
    snprintf(line, sizeof line, "watchdog: the server cannot stop: %d "
             "moonlet.thread.run job(s) still running %.1f s after the "
             "grace period ended (in C code, where no hook runs)", jobs,
             (double)STOP_BOUND_NS / 1e9);
  else
    snprintf(line, sizeof line, "watchdog: the server cannot stop: %.1f "
             "s after the grace period ended, the stop has not finished",
             (double)STOP_BOUND_NS / 1e9);
  if (w->owns_process) {
    size_t n = strlen(line);
    snprintf(line + n, sizeof line - n, "; exiting with status %d",
             EXIT_STUCK);
    ml_log_direct(MOONLET_LOG_ERROR, line);
    _exit(EXIT_STUCK);
  }
  if (busy || jobs > 0) {
    w->gave_up = 1;
    ml_log_direct(MOONLET_LOG_ERROR, line);
  }
}

/*
 * A stop's grace is over: Lua code still running is stopped (a signal
 * for its hook, once per resume), thread jobs too (their own hooks), and
 * STOP_BOUND_NS later it gives up.
 */
static void enforce(ml_watch *w, uint64_t now, uint64_t deadline) {
  int busy = LOAD(w->L) != NULL;
  uint64_t since = LOAD(w->since);
  if (!w->jobs_told) {
    w->jobs_told = 1;
    ml_lib_thread_stop();
  }
  if (busy && since != LOAD(w->kicked)) {
    STORE(w->kicked, since);
    pthread_kill(w->loop_thread, WATCH_SIGNAL);
  }
  if (now - deadline >= STOP_BOUND_NS && !w->gave_up)
    give_up(w, busy, ml_lib_thread_running(), since);
}

/*
 * The loop has been in one place for --watchdog ms: log it, once; 1 when
 * logged.  Lua code logs itself from its hook, unless two ticks after its
 * signal the hook has still not run: then it is inside a C function.
 */
static int say_stuck(ml_watch *w, uint64_t now, const char *what,
                     uint64_t n) {
  char line[384];
  uint64_t since = w->key, ms = (now - w->key_at) / 1000000u;
  if (w->in_lua) {
    if (LOAD(w->hooked) != since || LOAD(w->hook_ran) == since ||
        now - since < w->limit_ns + 2 * w->period * 1000000u)
      return 0;
    snprintf(line, sizeof line, "watchdog: the loop has been stuck for "
             "%llu ms in %s, inside a C function that Lua code called (the "
             "traceback comes once it returns)", (unsigned long long)ms,
             LOAD(w->what_since) == since ? w->what : "Lua code");
  } else {
    snprintf(line, sizeof line, "watchdog: the loop has been stuck for "
             "%llu ms in C: %s (%llu bytes)", (unsigned long long)ms, what,
             (unsigned long long)n);
  }
  ml_log_direct(MOONLET_LOG_WARN, line);
  return 1;
}

/*
 * Loop lag, from what the loop is in: a Lua resume (the one that began at
 * 'since'), else a labelled callback (the label's seq), else nothing the
 * watchdog can name (waiting for I/O, a host's own code, not running).
 * The same one for --watchdog ms is a stuck loop, which serves no one;
 * no cost falls on the loop thread for this but the labels' stores.
 */
static void check_lag(ml_watch *w, uint64_t now) {
  int in_lua = LOAD(w->L) != NULL;
  uint64_t since = LOAD(w->since), seq, n;
  const char *what;
  char line[96];
  ml_activity_read(&w->act, &what, &n, &seq);
  if (!in_lua && what == NULL)
    seq = 0;
  if (in_lua != w->in_lua || (in_lua ? since : seq) != w->key) {
    if (w->lag_told) {
      snprintf(line, sizeof line, "watchdog: the loop runs again, after "
               "%.3f s", (double)(now - w->key_at) / 1e9);
      ml_log_direct(MOONLET_LOG_WARN, line);
    }
    w->in_lua = in_lua;
    w->key = in_lua ? since : seq;
    w->key_at = in_lua ? since : now;
    w->lag_told = 0;
  } else if (w->key != 0 && !w->lag_told &&
             now - w->key_at >= w->report_ns) {
    w->lag_told = say_stuck(w, now, what, n);
  }
}

static void on_tick(uv_timer_t *t) {
  ml_watch *w = t->data;
  uint64_t now = uv_hrtime(), deadline = LOAD(w->deadline), since;
  lua_State *L;
  if (w->alone && ml_lib_thread_running() == 0) {
    uv_stop(&w->loop);             /* the last thread job has ended */
    return;
  }
  if (w->report_ns && !w->alone)
    check_lag(w, now);             /* first: it sees the signal's effect */
  L = LOAD(w->L);                  /* first: 'since' is then its own */
  since = LOAD(w->since);
  if (L != NULL && w->limit_ns && since != LOAD(w->hooked) &&
      now - since >= w->limit_ns) {
    STORE(w->hooked, since);
    pthread_kill(w->loop_thread, WATCH_SIGNAL);
  }
  if (now >= deadline && stop_under_way(w))
    enforce(w, now, deadline);
}

/*
 * SIGINT or SIGTERM, seen here as well as by the server: the first starts
 * the grace, a second ends it.  A loop busy for a while already cannot
 * say it has seen the signal: this says it.
 */
static void on_stop_signal(uv_signal_t *h, int signum) {
  ml_watch *w = h->data;
  uint64_t now = uv_hrtime(), since, deadline;
  lua_State *L = LOAD(w->L);
  char line[200];
  if (LOAD(w->finished))
    return;
  lower(&w->deadline, ++w->nstops == 1 ? now + w->grace_ns : now);
  retime(w);
  since = LOAD(w->since);
  deadline = LOAD(w->deadline);
  if (L == NULL || now - since < BUSY_AT_SIGNAL_NS)
    return;
  snprintf(line, sizeof line, "watchdog: %s while the loop has been busy "
           "for %llu ms: Lua code still running in %.3g s is stopped",
           signum == SIGINT ? "SIGINT" : "SIGTERM",
           (unsigned long long)((now - since) / 1000000),
           deadline > now ? (double)(deadline - now) / 1e9 : 0.0);
  ml_log_direct(MOONLET_LOG_WARN, line);
}

static void start_signals(ml_watch *w) {
  static const int signums[2] = { SIGINT, SIGTERM };
  int i;
  for (i = 0; i < 2; i++) {
    uv_signal_init(&w->loop, &w->sigs[i]);
    w->sigs[i].data = w;
    uv_signal_start(&w->sigs[i], on_stop_signal, signums[i]);
  }
  w->nsigs = 2;
}

static void close_all(ml_watch *w) {
  int i;
  uv_close((uv_handle_t *)&w->tick, NULL);
  uv_close((uv_handle_t *)&w->wake, NULL);
  for (i = 0; i < w->nsigs; i++)
    uv_close((uv_handle_t *)&w->sigs[i], NULL);
}

/* The loop thread asked for something: to quit, to watch signals, or a
 * stop began or ended; or its server is gone while thread jobs run: the
 * served loop is let go (its host may close it once they end). */
static void on_wake(uv_async_t *a) {
  ml_watch *w = a->data;
  if (LOAD(w->quit)) {
    close_all(w);
    return;
  }
  if (LOAD(w->detach) && !w->alone) {
    w->alone = 1;
    pthread_detach(pthread_self());
    STORE(w->detached, 1);
  }
  if (LOAD(w->want_signals) && w->nsigs == 0)
    start_signals(w);
  retime(w);
}

/*
 * Runs until on_wake closes it all.  Alone (its server gone, thread jobs
 * running), it ends once they end, as the process does: it then makes no
 * more libuv calls, which could race with libuv's own teardown at exit,
 * and leaves its memory to the process's end.
 */
static void *watch_main(void *arg) {
  ml_watch *w = arg;
  uv_run(&w->loop, UV_RUN_DEFAULT);
  return NULL;
}

/* }====================================================== */

/*
** {======================================================
** Around the scheduler's resumes, in the loop thread
** =======================================================
*/

/* Around each lua_resume of the scheduler. */
static void enter(ml_watch *w, lua_State *L, ml_co *co, watch_mark *saved) {
  saved->w = this_thread_watch;
  saved->L = LOAD(w->L);
  saved->co = LOAD(w->co);
  saved->since = LOAD(w->since);
  this_thread_watch = w;
  STORE(w->co, co);
  STORE(w->since, uv_hrtime());
  STORE(w->L, L);
}

static void leave(const watch_mark *saved) {
  ml_watch *w = this_thread_watch;
  STORE(w->L, saved->L);      /* a nested resume gives its caller back */
  STORE(w->co, saved->co);
  STORE(w->since, saved->since);
  this_thread_watch = saved->w;
}

static int hook_resume(ml_resume_hook *h, lua_State *L, ml_co *co,
                       int nargs, int *nres) {
  watch_mark mark;
  int status;
  enter(container_of(h, ml_watch, hook), L, co, &mark);
  status = lua_resume(L, NULL, nargs, nres);
  leave(&mark);
  return status;
}

/*
 * Around a resume of the app's own coroutine L: the watchdog hooks the
 * innermost running thread.  Nothing happens outside the scheduler's
 * resumes.
 */
static void nest(lua_State *L, lua_State **saved) {
  ml_watch *w = this_thread_watch;
  *saved = NULL;
  if (w == NULL || (*saved = LOAD(w->L)) == NULL)
    return;                   /* not inside a resume of the scheduler */
  STORE(w->L, L);
  if (LOAD(w->armed) == LOAD(w->since))
    lua_sethook(L, hook, LUA_MASKCOUNT, 1);
}

static void unnest(lua_State *saved) {
  ml_watch *w = this_thread_watch;
  if (w == NULL || saved == NULL)
    return;
  STORE(w->L, saved);
  if (LOAD(w->armed) == LOAD(w->since))   /* e.g. stopped code: the */
    lua_sethook(saved, hook, LUA_MASKCOUNT, 1);  /* caller meets it next */
}

static int hook_nested(ml_resume_hook *h, lua_State *L, lua_State *from,
                       int nargs, int *nres) {
  lua_State *outer;
  int status;
  (void)h;
  nest(L, &outer);
  status = lua_resume(L, from, nargs, nres);
  unnest(outer);
  return status;
}

/* }====================================================== */

/*
** {======================================================
** The loop thread's side
** =======================================================
*/

static void set_limits(ml_watch *w, const moonlet_config *cfg) {
  double grace = cfg->grace > 0 ? cfg->grace : 0;
  if (cfg->drain_delay > 0)       /* a signal's grace starts after it */
    grace += cfg->drain_delay;
  w->report_ns = cfg->watchdog_ms > 0 ? (uint64_t)cfg->watchdog_ms *
                 1000000u : 0;
  w->budget_ns = cfg->cpu_budget > 0 ? (uint64_t)(cfg->cpu_budget * 1e9)
                 : 0;
  w->limit_ns = w->report_ns;
  if (w->budget_ns && (w->limit_ns == 0 || w->budget_ns < w->limit_ns))
    w->limit_ns = w->budget_ns;
  w->grace_ns = (uint64_t)((grace < 1e9 ? grace : 1e9) * 1e9 + 0.5);
  w->owns_process = cfg->handle_signals;
}

ml_watch *ml_watchdog_start(const moonlet_config *cfg) {
  struct sigaction sa;
  ml_watch *w;
  if ((w = calloc(1, sizeof *w)) == NULL || uv_loop_init(&w->loop) != 0) {
    ml_log(MOONLET_LOG_WARN, "watchdog: out of memory: not started");
    free(w);
    return NULL;
  }
  set_limits(w, cfg);
  w->hook.resume = hook_resume;
  w->hook.nested = hook_nested;
  w->loop_thread = pthread_self();
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_watch_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(WATCH_SIGNAL, &sa, NULL);
  uv_async_init(&w->loop, &w->wake, on_wake);
  w->wake.data = w;
  uv_timer_init(&w->loop, &w->tick);
  w->tick.data = w;
  retime(w);
  if (pthread_create(&w->thread, NULL, watch_main, w) != 0) {
    ml_log(MOONLET_LOG_WARN, "watchdog: cannot start its thread");
    uv_close((uv_handle_t *)&w->tick, NULL);
    uv_close((uv_handle_t *)&w->wake, NULL);
    uv_run(&w->loop, UV_RUN_DEFAULT);
    uv_loop_close(&w->loop);
    free(w);
    return NULL;
  }
  this_thread_watch = w;
  ml_activity_bind(&w->act);
  return w;
}

/*
 * The server is gone, but a stop's thread jobs run on: the watchdog stays,
 * to end the process should they outlast the grace, and frees itself once
 * they end.  Returns once its thread has taken that in.
 */
static void detach(ml_watch *w) {
  struct timespec ms = { 0, 1000000 };
  int i;
  STORE(w->detach, 1);
  uv_async_send(&w->wake);
  for (i = 0; i < 5000 && !LOAD(w->detached); i++)
    nanosleep(&ms, NULL);
}

void ml_watchdog_stop(ml_watch *w) {
  if (w == NULL)
    return;
  if (w->owns_process && stop_under_way(w)) {
    if (this_thread_watch == w) {
      this_thread_watch = NULL;
      ml_activity_bind(NULL);
    }
    detach(w);
    return;
  }
  STORE(w->quit, 1);
  uv_async_send(&w->wake);
  pthread_join(w->thread, NULL);
  uv_loop_close(&w->loop);
  if (this_thread_watch == w) {
    this_thread_watch = NULL;
    ml_activity_bind(NULL);
  }
  free(w);
}

ml_resume_hook *ml_watchdog_hook(ml_watch *w) {
  return w != NULL ? &w->hook : NULL;
}

void ml_watchdog_signals(ml_watch *w) {
  if (w == NULL)
    return;
  STORE(w->want_signals, 1);
  uv_async_send(&w->wake);
}

uint64_t ml_watchdog_stopping(ml_watch *w) {
  uint64_t now = uv_hrtime(), deadline;
  lower(&w->deadline, now + w->grace_ns);
  deadline = LOAD(w->deadline);
  uv_async_send(&w->wake);
  return deadline > now ? (deadline - now + 999999) / 1000000 : 0;
}

void ml_watchdog_stopped(ml_watch *w) {
  if (w == NULL)
    return;
  STORE(w->finished, 1);
  uv_async_send(&w->wake);
}

/* }====================================================== */
