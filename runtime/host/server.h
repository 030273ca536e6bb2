/*
 * server.h - what the rest of the runtime needs from the server: its
 * settings, current generation, and its connections (conn.c's).
 */
#ifndef ML_SERVER_H
#define ML_SERVER_H

#include <uv.h>
#include "moonlet.h"
#include "net/conn.h"
#include "vm/sched.h"
#include "host/watchdog.h"
#include "host/reload.h"

typedef struct ml_state_hook ml_state_hook;

struct moonlet_server {
  uv_loop_t *loop;
  moonlet_config cfg;
  char *host_name;            /* a copy of cfg.host */
  char *access_log;           /* a copy of cfg.access_log */
  struct ml_https *https;     /* its pair and the listener's TLS
                                 context (https.c) */
  char *app_path;
  uv_tcp_t listener;
  int listening;
  ml_host host;               /* what its generations get: the loop, the
                                 real-time clock, moonlet.shared's store */
  ml_gen *gen;                /* the generation new requests go to */
  struct load_job *loading;   /* a reload in progress (server.c) */
  int reload_again;           /* another reload was asked for meanwhile */
  ml_reload *reloader;        /* --reload's file watcher, or NULL */
  ml_hserver *conns;          /* every open connection (conn.c) */
  ml_state_hook *hooks;
  int draining;               /* a stop began: moonlet.draining() */
  int drain_timer_on;         /* 'drain' runs (--drain-delay) */
  uv_timer_t drain;
  ml_watch *watch;            /* the watchdog thread, or NULL */
  int emfile_logged;          /* last second an EMFILE was logged */
  int reuse_port;             /* listen with SO_REUSEPORT (master.c) */
  uv_signal_t sigs[4];        /* SIGINT, SIGTERM, SIGHUP, SIGUSR1 */
  int nsigs;
  uv_timer_t grace;
  int closing;                /* moonlet_close was called */
  int pending_closes;         /* handles still closing */
  int finished;               /* every connection is gone */
  void (*done)(void *ud);
  void *done_ud;
};

/* Resolves host:port once, blocking; 0 or a negative error. */
int ml_server_resolve(const char *host, int port,
                      struct sockaddr_storage *ss);

/* A socket bound to sa with SO_REUSEPORT; the fd or a negative error. */
int ml_server_reuseport_socket(const struct sockaddr *sa);

/* What the server gives its generations (gen.h); the Lua module makes
 * its own from it. */
const ml_host *ml_server_host(moonlet_server *s);

/*
 * g is the generation new requests go to, and the limits of its app's
 * settings apply; the one before is retired (its running requests
 * finish on it).  For a load that finished (server.c) and for the Lua
 * module, whose one generation serves each app it is given.
 */
void ml_server_switch(moonlet_server *s, ml_gen *g);

/*
 * A worker of --workers (master.c): moonlet.worker.id is 'id',
 * moonlet.shared is the store in the master's memory 'shared_fd' (one
 * for every worker), the listener takes SO_REUSEPORT, and {single =
 * true} timers run when single_turn(ud) says so.  Before moonlet_load.
 * 0, or UV_ENOMEM.
 */
int ml_server_set_worker(moonlet_server *s, int id, int shared_fd,
                         int (*single_turn)(void *ud), void *ud);

/* moonlet_close, then turns the server's loop until the close has
 * finished and the server is freed: for a host about to end. */
void ml_server_close_wait(moonlet_server *s);

/* The server's real-time clock (libuv time; one uv_timer_t for all its
 * timers): Lua's waits when no virtual clock is on, connection timeouts
 * always.  It lives until the server's handles have closed. */
ml_clock *ml_server_clock(moonlet_server *s);

#endif
