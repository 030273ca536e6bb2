/*
 * server.c - the public API of moonlet.h: settings, which generation
 * serves (loading a new one, switching to it), the listening socket,
 * signals and the graceful stop.  Connections are conn.c's; a
 * generation's life is gen.c's, its coroutines sched.c's.
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
#include "base/shared.h"
#include "net/conn.h"
#include "vm/lib.h"
#include "base/log.h"
#include "host/https.h"
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

static void conn_closed(ml_hserver *h, void *ud);

/* The connections' callbacks: the current generation serves each
 * request (lib_req.c). */
static int conn_request(ml_conn *c, void *ud) {
  moonlet_server *s = ud;
  return ml_lib_req_serve(s->gen, c);
}

static void conn_abort(ml_conn *c, void *ud) {
  ML_UNUSED(ud);
  ml_lib_req_abort(c);
}

static const ml_conn_cbs conn_cbs = { conn_request, conn_abort,
                                      conn_closed };

static char *dup_or_null(const char *s) {
  char *d;
  if (s == NULL)
    return NULL;
  if ((d = malloc(strlen(s) + 1)) != NULL)
    strcpy(d, s);
  return d;
}

/* --forwarded-allow-ips: NULL (logged) when it does not parse. */
static ml_trust *trust_of(const moonlet_config *cfg) {
  const char *spec = cfg->forwarded_allow_ips != NULL
                     ? cfg->forwarded_allow_ips : "127.0.0.1,::1";
  char why[80];
  ml_trust *t = ml_trust_parse(spec, why, sizeof why);
  if (t == NULL)
    ml_log(MOONLET_LOG_ERROR, "forwarded_allow_ips: not an address or "
           "range: %s", why);
  return t;
}

/* One of the server's hooks run on each new Lua state (moonlet_on_state). */
struct ml_state_hook {
  void (*fn)(lua_State *L, void *ud);
  void *ud;
  ml_state_hook *next;
};

/* The host's on_state: every hook, in the order they came. */
static void run_state_hooks(void *ud, lua_State *L) {
  moonlet_server *s = ud;
  ml_state_hook *h;
  for (h = s->hooks; h != NULL; h = h->next)
    h->fn(L, h->ud);
}

/* What the server's generations get (gen.h). */
static void init_host(moonlet_server *s) {
  const char *stress = getenv("MOONLET_GC_STRESS");
  ml_host *h = &s->host;
  h->loop = s->loop;
  h->lua_memory = s->cfg.lua_memory;
  h->worker_id = 1;
  h->debug = s->cfg.debug;
  h->gc_stress = stress != NULL && strcmp(stress, "0") != 0;
  h->open_core = luaopen_moonlet_core;
  h->on_state = run_state_hooks;
  h->ud = s;
  h->resume_hook = ml_watchdog_hook(s->watch);
  h->draining = &s->draining;
}

moonlet_server *moonlet_new(uv_loop_t *loop, const moonlet_config *cfg) {
  moonlet_server *s = calloc(1, sizeof *s);
  ml_trust *trust = NULL;
  struct sigaction sa;
  if (s == NULL)
    return NULL;
  s->loop = loop != NULL ? loop : uv_default_loop();
  if (cfg != NULL)
    s->cfg = *cfg;
  else
    moonlet_config_init(&s->cfg);
  s->host_name = dup_or_null(s->cfg.host ? s->cfg.host : "127.0.0.1");
  s->access_log = dup_or_null(s->cfg.access_log);
  s->https = ml_https_new(&s->cfg);
  if (s->host_name == NULL ||
      (s->cfg.access_log != NULL && s->access_log == NULL) ||
      s->https == NULL ||
      (s->host.shared = ml_shared_new(-1, s->cfg.shared_size)) == NULL ||
      (trust = trust_of(&s->cfg)) == NULL ||
      (s->host.clock = ml_clock_new_real(s->loop)) == NULL ||
      (s->conns = ml_conn_hserver_new(s->loop, s->host.clock, &conn_cbs,
                                      s)) == NULL) {
    if (s->host.clock != NULL)
      ml_clock_close(s->host.clock, NULL, NULL);
    ml_shared_free(s->host.shared);
    ml_https_free(s->https);
    ml_trust_free(trust);
    free(s->host_name);
    free(s->access_log);
    free(s);
    return NULL;
  }
  ml_conn_set_proxy(s->conns, trust, s->cfg.proxy_headers,
                    s->cfg.proxy_protocol);
  s->cfg.host = s->host_name;
  s->cfg.access_log = s->access_log;
  s->cfg.tls_cert = s->cfg.tls_key = NULL;  /* https.c has them */
  s->watch = ml_watchdog_start(&s->cfg);   /* NULL: serve without it */
  init_host(s);
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

const ml_host *ml_server_host(moonlet_server *s) {
  return &s->host;
}

int ml_server_set_worker(moonlet_server *s, int id, int shared_fd,
                         int (*single_turn)(void *ud), void *ud) {
  ml_shared *sh = ml_shared_new(shared_fd, s->cfg.shared_size);
  if (sh == NULL)
    return UV_ENOMEM;
  ml_shared_free(s->host.shared);     /* the one store of every worker */
  s->host.shared = sh;
  s->host.worker_id = id;
  s->host.single_turn = single_turn;
  s->host.single_ud = ud;
  s->reuse_port = 1;
  return 0;
}

/* The limits an app's settings ask for (0: not set). */
typedef struct {
  size_t max_body, max_url, max_headers;
  double header_timeout, keepalive_timeout, send_timeout;
} app_limits;

/* A positive number in the settings table on top, or 0. */
static double setting(lua_State *L, const char *k) {
  double v;
  lua_pushstring(L, k);
  v = lua_rawget(L, -2) == LUA_TNUMBER ? lua_tonumber(L, -1) : 0;
  lua_pop(L, 1);
  return v > 0 ? v : 0;
}

/* Reads app.settings of g's app (moonlet.app's options). */
static void read_app_limits(ml_gen *g, app_limits *a) {
  lua_State *L = g->L;
  memset(a, 0, sizeof *a);
  if (!lua_checkstack(L, 3))
    return;
  lua_rawgeti(L, LUA_REGISTRYINDEX, g->app_ref);
  if (lua_type(L, -1) == LUA_TTABLE) {
    lua_pushliteral(L, "settings");
    if (lua_rawget(L, -2) == LUA_TTABLE) {
      a->max_body = (size_t)setting(L, "max_body");
      a->max_url = (size_t)setting(L, "max_url");
      a->max_headers = (size_t)setting(L, "max_headers");
      a->header_timeout = setting(L, "header_timeout");
      a->keepalive_timeout = setting(L, "keepalive_timeout");
      a->send_timeout = setting(L, "send_timeout");
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* A limit in force: the flag, else the app's option, else the default. */
static void set_limits(moonlet_server *s) {
  app_limits app, *g = &app;
  moonlet_config *c = &s->cfg;
  ml_limits lim, *l = &lim;
  double ht, kt, st;
  read_app_limits(s->gen, &app);
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
  ml_conn_set_limits(s->conns, l, c->max_connections);
}

void ml_server_switch(moonlet_server *s, ml_gen *g) {
  ml_gen *old = s->gen;
  s->gen = g;
  set_limits(s);
  if (old != NULL && old != g)
    ml_gen_retire(old);
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

/* Runs in protected mode on a state's main thread: pushes the list of
 * files moonlet.boot saw the app load (the app file first). */
static int push_required(lua_State *L) {
  lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(L, -1, "moonlet.boot");
  lua_getfield(L, -1, "required_files");
  lua_call(L, 0, 1);
  return 1;
}

/* --reload saw a change in one of the app's files. */
static void files_changed(void *ud, const char *file) {
  moonlet_server *s = ud;
  int rc;
  ml_log(MOONLET_LOG_INFO, "%s changed: reloading", file);
  if ((rc = moonlet_reload(s)) != 0)
    ml_log(MOONLET_LOG_ERROR, "cannot reload: %s", moonlet_strerror(rc));
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
      (s->reloader = ml_reload_new(s->loop, files_changed, s)) == NULL) {
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
 * The app has loaded into job->g, or failed to (the error logged with
 * file:line), or the load was cancelled (the server stops).  A reload
 * then switches to the new generation if it loaded, frees the job, and
 * starts the reload asked for meanwhile, if any.
 */
static void load_finished(ml_gen *g, int status, void *ud) {
  load_job *job = ud;
  moonlet_server *s = job->s;
  job->finished = 1;
  job->status = status == UV_ECANCELED ? MOONLET_ELOAD : status;
  if (status != UV_ECANCELED)
    watch_files(s, g, status == 0);
  if (!job->async)
    return;
  s->loading = NULL;
  if (status == UV_ECANCELED) {
    ml_gen_retire(g);
  } else if (end_load(s, job) == 0) {
    ml_log(MOONLET_LOG_INFO, "reloaded %s", s->app_path);
  } else {
    ml_log(MOONLET_LOG_ERROR, "reload failed: still serving the "
           "previous version of %s", s->app_path);
  }
  if (status != UV_ECANCELED)
    ml_https_reread(s);           /* a new certificate, and new options */
  free(job);
  if (s->reload_again && !s->closing) {  /* a change came during the load */
    s->reload_again = 0;
    moonlet_reload(s);
  }
}

/*
 * Starts loading 'path' in a new generation: the app file runs in a
 * coroutine, so it may wait; 'job' says when it has finished.
 */
static int start_load(moonlet_server *s, const char *path, load_job *job,
                      int async) {
  ml_gen *g;
  int rc;
  memset(job, 0, sizeof *job);
  job->s = s;
  job->async = async;
  if ((g = ml_gen_new(&s->host)) == NULL)
    return UV_ENOMEM;
  job->g = g;
  if (async)
    s->loading = job;
  if ((rc = ml_gen_load(g, path, load_finished, job)) != 0) {
    s->loading = NULL;
    ml_gen_retire(g);
  }
  return rc;     /* the load may have finished, and freed 'job', already */
}

/*
 * The load has finished: make the new generation current and retire the
 * old one (its running requests finish on it), or drop the new one.
 */
static int end_load(moonlet_server *s, load_job *job) {
  if (!job->finished) {           /* the loop ran dry while it waited */
    ml_log(MOONLET_LOG_ERROR, "%s: the app never finished loading "
           "(it waits on something that cannot happen)", s->app_path);
    job->status = MOONLET_ELOAD;
  }
  if (job->status != 0) {
    if (job->status == MOONLET_ENOAPP)
      ml_log(MOONLET_LOG_ERROR, "%s: %s", s->app_path,
             moonlet_strerror(job->status));
    ml_gen_retire(job->g);
    return job->status;
  }
  ml_server_switch(s, job->g);
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
  ml_conn_accept(s->conns, listener, ml_https_tls(s));
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
  if ((rc = ml_server_resolve(s->host_name, s->cfg.port, &ss)) != 0 ||
      (rc = ml_https_listen(s)) != 0)
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

const char *moonlet_scheme(moonlet_server *s) {
  return ml_https_tls(s) != NULL ? "https" : "http";
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
  ml_shared_free(s->host.shared);
  ml_conn_hserver_free(s->conns);
  ml_watchdog_stop(s->watch);
  ml_https_free(s->https);      /* open streams hold their own ref */
  free(s->host_name);
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
  if (s->finished || ml_conn_count(s->conns) > 0)
    return;
  if (s->gen != NULL)
    ml_gen_retire(s->gen);
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
  ml_clock_close(s->host.clock, part_closed, s);
  s->host.clock = NULL;
  close_handle(s, (uv_handle_t *)&s->grace);
  if (s->drain_timer_on)
    close_handle(s, (uv_handle_t *)&s->drain);
  for (i = 0; i < s->nsigs; i++)
    close_handle(s, (uv_handle_t *)&s->sigs[i]);
}

ml_clock *ml_server_clock(moonlet_server *s) {
  return s->host.clock;
}

/* A connection closed; during a graceful stop the last one finishes it. */
static void conn_closed(ml_hserver *h, void *ud) {
  moonlet_server *s = ud;
  if (s->closing && ml_conn_count(h) == 0)
    finish_close(s);
}

static void on_grace_over(uv_timer_t *t) {
  moonlet_server *s = container_of(t, moonlet_server, grace);
  ml_log(MOONLET_LOG_WARN, "grace period over: closing %d connection(s)",
         ml_conn_count(s->conns));
  ml_conn_shutdown_all(s->conns, 1);
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
  s->draining = 1;
  if (s->drain_timer_on)
    uv_timer_stop(&s->drain);
  s->done = done;
  s->done_ud = ud;
  if (s->loading != NULL)           /* cancels it; load_finished frees */
    ml_gen_retire(s->loading->g);
  uv_timer_init(s->loop, &s->grace);
  if (s->listening)                 /* no new connections */
    close_handle(s, (uv_handle_t *)&s->listener);
  s->listening = 0;
  grace_ms = s->watch != NULL ? ml_watchdog_stopping(s->watch)
                              : (uint64_t)(s->cfg.grace * 1000 + 0.5);
  uv_timer_start(&s->grace, on_grace_over, grace_ms, 0);
  ml_conn_shutdown_all(s->conns, 0);
  if (ml_conn_count(s->conns) == 0)
    finish_close(s);
}

static void closed(void *ud) {
  *(int *)ud = 1;
}

void ml_server_close_wait(moonlet_server *s) {
  uv_loop_t *loop = s->loop;
  int done = 0;
  moonlet_close(s, closed, &done);
  while (!done && uv_run(loop, UV_RUN_ONCE) != 0)
    ;
}

static void on_drain_over(uv_timer_t *t) {
  moonlet_server *s = container_of(t, moonlet_server, drain);
  ml_log(MOONLET_LOG_INFO, "drain delay over: stopping (grace %.3g s)",
         s->cfg.grace);
  moonlet_close(s, NULL, NULL);
}

/*
 * --drain-delay: the first stop signal only sets moonlet.draining(), so a
 * readiness route answers 503 and the load balancer stops sending new
 * requests; the server serves on, then stops as without it.
 */
static int start_drain(moonlet_server *s, int signum) {
  if (s->cfg.drain_delay <= 0 || s->draining)
    return 0;
  ml_log(MOONLET_LOG_INFO, "%s: draining for %.3g s, then stopping",
         signum == SIGINT ? "SIGINT" : "SIGTERM", s->cfg.drain_delay);
  s->draining = 1;
  uv_timer_init(s->loop, &s->drain);
  s->drain_timer_on = 1;
  uv_timer_start(&s->drain, on_drain_over,
                 (uint64_t)(s->cfg.drain_delay * 1000 + 0.5), 0);
  return 1;
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
  } else if (start_drain(s, signum)) {
    return;
  } else if (!s->closing && !s->draining) {
    ml_log(MOONLET_LOG_INFO, "%s: stopping (grace %.3g s)",
           signum == SIGINT ? "SIGINT" : "SIGTERM", s->cfg.grace);
    moonlet_close(s, NULL, NULL);
  } else {
    ml_log(MOONLET_LOG_WARN, "second signal: closing now");
    moonlet_close(s, NULL, NULL);
    ml_conn_shutdown_all(s->conns, 1);
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
             "moonlet %s (Lua %s.%s.%s, libuv %s, llhttp %d.%d.%d, %s)",
             MOONLET_VERSION, LUA_VERSION_MAJOR, LUA_VERSION_MINOR,
             LUA_VERSION_RELEASE, uv_version_string(), LLHTTP_VERSION_MAJOR,
             LLHTTP_VERSION_MINOR, LLHTTP_VERSION_PATCH, ml_tls_version());
  return v;
}

const char *moonlet_strerror(int err) {
  switch (err) {
  case MOONLET_ELOAD: return "the app failed to load";
  case MOONLET_ENOAPP: return "the app file did not return an app "
                              "(end it with 'return app')";
  case MOONLET_ESTATE: return "not possible now (no app loaded, or "
                              "the server is stopping)";
  case MOONLET_ETLS: return "the TLS settings did not load (the log "
                            "says why)";
  default: return uv_strerror(err);
  }
}
