/*
 * moonlet.h - the public C API: host moonlet apps on a libuv loop.  This is
 * the only header an embedding program (and the moonlet binary's main())
 * includes.  Everything else in runtime/ is private.
 */
#ifndef MOONLET_H
#define MOONLET_H

#include <stddef.h>
#include <stdio.h>
#include <uv.h>
#include <lua.h>

#define MOONLET_VERSION "0.1.0"

/* Our own error codes sit below libuv's range (which ends near -4096). */
#define MOONLET_ELOAD   (-20001)  /* the app failed to load (logged) */
#define MOONLET_ENOAPP  (-20002)  /* the app file returned no app */
#define MOONLET_ESTATE  (-20003)  /* call out of order (no app, closing) */
#define MOONLET_ETLS    (-20004)  /* the TLS certificate or key did not
                                     load (the reason is logged) */

enum { MOONLET_LOG_DEBUG, MOONLET_LOG_INFO, MOONLET_LOG_WARN,
       MOONLET_LOG_ERROR };

/*
 * Settings.  Zero in a limit means "not set": the app's own option applies,
 * else the default (shown).  moonlet_config_init fills the defaults.
 */
typedef struct moonlet_config {
  const char *host;          /* "127.0.0.1" */
  int port;                  /* 8080; 0 binds an ephemeral port */
  int debug;                 /* tracebacks in 500 bodies */
  int log_level;             /* MOONLET_LOG_INFO */
  const char *access_log;    /* NULL: off; "-": stdout; else a file path */
  const char *access_log_format;  /* "combined" (NULL) or "json" */
  size_t max_body;           /* 1 MiB (413) */
  size_t max_url;            /* 8 KiB request line (414) */
  size_t max_headers;        /* 16 KiB of headers (431) */
  double header_timeout;     /* 10 s to receive a request head (408) */
  double keepalive_timeout;  /* 75 s idle between requests */
  double send_timeout;       /* 60 s: a client that takes none of a
                                response's bytes this long is closed */
  double grace;              /* 10 s for in-flight requests at shutdown */
  int handle_signals;        /* SIGINT/SIGTERM stop, SIGHUP reloads */
  int reload;                /* watch the app's files (--reload) */
  int workers;               /* processes (--workers); 1 */
  int max_connections;       /* 0: no cap; over it, 503 and close */
  int watchdog_ms;           /* 250: log a loop busy this long; <0: off */
  double cpu_budget;         /* 0: off; stop a handler computing this long
                                without waiting (503) */
  size_t lua_memory;         /* 0: no cap on a Lua state's bytes */
  const char *tls_cert;      /* NULL: plain HTTP (unless the app's options
                                name a pair); else HTTPS with this PEM
                                certificate chain, the server's first */
  const char *tls_key;       /* the PEM private key of tls_cert */
  size_t shared_size;        /* moonlet.shared's bytes (16 MiB), fixed
                                when it is first used */
  int proxy_headers;         /* trust Forwarded / X-Forwarded-* from
                                forwarded_allow_ips (--proxy-headers) */
  const char *forwarded_allow_ips;  /* "127.0.0.1,::1": addresses and
                                CIDR ranges, "*" for any */
  int proxy_protocol;        /* a PROXY v1/v2 header starts every
                                connection, from those peers only */
  double drain_delay;        /* 0: off; SIGTERM/SIGINT first serve this
                                long with moonlet.draining() true */
} moonlet_config;

typedef struct moonlet_server moonlet_server;

void moonlet_config_init(moonlet_config *cfg);

/* A server on 'loop' (NULL: uv_default_loop()); NULL if out of memory. */
moonlet_server *moonlet_new(uv_loop_t *loop, const moonlet_config *cfg);

/*
 * Loads the app file into a fresh Lua state.  The file runs in a coroutine,
 * so it may sleep or fetch: the loop runs until it has returned its app.
 * Returns 0 or a negative error; a Lua error is logged with file:line.
 */
int moonlet_load(moonlet_server *s, const char *app_path);

/*
 * Starts accepting connections; returns the bound port or an error.  With
 * a certificate and key (cfg.tls_cert and tls_key, else the app's options
 * of those names) the listener speaks HTTPS only: a pair that does not
 * load is logged and MOONLET_ETLS returned.
 */
int moonlet_listen(moonlet_server *s);

/* "https" when the listener speaks TLS, else "http". */
const char *moonlet_scheme(moonlet_server *s);

/* Calls fn for each new Lua state (every reload too), after the standard
 * libraries and before the app file runs. */
void moonlet_on_state(moonlet_server *s,
                      void (*fn)(lua_State *L, void *ud), void *ud);

/* Loads the app again in a new Lua state; 0 or a negative error.  An
 * HTTPS server also reads its certificate and key again once the load
 * has ended (a pair that does not load is logged, and the old one
 * stays); connections already open keep the pair they began with. */
int moonlet_reload(moonlet_server *s);

/*
 * Graceful stop: no new connections, in-flight requests get up to the
 * grace period, then every handle is closed and 'done' is called (may be
 * NULL).  The server is freed after 'done' returns.  Lua code still
 * computing when the grace is over is stopped with a 503 by the watchdog
 * thread, so the stop finishes.  With cfg.handle_signals the process is
 * the server's: should the loop stay stuck (in a C call) 1 s longer, the
 * watchdog logs it and exits the process with status 3.
 */
void moonlet_close(moonlet_server *s, void (*done)(void *ud), void *ud);

/* One line per route of the loaded app: "METHODS PATTERN NAME". */
int moonlet_write_routes(moonlet_server *s, FILE *out);

/* "moonlet X.Y.Z (Lua 5.4.N, libuv A.B.C, llhttp D.E.F, OpenSSL G.H.I)" */
const char *moonlet_version(void);

/*
 * --workers: serves the app from cfg->workers processes on one port.  A
 * master forks the workers (each with its own loop and Lua state, sharing
 * the port through SO_REUSEPORT), prints the listening line once all of
 * them listen, restarts one that dies, passes SIGHUP on, and on SIGTERM
 * or SIGINT lets them drain (cfg->grace).  Returns the exit status: 0
 * after a stop, 1 when the app cannot load or the port cannot be bound.
 * It forks: call it before making any libuv loop of your own.
 */
int moonlet_run_workers(const moonlet_config *cfg, const char *app_path);

/* The moonlet command line (run, routes, version); returns the exit
 * status: 0, 1 when the app cannot load or listen, 2 for bad usage. */
int moonlet_main(int argc, char **argv);

/* A message for libuv's and moonlet's negative error codes. */
const char *moonlet_strerror(int err);

#endif
