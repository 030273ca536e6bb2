/*
 * server.c - the public API of moonlet.h: settings, loading an app into a
 * generation, the listening socket, signals and the graceful stop.
 * Connections are conn.c's; Lua states and coroutines are sched.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <lauxlib.h>
#include <llhttp.h>
#include "base/clock.h"
#include "net/conn.h"
#include "vm/lib.h"
#include "base/log.h"
#include "host/reload.h"
#include "host/server.h"

/* Connections the kernel queues before accept: a burst of thousands of
 * connects waits here instead of retrying its SYN a second later.  The
 * kernel caps it at net.core.somaxconn (4,096 by default). */
#define LISTEN_BACKLOG 4096

#define DEFAULT_MAX_BODY (1024 * 1024)
#define DEFAULT_MAX_URL (8 * 1024)
#define DEFAULT_MAX_HEADERS (16 * 1024)
#define DEFAULT_HEADER_TIMEOUT 10.0
#define DEFAULT_KEEPALIVE_TIMEOUT 75.0
#define DEFAULT_SEND_TIMEOUT 60.0

void moonlet_config_init(moonlet_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->host = "127.0.0.1";
  cfg->port = 8080;
  cfg->log_level = MOONLET_LOG_INFO;
  cfg->grace = 10.0;
  cfg->workers = 1;
  cfg->watchdog_ms = 250;
}

static char *dup_or_null(const char *s) {
  char *d;
  if (s == NULL)
    return NULL;
  if ((d = malloc(strlen(s) + 1)) != NULL)
    strcpy(d, s);
  return d;
}

moonlet_server *moonlet_new(uv_loop_t *loop, const moonlet_config *cfg) {
  moonlet_server *s = calloc(1, sizeof *s);
  struct sigaction sa;
  if (s == NULL)
    return NULL;
  s->loop = loop != NULL ? loop : uv_default_loop();
  if (cfg != NULL)
    s->cfg = *cfg;
  else
    moonlet_config_init(&s->cfg);
  s->worker_id = 1;
  s->single_fd = -1;
  s->host = dup_or_null(s->cfg.host ? s->cfg.host : "127.0.0.1");
  s->access_log = dup_or_null(s->cfg.access_log);
  if (s->host == NULL ||
      (s->cfg.access_log != NULL && s->access_log == NULL) ||
      (s->shared = ml_shared_new()) == NULL ||
      (s->clock = ml_clock_new_real(s->loop)) == NULL) {
    ml_shared_free(s->shared);
    ml_watchdog_stop(s->watch);
    free(s->host);
    free(s->access_log);
    free(s);
    return NULL;
  }
  s->cfg.host = s->host;
  s->cfg.access_log = s->access_log;
  s->watch = ml_watchdog_start(&s->cfg);   /* NULL: serve without it */
  /* a write to a socket the client closed must fail, not kill us; a host
   * that chose its own SIGPIPE handling keeps it */
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
    signal(SIGPIPE, SIG_IGN);
  ml_log_set_level(s->cfg.log_level);
  return s;
}

void moonlet_on_state(moonlet_server *s,
                      void (*fn)(lua_State *L, void *ud), void *ud) {
  ml_state_hook *h = calloc(1, sizeof *h), **tail = &s->hooks;
  if (h == NULL)
    return;
  h->fn = fn;
  h->ud = ud;
  while (*tail != NULL)          /* hooks run in the order they came */
    tail = &(*tail)->next;
  *tail = h;
}

void ml_server_state_hooks(moonlet_server *s, lua_State *L) {
  ml_state_hook *h;
  for (h = s->hooks; h != NULL; h = h->next)
    h->fn(L, h->ud);
}

/* A limit in force: the flag, else the app's option, else the default. */
static void set_limits(moonlet_server *s) {
  ml_gen *g = s->gen;
  moonlet_config *c = &s->cfg;
  ml_limits *l = &s->limits;
  double ht, kt, st;
  l->max_body = c->max_body ? c->max_body
              : g->max_body ? g->max_body : DEFAULT_MAX_BODY;
  l->max_url = c->max_url ? c->max_url
             : g->max_url ? g->max_url : DEFAULT_MAX_URL;
  l->max_headers = c->max_headers ? c->max_headers
                 : g->max_headers ? g->max_headers : DEFAULT_MAX_HEADERS;
  ht = c->header_timeout > 0 ? c->header_timeout
     : g->header_timeout > 0 ? g->header_timeout : DEFAULT_HEADER_TIMEOUT;
  kt = c->keepalive_timeout > 0 ? c->keepalive_timeout
     : g->keepalive_timeout > 0 ? g->keepalive_timeout
     : DEFAULT_KEEPALIVE_TIMEOUT;
  st = c->send_timeout > 0 ? c->send_timeout
     : g->send_timeout > 0 ? g->send_timeout : DEFAULT_SEND_TIMEOUT;
  l->header_timeout_ms = (uint64_t)(ht * 1000 + 0.5);
  l->send_timeout_ms = (uint64_t)(st * 1000 + 0.5);
  l->keepalive_timeout_ms = (uint64_t)(kt * 1000 + 0.5);
}

void ml_server_use_gen(moonlet_server *s, ml_gen *g) {
  s->gen = g;
  set_limits(s);
}

/*
** {======================================================
** Loading an app into a new generation
** =======================================================
*/

/*
 * One load of the app file into a new generation.  moonlet_load's lives on
 * its stack; a reload's is the server's ('s->loading') until it ends.
 */
typedef struct load_job {
  moonlet_server *s;
  ml_gen *g;
  int finished;
  int status;      /* 0, or why it failed */
  int async;       /* a reload: finish in load_finished, then free it */
} load_job;

static int end_load(moonlet_server *s, load_job *job);

static size_t opt_size(lua_State *L, int t, const char *k) {
  lua_Integer v;
  lua_getfield(L, t, k);
  v = lua_tointeger(L, -1);
  lua_pop(L, 1);
  return v > 0 ? (size_t)v : 0;
}

static double opt_num(lua_State *L, int t, const char *k) {
  double v;
  lua_getfield(L, t, k);
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v > 0 ? v : 0;
}

void ml_server_gen_app(ml_gen *g, lua_State *L, ml_router *r) {
  luaL_unref(L, LUA_REGISTRYINDEX, g->dispatch_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, g->app_ref);
  g->router = r;
  lua_pushvalue(L, 3);
  g->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, 1);            /* the app also keeps the router alive */
  g->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (lua_istable(L, 4)) {
    g->max_body = opt_size(L, 4, "max_body");
    g->max_url = opt_size(L, 4, "max_url");
    g->max_headers = opt_size(L, 4, "max_headers");
    g->header_timeout = opt_num(L, 4, "header_timeout");
    g->keepalive_timeout = opt_num(L, 4, "keepalive_timeout");
    g->send_timeout = opt_num(L, 4, "send_timeout");
  }
}

/* Runs in protected mode on a state's main thread: pushes the list of
 * files moonlet.boot saw the app load (the app file first). */
static int push_required(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "moonlet.boot");
  lua_getfield(L, -1, "required_files");
  lua_call(L, 0, 1);
  return 1;
}

/*
 * --reload: watch the files the load just read.  A good load's files are
 * the new set; a failed one's are added, so that the fix of a broken
 * module is seen too.  The list is read from the new state before it is
 * retired.
 */
static void watch_files(moonlet_server *s, ml_gen *g, int good) {
  lua_State *L = g->L;
  const char **files;
  int i, n, top = lua_gettop(L);
  if (!s->cfg.reload || s->closing)
    return;
  if (s->reloader == NULL &&
      (s->reloader = ml_reload_new(s, s->loop)) == NULL) {
    ml_log(MOONLET_LOG_ERROR, "--reload: out of memory, not watching");
    return;
  }
  lua_pushcfunction(L, push_required);
  if (lua_pcall(L, 0, 1, 0) != LUA_OK || !lua_istable(L, -1)) {
    ml_log(MOONLET_LOG_ERROR, "--reload: no file list: %s",
           lua_isstring(L, -1) ? lua_tostring(L, -1) : "not a table");
    lua_settop(L, top);
    return;
  }
  n = (int)lua_rawlen(L, -1);
  if ((files = calloc((size_t)n + 1, sizeof *files)) != NULL) {
    for (i = 0; i < n; i++) {       /* the table keeps them alive */
      lua_rawgeti(L, top + 1, i + 1);
      files[i] = lua_isstring(L, -1) ? lua_tostring(L, -1) : "";
    }
    if (ml_reload_watch(s->reloader, files, n, good) != 0)
      ml_log(MOONLET_LOG_ERROR, "--reload: out of memory, some files are "
             "not watched");
    free(files);
  }
  lua_settop(L, top);
}

/*
 * The coroutine running moonlet.boot.load_app ended.  When it returned
 * (how == ML_CO_OK) its results are app, router, dispatch, options;
 * otherwise the error was logged (with file:line) or the load cancelled.
 */
static void load_done(ml_co *co, int how) {
  load_job *job = co->data;
  lua_State *L = co->L;
  ml_gen *g = co->gen;
  ml_router *r;
  job->finished = 1;
  if (how != ML_CO_OK) {
    job->status = MOONLET_ELOAD;
    if (how != ML_CO_CANCELLED)
      watch_files(job->s, g, 0);
    return;
  }
  r = ml_lib_router_get(L, 2);
  if (r == NULL || !lua_isfunction(L, 3)) {
    job->status = MOONLET_ENOAPP;
    watch_files(job->s, g, 0);
    return;
  }
  ml_server_gen_app(g, L, r);
  watch_files(job->s, g, 1);
}

/*
 * A reload's coroutine ended: switch to the new generation if it loaded,
 * free the job, and start the reload asked for meanwhile, if any.  A
 * cancelled load (the server is stopping) only frees.
 */
static void load_finished(ml_co *co, int how) {
  load_job *job = co->data;
  moonlet_server *s = job->s;
  load_done(co, how);
  if (!job->async)
    return;
  s->loading = NULL;
  if (how == ML_CO_CANCELLED) {
    ml_sched_gen_retire(job->g);
  } else if (end_load(s, job) == 0) {
    ml_log(MOONLET_LOG_INFO, "reloaded %s", s->app_path);
  } else {
    ml_log(MOONLET_LOG_ERROR, "reload failed: still serving the "
           "previous version of %s", s->app_path);
  }
  free(job);
  if (s->reload_again && !s->closing) {  /* a change came during the load */
    s->reload_again = 0;
    moonlet_reload(s);
  }
}

/*
 * Starts loading 'path' in a new state: moonlet.boot.load_app runs in a
 * coroutine, so the app file may wait; 'job' says when it has finished.
 */
static int start_load(moonlet_server *s, const char *path, load_job *job,
                      int async) {
  ml_gen *g;
  ml_co *co;
  memset(job, 0, sizeof *job);
  job->s = s;
  job->async = async;
  if ((g = ml_sched_gen_new(s, s->loop)) == NULL)
    return UV_ENOMEM;
  if ((co = ml_sched_acquire(g)) == NULL) {
    ml_sched_gen_retire(g);
    return UV_ENOMEM;
  }
  job->g = g;
  if (async)
    s->loading = job;
  lua_getfield(co->L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(co->L, -1, "moonlet.boot");
  lua_getfield(co->L, -1, "load_app");
  lua_replace(co->L, 1);
  lua_settop(co->L, 1);
  lua_pushstring(co->L, path);
  co->done = load_finished;
  co->data = job;
  co->what = "loading the app";
  ml_sched_start(co, 1);   /* may finish, and free an async job, at once */
  return 0;
}

/*
 * The load has finished: make the new generation current and retire the
 * old one (its running requests finish on it), or drop the new one.
 */
static int end_load(moonlet_server *s, load_job *job) {
  ml_gen *old = s->gen;
  if (!job->finished) {           /* the loop ran dry while it waited */
    ml_log(MOONLET_LOG_ERROR, "%s: the app never finished loading "
           "(it waits on something that cannot happen)", s->app_path);
    job->status = MOONLET_ELOAD;
  }
  if (job->status != 0) {
    if (job->status == MOONLET_ENOAPP)
      ml_log(MOONLET_LOG_ERROR, "%s: %s", s->app_path,
             moonlet_strerror(job->status));
    ml_sched_gen_retire(job->g);
    return job->status;
  }
  s->gen = job->g;
  set_limits(s);
  if (old != NULL)
    ml_sched_gen_retire(old);
  return 0;
}

int moonlet_load(moonlet_server *s, const char *app_path) {
  load_job job;
  FILE *f;
  int rc;
  if (s->closing || s->loading != NULL)
    return MOONLET_ESTATE;
  if ((f = fopen(app_path, "r")) == NULL) {
    rc = -errno;
    ml_log(MOONLET_LOG_ERROR, "cannot open %s: %s", app_path, strerror(errno));
    return rc;
  }
  fclose(f);
  free(s->app_path);
  if ((s->app_path = dup_or_null(app_path)) == NULL)
    return UV_ENOMEM;
  if ((rc = start_load(s, app_path, &job, 0)) != 0)
    return rc;
  while (!job.finished && uv_run(s->loop, UV_RUN_ONCE) != 0)
    ;
  return end_load(s, &job);
}

/* }====================================================== */

/*
 * Loads the app file again into a new state while the current one goes
 * on serving; the switch happens when (and only if) the load succeeds.
 * A reload asked for while one is loading runs once that one has ended,
 * so the newest version of the files always wins and loads never pile up.
 */
int moonlet_reload(moonlet_server *s) {
  load_job *job;
  int rc;
  if (s->closing || s->app_path == NULL)
    return MOONLET_ESTATE;
  if (s->loading != NULL) {
    s->reload_again = 1;
    return 0;
  }
  if ((job = malloc(sizeof *job)) == NULL)
    return UV_ENOMEM;
  if ((rc = start_load(s, s->app_path, job, 1)) != 0)
    free(job);
  return rc;
}

/*
** {======================================================
** Listening
** =======================================================
*/

static void on_connection(uv_stream_t *listener, int status) {
  moonlet_server *s = listener->data;
  if (status < 0) {
    /* out of descriptors, libuv accepts and closes the waiting ones (it
     * keeps a spare for that), so the loop does not spin; say so once a
     * second, not once per client */
    int now = (int)(uv_now(s->loop) / 1000);
    if (now != s->emfile_logged) {
      s->emfile_logged = now;
      ml_log(MOONLET_LOG_WARN, "accept: %s", uv_strerror(status));
    }
    return;
  }
  ml_conn_accept(s, listener);
}

static int eai_to_uv(int eai) {
  switch (eai) {
  case EAI_AGAIN: return UV_EAI_AGAIN;
  case EAI_FAMILY: return UV_EAI_FAMILY;
  case EAI_MEMORY: return UV_ENOMEM;
  case EAI_NONAME: return UV_EAI_NONAME;
  case EAI_SERVICE: return UV_EAI_SERVICE;
  default: return UV_EAI_FAIL;
  }
}

/*
 * Resolves host:port: numeric addresses first, then a name lookup.  It
 * blocks and needs no loop: it runs once at start, in the master before
 * any fork too.
 */
int ml_server_resolve(const char *host, int port,
                      struct sockaddr_storage *ss) {
  struct addrinfo hints, *ai;
  int rc;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
    return 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if ((rc = getaddrinfo(host, NULL, &hints, &ai)) != 0)
    return eai_to_uv(rc);
  memset(ss, 0, sizeof *ss);
  memcpy(ss, ai->ai_addr, ai->ai_addrlen);
  if (ss->ss_family == AF_INET6)
    ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
  else
    ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
  freeaddrinfo(ai);
  return 0;
}

/*
 * A TCP socket bound to 'sa' with SO_REUSEPORT, so that several processes
 * (--workers) listen on one port and the kernel spreads connections over
 * them.  libuv 1.44 has no flag for it, hence socket() here and
 * uv_tcp_open after.  The descriptor, or a negative error.
 */
int ml_server_reuseport_socket(const struct sockaddr *sa) {
  socklen_t len = sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                            : sizeof(struct sockaddr_in);
  int fd, one = 1, rc;
  if ((fd = socket(sa->sa_family, SOCK_STREAM, 0)) < 0)
    return -errno;
  if (fcntl(fd, F_SETFD, FD_CLOEXEC) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0 ||
      bind(fd, sa, len) != 0) {
    rc = -errno;
    close(fd);
    return rc;
  }
  return fd;
}

/* Binds the listener: by libuv, or (--workers) on a socket of our own. */
static int bind_listener(moonlet_server *s, const struct sockaddr *sa) {
  int fd, rc;
  if (!s->reuse_port)
    return uv_tcp_bind(&s->listener, sa, 0);
  if ((fd = ml_server_reuseport_socket(sa)) < 0)
    return fd;
  if ((rc = uv_tcp_open(&s->listener, fd)) != 0)
    close(fd);
  return rc;
}

static void on_signal(uv_signal_t *h, int signum);

static void start_signals(moonlet_server *s) {
  static const int signums[4] = { SIGINT, SIGTERM, SIGHUP, SIGUSR1 };
  int i;
  for (i = 0; i < 4; i++) {
    uv_signal_init(s->loop, &s->sigs[i]);
    s->sigs[i].data = s;
    uv_signal_start(&s->sigs[i], on_signal, signums[i]);
    uv_unref((uv_handle_t *)&s->sigs[i]);   /* they don't keep us alive */
  }
  s->nsigs = 4;
  ml_watchdog_signals(s->watch);  /* sees a stop while the loop is stuck */
}

int moonlet_listen(moonlet_server *s) {
  struct sockaddr_storage ss;
  int rc, len = sizeof ss;
  if (s->gen == NULL || s->closing || s->listening)
    return MOONLET_ESTATE;
  if (s->cfg.port < 0 || s->cfg.port > 65535)
    return UV_EINVAL;
  if ((rc = ml_server_resolve(s->host, s->cfg.port, &ss)) != 0)
    return rc;
  uv_tcp_init(s->loop, &s->listener);
  s->listener.data = s;
  s->listening = 1;
  if ((rc = bind_listener(s, (struct sockaddr *)&ss)) != 0 ||
      (rc = uv_listen((uv_stream_t *)&s->listener, LISTEN_BACKLOG,
                      on_connection)) != 0 ||
      (rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss,
                               &len)) != 0)
    return rc;       /* moonlet_close still closes the listener */
  ml_log_access_format(s->cfg.access_log_format);  /* cli.c checked it */
  if (ml_log_access_open(s->access_log) != 0)
    ml_log(MOONLET_LOG_ERROR, "cannot open the access log %s: %s",
           s->access_log, strerror(errno));
  if (s->cfg.handle_signals && s->nsigs == 0)
    start_signals(s);
  return ss.ss_family == AF_INET6
           ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* }====================================================== */

/*
** {======================================================
** Stopping
** =======================================================
*/

/* One of the server's handles (or its file watcher) has closed; the last
 * one after finish_close frees the server and calls 'done'. */
static void release_one(moonlet_server *s) {
  void (*done)(void *) = s->done;
  void *ud = s->done_ud;
  ml_state_hook *hk, *next;
  if (--s->pending_closes > 0 || !s->finished)
    return;
  for (hk = s->hooks; hk != NULL; hk = next) {
    next = hk->next;
    free(hk);
  }
  ml_shared_free(s->shared);
  ml_conn_free_pools(s);
  ml_watchdog_stop(s->watch);
  if (s->single_fd >= 0)
    close(s->single_fd);          /* frees the lock, if we held it */
  free(s->single_lock);
  free(s->host);
  free(s->access_log);
  free(s->app_path);
  free(s);
  if (done != NULL)
    done(ud);
}

static void handle_closed(uv_handle_t *h) {
  release_one(h->data);
}

/* The reloader or the clock has closed. */
static void part_closed(void *ud) {
  release_one(ud);
}

static void close_handle(moonlet_server *s, uv_handle_t *h) {
  s->pending_closes++;
  h->data = s;
  uv_close(h, handle_closed);
}

/* Every connection is gone: close the state and our own handles. */
static void finish_close(moonlet_server *s) {
  int i;
  if (s->finished || s->nconns > 0)
    return;
  if (s->gen != NULL)
    ml_sched_gen_retire(s->gen);
  s->gen = NULL;
  ml_watchdog_stopped(s->watch);
  ml_log_access_close();
  s->finished = 1;        /* the last release_one frees the server */
  if (s->reloader != NULL) {
    s->pending_closes++;
    ml_reload_close(s->reloader, part_closed, s);
    s->reloader = NULL;
  }
  s->pending_closes++;    /* every timer on it has stopped with the state */
  ml_clock_close(s->clock, part_closed, s);
  s->clock = NULL;
  close_handle(s, (uv_handle_t *)&s->grace);
  for (i = 0; i < s->nsigs; i++)
    close_handle(s, (uv_handle_t *)&s->sigs[i]);
}

ml_clock *ml_server_clock(moonlet_server *s) {
  return s->clock;
}

void ml_server_conn_closed(moonlet_server *s) {
  s->nconns--;
  if (s->closing && s->nconns == 0)
    finish_close(s);
}

static void on_grace_over(uv_timer_t *t) {
  moonlet_server *s = container_of(t, moonlet_server, grace);
  ml_log(MOONLET_LOG_WARN, "grace period over: closing %d connection(s)",
         s->nconns);
  ml_conn_shutdown_all(s, 1);
}

/*
 * The grace period runs from the stop's start: when the loop was stuck in
 * Lua as the signal came, the watchdog saw it then, and what is left may
 * be nothing.  Past it, the watchdog also stops Lua code still running.
 */
void moonlet_close(moonlet_server *s, void (*done)(void *ud), void *ud) {
  uint64_t grace_ms;
  if (s->closing)
    return;
  s->closing = 1;
  s->done = done;
  s->done_ud = ud;
  if (s->loading != NULL)           /* cancels it; load_finished frees */
    ml_sched_gen_retire(s->loading->g);
  uv_timer_init(s->loop, &s->grace);
  if (s->listening)                 /* no new connections */
    close_handle(s, (uv_handle_t *)&s->listener);
  s->listening = 0;
  grace_ms = s->watch != NULL ? ml_watchdog_stopping(s->watch)
                              : (uint64_t)(s->cfg.grace * 1000 + 0.5);
  uv_timer_start(&s->grace, on_grace_over, grace_ms, 0);
  ml_conn_shutdown_all(s, 0);
  if (s->nconns == 0)
    finish_close(s);
}

static void on_signal(uv_signal_t *h, int signum) {
  moonlet_server *s = h->data;
  if (signum == SIGHUP) {
    ml_log(MOONLET_LOG_INFO, "SIGHUP: reloading %s", s->app_path);
    moonlet_reload(s);
  } else if (signum == SIGUSR1) {       /* logrotate moved the file */
    if (ml_log_access_reopen() != 0)
      ml_log(MOONLET_LOG_ERROR, "SIGUSR1: cannot reopen the access log "
             "%s: %s; still writing to the old file", s->access_log,
             strerror(errno));
    else
      ml_log(MOONLET_LOG_INFO, "SIGUSR1: reopened the access log");
  } else if (!s->closing) {
    ml_log(MOONLET_LOG_INFO, "%s: stopping (grace %.3g s)",
           signum == SIGINT ? "SIGINT" : "SIGTERM", s->cfg.grace);
    moonlet_close(s, NULL, NULL);
  } else {
    ml_log(MOONLET_LOG_WARN, "second signal: closing now");
    ml_conn_shutdown_all(s, 1);
  }
}

/* }====================================================== */

int moonlet_write_routes(moonlet_server *s, FILE *out) {
  lua_State *L;
  int rc = 0;
  if (s->gen == NULL)
    return MOONLET_ESTATE;
  L = s->gen->L;
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "moonlet.app");
  lua_getfield(L, -1, "route_lines");
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->gen->app_ref);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    ml_log(MOONLET_LOG_ERROR, "routes: %s", lua_tostring(L, -1));
    rc = MOONLET_ELOAD;
  } else {
    fputs(lua_tostring(L, -1), out);
  }
  lua_pop(L, 3);
  return rc;
}

const char *moonlet_version(void) {
  static char v[128];
  if (v[0] == '\0')
    snprintf(v, sizeof v,
             "moonlet %s (Lua %s.%s.%s, libuv %s, llhttp %d.%d.%d)",
             MOONLET_VERSION, LUA_VERSION_MAJOR, LUA_VERSION_MINOR,
             LUA_VERSION_RELEASE, uv_version_string(), LLHTTP_VERSION_MAJOR,
             LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH);
  return v;
}

const char *moonlet_strerror(int err) {
  switch (err) {
  case MOONLET_ELOAD: return "the app failed to load";
  case MOONLET_ENOAPP: return "the app file did not return an app "
                              "(end it with 'return app')";
  case MOONLET_ESTATE: return "not possible now (no app loaded, or "
                              "the server is stopping)";
  default: return uv_strerror(err);
  }
}
