/*
 * server.h - what the rest of the runtime needs from the server: its
 * settings, current generation, and the list of open connections.
 */
#ifndef ML_SERVER_H
#define ML_SERVER_H

#include <uv.h>
#include "moonlet.h"
#include "vm/sched.h"
#include "host/watchdog.h"
#include "host/reload.h"
#include "base/shared.h"

typedef struct ml_conn ml_conn;

/* A host hook run on each new Lua state (moonlet_on_state). */
typedef struct ml_state_hook {
  void (*fn)(lua_State *L, void *ud);
  void *ud;
  struct ml_state_hook *next;
} ml_state_hook;

/* Limits in force: flags, else the app's options, else defaults. */
typedef struct ml_limits {
  size_t max_body, max_url, max_headers;
  uint64_t header_timeout_ms, keepalive_timeout_ms, send_timeout_ms;
} ml_limits;

struct moonlet_server {
  uv_loop_t *loop;
  moonlet_config cfg;
  char *host;                 /* a copy of cfg.host */
  char *access_log;           /* a copy of cfg.access_log */
  char *app_path;
  uv_tcp_t listener;
  int listening;
  ml_gen *gen;                /* the generation new requests go to */
  struct load_job *loading;   /* a reload in progress (server.c) */
  int reload_again;           /* another reload was asked for meanwhile */
  ml_reload *reloader;        /* --reload's file watcher, or NULL */
  ml_limits limits;
  ml_conn *conns;             /* every open connection */
  int nconns;
  ml_state_hook *hooks;
  ml_shared *shared;          /* moonlet.shared: outlives generations */
  ml_watch *watch;            /* the watchdog thread, or NULL */
  int emfile_logged;          /* last second an EMFILE was logged */
  int worker_id;              /* moonlet.worker.id: 1..N (master.c) */
  int reuse_port;             /* listen with SO_REUSEPORT (master.c) */
  char *single_lock;          /* the lock file of {single = true} timers,
                                 NULL with one process (master.c) */
  int single_fd;              /* that file, once opened; -1 */
  uv_signal_t sigs[4];        /* SIGINT, SIGTERM, SIGHUP, SIGUSR1 */
  int nsigs;
  uv_timer_t grace;
  ml_clock *clock;            /* real time for every timer (clock.c) */
  int closing;                /* moonlet_close was called */
  int pending_closes;         /* handles still closing */
  int finished;               /* every connection is gone */
  void (*done)(void *ud);
  void *done_ud;
  struct ml_req *req_pool;    /* idle requests (conn.c) */
  struct ml_wop *wop_pool;    /* idle write operations (conn.c) */
  int req_pooled, wop_pooled;
  char readbuf[65536];        /* shared by every read callback */
};

/* Resolves host:port once, blocking; 0 or a negative error. */
int ml_server_resolve(const char *host, int port,
                      struct sockaddr_storage *ss);

/* A socket bound to sa with SO_REUSEPORT; the fd or a negative error. */
int ml_server_reuseport_socket(const struct sockaddr *sa);

/* Runs the host's on_state hooks on a new state. */
void ml_server_state_hooks(moonlet_server *s, lua_State *L);

/*
 * g serves the app that moonlet.app.serve gave, at 1 to 4 on L's stack:
 * the app table, its router r (the userdata at 2), the dispatch function
 * and the app's options (used when a table).  What g served before is
 * let go.
 */
void ml_server_gen_app(ml_gen *g, lua_State *L, ml_router *r);

/* The Lua module (module.c): g, over the host's own state, is the
 * generation new requests go to; its app's limits apply. */
void ml_server_use_gen(moonlet_server *s, ml_gen *g);

/* The server's real-time clock (libuv time; one uv_timer_t for all its
 * timers): Lua's waits when no virtual clock is on, connection timeouts
 * always.  It lives until the server's handles have closed. */
ml_clock *ml_server_clock(moonlet_server *s);

/* A connection closed; during a graceful stop the last one finishes it. */
void ml_server_conn_closed(moonlet_server *s);

#endif
