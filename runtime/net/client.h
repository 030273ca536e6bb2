/*
 * client.h - outbound HTTP/1.1 and HTTPS on the server's loop: name
 * lookups off the loop, connections (streams, stream.h) kept alive in a
 * pool per scheme, host, port and TLS options, responses parsed with
 * llhttp, each exchange's deadline on the caller's clock.  Pure C: what
 * Lua sees of it is lib_http.c's.
 */
#ifndef ML_CLIENT_H
#define ML_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "base/clock.h"

typedef struct ml_client ml_client;
typedef struct ml_hreq ml_hreq;

/* An https exchange's TLS options; strings are copied. */
typedef struct {
  int verify;                /* check the certificate chain and the name */
  const char *ca_file;       /* trust this bundle instead of the system's */
  const char *cert, *key;    /* a client certificate (key: the cert file
                                when NULL) */
  const char *server_name;   /* SNI and the name checked, if not the host */
} ml_client_tls;

/* One exchange to start. */
typedef struct {
  const char *host;          /* a name or a numeric address; copied */
  int port;
  const char *data;          /* the whole request, head and body: not
                                copied, so it must stay as it is until
                                'done' is called or the exchange is
                                cancelled */
  size_t len;
  uint64_t timeout_ms;       /* bounds the whole exchange */
  size_t max_body;           /* larger responses fail with "too large" */
  int head;                  /* a HEAD request: the response has no body */
  int idempotent;            /* may be sent again on a fresh connection */
  size_t ud_size;            /* bytes of caller's memory in the exchange */
  const ml_client_tls *tls;  /* NULL: plain HTTP */
  ml_clock *clock;           /* where the deadline is an entry: a virtual
                                clock moves it in tests */
} ml_hreq_opts;

/* Its outcome, valid while the 'done' callback runs. */
typedef struct {
  const char *err;           /* NULL, or "timeout", "connection refused",
                                "dns: <reason>", "closed", "too large",
                                "bad response", "connect: <reason>",
                                "tls: <reason>" */
  int status;
  const char *headers;       /* nheaders pairs "name\0value\0" */
  size_t headers_len;        /* their bytes, the last NUL included */
  int nheaders;
  const char *body;
  size_t body_len;
} ml_hres;

typedef void (*ml_hreq_done)(ml_hreq *r, const ml_hres *res, void *ud);

/* A pool on 'loop'; NULL when out of memory. */
ml_client *ml_client_new(uv_loop_t *loop);

/*
 * Closes the idle connections; the client frees itself once its last
 * connection and exchange are gone.  Exchanges still running go on.
 */
void ml_client_close(ml_client *c);

/*
 * Starts an exchange; 'done' is called exactly once, from a loop callback,
 * unless the exchange is cancelled first.  'ud' is passed to 'done'; NULL
 * passes the exchange's own o->ud_size bytes (zeroed, aligned for any
 * type), which live until 'done' returns or ml_client_cancel has been
 * called, and which ml_client_ud gives too.  NULL when out of memory.
 */
ml_hreq *ml_client_request(ml_client *c, const ml_hreq_opts *o,
                           ml_hreq_done done, void *ud);

/* The exchange's o->ud_size bytes of caller's memory. */
void *ml_client_ud(ml_hreq *r);

/* Abandons an exchange: 'done' will not be called, and its request
 * bytes are no longer needed.  Its connection is closed, never pooled
 * half-used; or, when the request went out, the response is read and
 * dropped in the background (up to 250 ms and 64 KiB), and the
 * connection pooled once it is complete. */
void ml_client_cancel(ml_hreq *r);

/* Connections opened so far (each an https handshake), for tests of the
 * pool. */
uint64_t ml_client_connects(ml_client *c);

/* How long a connection stays idle in the pool before it is closed:
 * 30 s; tests make it shorter. */
void ml_client_set_idle(ml_client *c, uint64_t ms);

#endif
