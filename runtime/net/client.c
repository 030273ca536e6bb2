/*
 * client.c - outbound HTTP/1.1 and HTTPS: uv_getaddrinfo (on libuv's
 * thread pool), a stream (stream.h: TCP, TLS when https), the request
 * written in one go, the response parsed with llhttp (Content-Length,
 * chunked, close-delimited; 1xx skipped; no body for HEAD, 204, 304), and
 * a pool of kept-alive connections per scheme, host, port and TLS options.
 *
 * An exchange (ml_hreq) owns its name lookup; a connection (hconn)
 * belongs to the pool while idle and to one exchange while in use, and
 * keeps the buffer responses are parsed into from one exchange to the
 * next.  A connection that ends an exchange in any state but "response
 * complete, request written, keep-alive" is closed, so the pool never
 * hands out a half-used one.  A cancelled exchange whose request went
 * out drains first: its response, if small and quick, is read and
 * dropped, so a handler whose client left does not cost its connection
 * (a fan-in whose clients come and go would otherwise reconnect, and
 * with TLS handshake, for every one that left).
 *
 * Each exchange's deadline is an entry on the clock its caller gives (a
 * virtual one under moonlet.testing's virtual time), so no libuv timer
 * per exchange; idle connections wait in release order (each pool's
 * oldest last) under one libuv timer, which no Lua program can observe.
 * TLS contexts are made once per set of options and kept by the client;
 * each pool keeps the last session its server gave, for resumption.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "net/client.h"
#include "net/stream.h"
#include "base/util.h"

#define MAX_IDLE 1024              /* idle connections kept per host:port:
                                      a fan-in of many concurrent calls to
                                      one backend must not churn them */
#define IDLE_MS 30000              /* then closed (ml_client_set_idle) */
#define MAX_HEADERS 65536          /* response head larger: bad response */
#define RESP_KEEP 16384            /* a larger response buffer is not kept
                                      for the connection's next exchange */
#define DRAIN_MS 250               /* a cancelled exchange's response may
                                      still finish this long, */
#define DRAIN_BODY 65536           /* up to this big, to keep its
                                      connection: cheaper than a new one
                                      (with TLS, a handshake) */

typedef struct hconn hconn;

/* A TLS context and the options it was made with; the client's. */
typedef struct tlsctx {
  struct tlsctx *next;
  ml_tls *tls;
  int verify;
  char *ca_file, *cert, *key;     /* NULL or copies */
} tlsctx;

/* The idle connections to one scheme, host, port and set of TLS options,
 * the most recent first. */
typedef struct pool {
  struct pool *next;
  hconn *idle, *idle_last;
  int nidle;
  int port;
  tlsctx *tls;                    /* NULL: plain HTTP */
  char *server_name;              /* NULL: the host */
  SSL_SESSION *session;           /* the last one its server gave */
  struct sockaddr_storage addr;   /* the last address resolved */
  int has_addr;
  char host[];
} pool;

struct ml_client {
  uv_loop_t *loop;
  pool *pools;
  tlsctx *tlsctxs;
  uv_timer_t sweep;               /* closes idle connections; unref'd */
  uint64_t sweep_at;              /* when it fires; 0: not started */
  uint64_t idle_ms;               /* an idle connection's life */
  ml_hreq *drain, *drain_last;    /* cancelled exchanges draining, the
                                     oldest first (due in that order) */
  int nconns;                     /* open connections */
  int nreqs;                      /* exchanges not yet freed */
  unsigned closing : 1;
  unsigned freeing : 1;
  uint64_t connects;
  char readbuf[65536];            /* shared by every read callback */
};

struct hconn {
  ml_stream s;                    /* the socket, TLS when https */
  llhttp_t parser;
  ml_client *client;
  pool *pool;
  ml_hreq *req;                   /* the exchange using it; NULL if idle */
  ml_buf resp;                    /* the response: its header pairs, then
                                     its body */
  ml_buf trailers;                /* the pairs after a chunked body */
  hconn *next, *prev;             /* the pool's idle list */
  uint64_t idle_since;            /* loop time it went idle */
  unsigned closing : 1;
  unsigned idle : 1;              /* in its pool's idle list */
  unsigned reused : 1;            /* served an exchange before this one */
};

struct ml_hreq {
  ml_client *client;
  pool *pool;
  uv_getaddrinfo_t dns;
  ml_ctimer timer;                /* the deadline, or a deferred failure */
  ml_hreq *dnext, *dprev;         /* the client's drain list */
  uint64_t drain_until;           /* loop time a drain gives up */
  hconn *conn;
  const char *data;               /* the request, the caller's */
  size_t len;
  ml_hreq_done done;
  void *ud;
  int pending;                    /* a name lookup in flight */
  /* the response as it arrives, in its connection's 'resp' */
  int status;
  size_t headers_len;             /* the header pairs' bytes */
  int nheaders;
  size_t max_body;
  const char *err;
  char errbuf[160];
  char early_buf[160];
  unsigned head : 1;
  unsigned idempotent : 1;
  unsigned retried : 1;
  unsigned got_bytes : 1;         /* some of the response arrived */
  unsigned in_body : 1;           /* past the head: pairs are trailers */
  unsigned complete : 1;          /* the final response is complete */
  unsigned extra_bytes : 1;       /* bytes came after the response */
  unsigned finished : 1;
  unsigned cancelled : 1;
  unsigned starting : 1;          /* inside ml_client_request */
  unsigned sent : 1;              /* the request went to the stream */
  unsigned draining : 1;          /* cancelled, in the drain list */
  const char *early_err;          /* a failure while starting, deferred */
  union {                         /* the caller's o->ud_size bytes */
    long double d;
    void *p;
    long long l;
  } ud_area[];
};

static void finish(ml_hreq *r, const char *err);
static void start_connect(ml_hreq *r);
static void send_request(hconn *c);

/*
** {======================================================
** The client and its pools
** =======================================================
*/

ml_client *ml_client_new(uv_loop_t *loop) {
  ml_client *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  c->loop = loop;
  c->idle_ms = IDLE_MS;
  uv_timer_init(loop, &c->sweep);
  uv_unref((uv_handle_t *)&c->sweep);
  return c;
}

uint64_t ml_client_connects(ml_client *c) {
  return c->connects;
}

void ml_client_set_idle(ml_client *c, uint64_t ms) {
  c->idle_ms = ms;
}

static void client_closed(uv_handle_t *h) {
  ml_client *c = h->data;
  pool *p, *next;
  tlsctx *t, *tnext;
  for (p = c->pools; p != NULL; p = next) {
    next = p->next;
    SSL_SESSION_free(p->session);
    free(p->server_name);
    free(p);
  }
  for (t = c->tlsctxs; t != NULL; t = tnext) {
    tnext = t->next;
    ml_tls_free(t->tls);
    free(t->ca_file);
    free(t->cert);
    free(t->key);
    free(t);
  }
  free(c);
}

/* Frees the client, through its timer's close callback, once it is
 * closing and nothing of it is left. */
static void client_maybe_free(ml_client *c) {
  if (!c->closing || c->freeing || c->nconns > 0 || c->nreqs > 0)
    return;
  c->freeing = 1;
  c->sweep.data = c;
  uv_close((uv_handle_t *)&c->sweep, client_closed);
}

/* NULL-safe string equality, and copy. */
static int same(const char *a, const char *b) {
  return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int dup_into(char **to, const char *s) {
  *to = NULL;
  return s != NULL && (*to = strdup(s)) == NULL ? -1 : 0;
}

/*
 * The client's TLS context for these options, made on first use (loading
 * a CA bundle takes milliseconds: once per set of options).  NULL with
 * "tls: <reason>" in err.
 */
static tlsctx *find_tls(ml_client *c, const ml_client_tls *o, char *err,
                        size_t errlen) {
  ml_tls_opts to;
  tlsctx *t;
  int verify = o->verify != 0;
  for (t = c->tlsctxs; t != NULL; t = t->next)
    if (t->verify == verify && same(t->ca_file, o->ca_file) &&
        same(t->cert, o->cert) && same(t->key, o->key))
      return t;
  memset(&to, 0, sizeof to);
  to.verify = verify;
  to.ca_file = o->ca_file;
  to.cert = o->cert;
  to.key = o->key;
  to.alpn = "http/1.1";
  if ((t = calloc(1, sizeof *t)) == NULL ||
      dup_into(&t->ca_file, o->ca_file) != 0 ||
      dup_into(&t->cert, o->cert) != 0 || dup_into(&t->key, o->key) != 0) {
    snprintf(err, errlen, "tls: not enough memory");
  } else if ((t->tls = ml_tls_new(&to, err, errlen)) != NULL) {
    t->verify = verify;
    t->next = c->tlsctxs;
    c->tlsctxs = t;
    return t;
  }
  if (t != NULL) {
    free(t->ca_file);
    free(t->cert);
    free(t->key);
    free(t);
  }
  return NULL;
}

/* The pool for scheme, host, port and TLS options, made on first use;
 * NULL when out of memory. */
static pool *find_pool(ml_client *c, const char *host, int port,
                       tlsctx *tls, const char *server_name) {
  pool *p;
  size_t n;
  for (p = c->pools; p != NULL; p = p->next)
    if (p->port == port && p->tls == tls && strcmp(p->host, host) == 0 &&
        (tls == NULL || same(p->server_name, server_name)))
      return p;
  n = strlen(host) + 1;
  if ((p = calloc(1, sizeof *p + n)) == NULL)
    return NULL;
  if (tls != NULL && dup_into(&p->server_name, server_name) != 0) {
    free(p);
    return NULL;
  }
  memcpy(p->host, host, n);
  p->port = port;
  p->tls = tls;
  p->next = c->pools;
  c->pools = p;
  return p;
}

/* }====================================================== */

/*
** {======================================================
** Connections
** =======================================================
*/

static void conn_closed(ml_stream *s) {
  hconn *c = container_of(s, hconn, s);
  ml_client *cl = c->client;
  ml_buf_free(&c->resp);
  ml_buf_free(&c->trailers);
  free(c);
  cl->nconns--;
  client_maybe_free(cl);
}

static void unlink_idle(hconn *c) {
  pool *p = c->pool;
  if (!c->idle)
    return;
  c->idle = 0;
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    p->idle = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  else
    p->idle_last = c->prev;
  c->next = c->prev = NULL;
  p->nidle--;
}

/* Closes a connection, idle or in use; idempotent. */
static void conn_close(hconn *c) {
  if (c->closing)
    return;
  c->closing = 1;
  unlink_idle(c);
  c->req = NULL;
  ml_stream_close(&c->s);
}

static void on_sweep(uv_timer_t *t);

/* Starts the sweep for 'at' unless it is due sooner. */
static void sweep_at(ml_client *cl, uint64_t at) {
  uint64_t now = uv_now(cl->loop);
  if (cl->sweep_at != 0 && cl->sweep_at <= at)
    return;
  cl->sweep_at = at;
  uv_timer_start(&cl->sweep, on_sweep, at > now ? at - now : 0, 0);
}

/* Closes the connections idle for idle_ms, each pool's oldest first,
 * and those whose drain took too long, and starts again for the next
 * to go. */
static void on_sweep(uv_timer_t *t) {
  ml_client *cl = container_of(t, ml_client, sweep);
  uint64_t now = uv_now(cl->loop), next = 0;
  pool *p;
  hconn *c;
  cl->sweep_at = 0;
  while (cl->drain != NULL && cl->drain->drain_until <= now)
    finish(cl->drain, "timeout");          /* closes its connection */
  if (cl->drain != NULL)
    next = cl->drain->drain_until;
  for (p = cl->pools; p != NULL; p = p->next) {
    while ((c = p->idle_last) != NULL && c->idle_since + cl->idle_ms <= now)
      conn_close(c);
    if (c != NULL && (next == 0 || c->idle_since + cl->idle_ms < next))
      next = c->idle_since + cl->idle_ms;
  }
  if (next != 0)
    sweep_at(cl, next);
}

/*
 * The exchange is over and the response was complete: keep the
 * connection for the next exchange to that host, quietly (unref'd: an
 * idle pool does not keep the loop running), or close it.  One still
 * writing the request (the server answered before reading it all) is
 * closed: the rest of that request would go before the next one.
 */
static void conn_release(hconn *c, int reusable) {
  pool *p = c->pool;
  c->req = NULL;
  if (!reusable || ml_stream_pending(&c->s) > 0 || c->client->closing ||
      p->nidle >= MAX_IDLE) {
    conn_close(c);
    return;
  }
  c->reused = 1;
  c->idle = 1;
  c->prev = NULL;
  c->next = p->idle;
  if (p->idle != NULL)
    p->idle->prev = c;
  else
    p->idle_last = c;
  p->idle = c;
  p->nidle++;
  c->idle_since = uv_now(c->client->loop);
  sweep_at(c->client, c->idle_since + c->client->idle_ms);
  ml_stream_trim(&c->s);
  uv_unref((uv_handle_t *)&c->s.tcp);
}

/* The most recently used idle connection to r's host, or NULL. */
static hconn *conn_take(ml_hreq *r) {
  hconn *c = r->pool->idle;
  if (c == NULL)
    return NULL;
  unlink_idle(c);
  uv_ref((uv_handle_t *)&c->s.tcp);
  llhttp_reset(&c->parser);      /* paused at the last response's end */
  c->req = r;
  r->conn = c;
  return c;
}

/* }====================================================== */

/*
** {======================================================
** Parsing the response
** =======================================================
*/

#define CONN(p) ((hconn *)(p)->data)
#define REQ(p) (CONN(p)->req)

static int on_message_begin(llhttp_t *p) {
  ml_hreq *r = REQ(p);
  CONN(p)->resp.len = 0;       /* a final response after a 1xx */
  CONN(p)->trailers.len = 0;
  r->nheaders = 0;
  r->in_body = 0;
  return 0;
}

/* ml_buf_append, inline while the buffer has room: the parser calls
 * back four times per header. */
static int put(ml_buf *b, const char *at, size_t len) {
  if (len == 0 || b->cap - b->len < len)
    return ml_buf_append(b, at, len);
  memcpy(b->data + b->len, at, len);
  b->len += len;
  return 0;
}

/* Where header pairs go: the head's before the body, trailers aside. */
static ml_buf *pairs_buf(llhttp_t *p) {
  return REQ(p)->in_body ? &CONN(p)->trailers : &CONN(p)->resp;
}

static int on_header_data(llhttp_t *p, const char *at, size_t len) {
  ml_hreq *r = REQ(p);
  hconn *c = CONN(p);
  if ((r->in_body ? r->headers_len : c->resp.len) + c->trailers.len + len >
      MAX_HEADERS)
    return -1;
  return put(pairs_buf(p), at, len);
}

static int on_header_field_complete(llhttp_t *p) {
  return put(pairs_buf(p), "", 1);                 /* name\0 */
}

static int on_header_value_complete(llhttp_t *p) {
  REQ(p)->nheaders++;
  return put(pairs_buf(p), "", 1);                 /* value\0 */
}

/* 1 tells llhttp there is no body: HEAD, 204 and 304 have none. */
static int on_headers_complete(llhttp_t *p) {
  ml_hreq *r = REQ(p);
  r->status = p->status_code;
  r->headers_len = CONN(p)->resp.len;   /* the body follows */
  r->in_body = 1;
  if (r->status >= 100 && r->status < 200)
    return 0;
  if (r->head || r->status == 204 || r->status == 304)
    return 1;
  if ((p->flags & F_CONTENT_LENGTH) && p->content_length > r->max_body) {
    r->err = "too large";      /* known from the head: don't read it */
    return -1;
  }
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  ml_hreq *r = REQ(p);
  ml_buf *b = &CONN(p)->resp;
  if (b->len - r->headers_len + len > r->max_body) {
    r->err = "too large";
    return -1;
  }
  return put(b, at, len);
}

static int on_message_complete(llhttp_t *p) {
  ml_hreq *r = REQ(p);
  if (r->status >= 100 && r->status < 200 && r->status != 101)
    return 0;                  /* an interim response: the real one follows */
  r->complete = 1;
  return HPE_PAUSED;
}

static const llhttp_settings_t settings = {
  .on_message_begin = on_message_begin,
  .on_header_field = on_header_data,
  .on_header_value = on_header_data,
  .on_header_field_complete = on_header_field_complete,
  .on_header_value_complete = on_header_value_complete,
  .on_headers_complete = on_headers_complete,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/* }====================================================== */

/*
** {======================================================
** Reading and writing
** =======================================================
*/

static void on_alloc(ml_stream *s, uv_buf_t *buf) {
  hconn *c = container_of(s, hconn, s);
  buf->base = c->client->readbuf;
  buf->len = sizeof c->client->readbuf;
}

/* Sends the exchange again on a fresh connection: the pooled one it
 * tried had been closed by the server meanwhile. */
static int retry(ml_hreq *r) {
  hconn *c = r->conn;
  if (!c->reused || r->got_bytes || !r->idempotent || r->retried ||
      r->cancelled)                /* its request may be gone */
    return 0;
  r->retried = 1;
  r->conn = NULL;
  conn_close(c);
  start_connect(r);
  return 1;
}

/*
 * The connection ended during an exchange, or while idle in the pool.  A
 * close-delimited body is complete only at a clean end: a FIN, or with
 * TLS the server's close_notify (ML_STREAM_ETRUNC, a FIN without it, may
 * have cut the body short: "closed").
 */
static void on_end(ml_stream *s, int status) {
  hconn *c = container_of(s, hconn, s);
  ml_hreq *r = c->req;
  llhttp_errno_t e;
  if (c->closing)
    return;
  if (r == NULL) {             /* idle: the server closed */
    conn_close(c);
    return;
  }
  if (status == UV_EOF && r->got_bytes &&
      llhttp_message_needs_eof(&c->parser)) {
    /* llhttp_finish returns what on_message_complete did: HPE_PAUSED */
    e = llhttp_finish(&c->parser);
    if ((e == HPE_OK || e == HPE_PAUSED) && r->complete) {
      finish(r, NULL);         /* a close-delimited body */
      return;
    }
  }
  if (status == ML_STREAM_ETLS)  /* an alert: say which */
    finish(r, ml_stream_strerror(s, status, r->errbuf, sizeof r->errbuf));
  else if (!retry(r))
    finish(r, "closed");
}

static void on_read(ml_stream *s, const char *data, size_t len) {
  hconn *c = container_of(s, hconn, s);
  ml_hreq *r = c->req;
  llhttp_errno_t e;
  if (c->closing)
    return;
  if (r == NULL) {             /* idle: the server spoke */
    conn_close(c);
    return;
  }
  r->got_bytes = 1;
  e = llhttp_execute(&c->parser, data, len);
  if (e == HPE_PAUSED) {
    /* complete; bytes after it: the connection cannot be trusted again */
    r->extra_bytes = llhttp_get_error_pos(&c->parser) != data + len;
    finish(r, NULL);
  } else if (e != HPE_OK) {
    finish(r, r->err != NULL ? r->err : "bad response");
  }
}

/*
 * The request in one write: the stream sends it straight from the
 * caller's bytes (encrypted first with TLS) and copies only what the
 * socket did not take.  A write that fails later ends the stream, which
 * on_end hears.
 */
static void send_request(hconn *c) {
  ml_hreq *r = c->req;
  if (ml_stream_write(&c->s, r->data, r->len) == 0)
    r->sent = 1;
  else if (!retry(r))
    finish(r, "closed");
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

/* The short message for a failed connect, handshake or lookup. */
static const char *connect_error(ml_hreq *r, ml_stream *s, int status) {
  if (status == UV_ECONNREFUSED)
    return "connection refused";
  if (status == UV_ETIMEDOUT)
    return "timeout";
  if (status == ML_STREAM_ETLS && s != NULL)
    return ml_stream_strerror(s, status, r->errbuf, sizeof r->errbuf);
  snprintf(r->errbuf, sizeof r->errbuf, "connect: %s", uv_strerror(status));
  return r->errbuf;
}

/* Connected, and with TLS the handshake done and the server verified. */
static void on_connect(ml_stream *s, int status) {
  hconn *c = container_of(s, hconn, s);
  if (c->closing || c->req == NULL)
    return;                    /* abandoned meanwhile */
  if (status < 0) {
    finish(c->req, connect_error(c->req, s, status));
    return;
  }
  if (ml_stream_read_start(s) != 0) {
    finish(c->req, "closed");
    return;
  }
  send_request(c);
}

/* The server gave a session (a TLS 1.3 ticket may come after the
 * handshake): the pool's next connection offers it. */
static void on_session(ml_stream *s, SSL_SESSION *sess) {
  pool *p = container_of(s, hconn, s)->pool;
  SSL_SESSION_free(p->session);
  p->session = sess;
}

static const ml_stream_cbs conn_cbs = {
  on_alloc, on_read, on_end, on_connect, NULL, NULL, on_session,
  conn_closed
};

/* A new connection for r to the address its pool has resolved. */
static void connect_to(ml_hreq *r) {
  ml_client *cl = r->client;
  pool *p = r->pool;
  hconn *c = calloc(1, sizeof *c);
  int rc;
  if (c == NULL) {
    finish(r, "connect: not enough memory");
    return;
  }
  if ((rc = ml_stream_init(cl->loop, &c->s, &conn_cbs, NULL)) != 0) {
    free(c);
    finish(r, connect_error(r, NULL, rc));
    return;
  }
  c->client = cl;
  c->pool = p;
  llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
  c->parser.data = c;
  cl->nconns++;
  cl->connects++;
  c->req = r;
  r->conn = c;
  rc = ml_stream_connect(&c->s, (const struct sockaddr *)&p->addr,
                         p->tls != NULL ? p->tls->tls : NULL,
                         p->server_name != NULL ? p->server_name : p->host,
                         p->session);
  if (rc != 0)
    finish(r, connect_error(r, NULL, rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  ml_hreq *r = container_of(req, ml_hreq, dns);
  r->pending--;
  if (r->finished) {           /* timed out or cancelled meanwhile */
    uv_freeaddrinfo(res);
    finish(r, NULL);           /* only releases */
    return;
  }
  if (status < 0 || res == NULL) {
    snprintf(r->errbuf, sizeof r->errbuf, "dns: %s", uv_strerror(status));
    uv_freeaddrinfo(res);
    finish(r, r->errbuf);
    return;
  }
  memcpy(&r->pool->addr, res->ai_addr, res->ai_addrlen);
  r->pool->has_addr = 1;
  uv_freeaddrinfo(res);
  connect_to(r);
}

/* Looks the host up (off the loop), then connects.  A numeric address
 * needs no lookup, nor a trip through libuv's small thread pool. */
static void start_connect(ml_hreq *r) {
  pool *p = r->pool;
  struct addrinfo hints;
  char port[16];
  int rc;
  if (uv_ip4_addr(p->host, p->port, (struct sockaddr_in *)&p->addr) == 0 ||
      uv_ip6_addr(p->host, p->port, (struct sockaddr_in6 *)&p->addr) == 0) {
    r->pool->has_addr = 1;
    connect_to(r);
    return;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof port, "%d", p->port);
  r->pending++;
  rc = uv_getaddrinfo(r->client->loop, &r->dns, on_resolved, p->host, port,
                      &hints);
  if (rc != 0) {
    r->pending--;
    snprintf(r->errbuf, sizeof r->errbuf, "dns: %s", uv_strerror(rc));
    finish(r, r->errbuf);
  }
}

/* }====================================================== */

/*
** {======================================================
** Exchanges
** =======================================================
*/

static void req_free(ml_hreq *r) {
  ml_client *cl = r->client;
  free(r);
  cl->nreqs--;
  client_maybe_free(cl);
}

/* The deadline came, or a failure deferred while starting is due. */
static void deadline_due(ml_ctimer *t) {
  ml_hreq *r = container_of(t, ml_hreq, timer);
  finish(r, r->early_err != NULL ? r->early_err : "timeout");
}

/*
 * Points 'res' at r's complete response in c->resp, which stays there
 * while 'done' runs (c is freed in a close callback, and its next
 * exchange parses only on a later read).  A buffer too big to keep moves
 * to 'big', and trailers join the head's pairs in 'pairs': both the
 * caller frees after 'done'.  Returns NULL, or the error to report.
 */
static const char *take_response(ml_hreq *r, hconn *c, ml_hres *res,
                                 ml_buf *big, ml_buf *pairs) {
  ml_buf *b = &c->resp;
  if (b->cap > RESP_KEEP) {
    *big = *b;
    memset(b, 0, sizeof *b);
    b = big;
  }
  res->status = r->status;
  res->headers = b->data != NULL ? b->data : "";
  res->headers_len = r->headers_len;
  res->nheaders = r->nheaders;
  res->body = b->data != NULL ? b->data + r->headers_len : "";
  res->body_len = b->len - r->headers_len;
  if (c->trailers.len > 0) {       /* rare: the pairs in one block */
    if (ml_buf_append(pairs, res->headers, res->headers_len) != 0 ||
        ml_buf_append(pairs, c->trailers.data, c->trailers.len) != 0)
      return "bad response";       /* out of memory */
    res->headers = pairs->data;
    res->headers_len = pairs->len;
  }
  return NULL;
}

static void drain_unlink(ml_hreq *r) {
  ml_client *cl = r->client;
  if (!r->draining)
    return;
  r->draining = 0;
  if (r->dprev != NULL)
    r->dprev->dnext = r->dnext;
  else
    cl->drain = r->dnext;
  if (r->dnext != NULL)
    r->dnext->dprev = r->dprev;
  else
    cl->drain_last = r->dprev;
  r->dnext = r->dprev = NULL;
}

/*
 * A cancelled exchange keeps its connection if its request went out and
 * the pool has room: the response goes on arriving, for DRAIN_MS and
 * DRAIN_BODY at most, and is dropped; then the connection is pooled, or
 * closed as any other.  The caller's deadline (on a clock that may go
 * with its generation) stops: the drain's is the client's sweep.  1 if
 * it drains.
 */
static int drain_start(ml_hreq *r) {
  ml_client *cl = r->client;
  hconn *c = r->conn;
  if (c == NULL || !r->sent || c->closing || cl->closing ||
      r->pool->nidle >= MAX_IDLE)
    return 0;
  ml_clock_timer_stop(&r->timer);
  r->draining = 1;
  if (r->max_body > DRAIN_BODY)
    r->max_body = DRAIN_BODY;
  r->drain_until = uv_now(cl->loop) + DRAIN_MS;
  r->dnext = NULL;
  r->dprev = cl->drain_last;
  if (cl->drain_last != NULL)
    cl->drain_last->dnext = r;
  else
    cl->drain = r;
  cl->drain_last = r;
  sweep_at(cl, r->drain_until);
  return 1;
}

/*
 * Ends the exchange once: gives back or closes its connection, cancels a
 * lookup in flight, tells the caller (unless it cancelled), then frees
 * the exchange, or leaves that to the lookup's callback, which calls
 * finish again: then it only frees.
 */
static void finish(ml_hreq *r, const char *err) {
  hconn *c = r->conn;
  ml_hres res;
  ml_buf big = { NULL, 0, 0 }, pairs = { NULL, 0, 0 };
  if (r->finished) {
    if (r->pending == 0)
      req_free(r);
    return;
  }
  if (r->starting && err != NULL) {
    /* never call back before ml_client_request has returned: report it
     * from the timer, on the loop's next turn */
    r->early_err = err == r->errbuf ? strcpy(r->early_buf, err) : err;
    if (ml_clock_timer_start(&r->timer, deadline_due, 0, 0) == 0)
      return;
    r->early_err = NULL;       /* out of memory: report it now */
  }
  r->finished = 1;
  r->conn = NULL;
  drain_unlink(r);
  ml_clock_timer_stop(&r->timer);
  memset(&res, 0, sizeof res);
  if (err == NULL && c != NULL)
    err = take_response(r, c, &res, &big, &pairs);
  res.err = err;
  if (c != NULL)
    conn_release(c, err == NULL && !r->extra_bytes &&
                    llhttp_should_keep_alive(&c->parser));
  if (r->pending > 0)              /* the lookup: its callback will come */
    uv_cancel((uv_req_t *)&r->dns);
  if (!r->cancelled)
    r->done(r, &res, r->ud);       /* it may resume a coroutine */
  ml_buf_free(&big);
  ml_buf_free(&pairs);
  if (r->pending == 0)
    req_free(r);
}

ml_hreq *ml_client_request(ml_client *c, const ml_hreq_opts *o,
                           ml_hreq_done done, void *ud) {
  ml_hreq *r = calloc(1, sizeof *r + o->ud_size);
  tlsctx *tls = NULL;
  if (r == NULL)
    return NULL;
  r->client = c;
  if (o->tls != NULL &&
      (tls = find_tls(c, o->tls, r->errbuf, sizeof r->errbuf)) == NULL)
    r->early_err = strcpy(r->early_buf, r->errbuf);
  if (r->early_err == NULL &&
      (r->pool = find_pool(c, o->host, o->port, tls,
                           o->tls ? o->tls->server_name : NULL)) == NULL) {
    free(r);
    return NULL;
  }
  r->data = o->data;
  r->len = o->len;
  r->max_body = o->max_body;
  r->head = o->head != 0;
  r->idempotent = o->idempotent != 0;
  r->done = done;
  r->ud = ud != NULL ? ud : (void *)r->ud_area;
  c->nreqs++;
  ml_clock_timer_init_on(o->clock, &r->timer);
  if (r->early_err != NULL) {  /* reported on the loop's next turn */
    if (ml_clock_timer_start(&r->timer, deadline_due, 0, 0) != 0) {
      c->nreqs--;
      free(r);
      return NULL;
    }
    return r;
  }
  if (ml_clock_timer_start(&r->timer, deadline_due, o->timeout_ms, 0) != 0) {
    c->nreqs--;
    free(r);
    return NULL;
  }
  r->starting = 1;
  if (conn_take(r) != NULL)
    send_request(r->conn);
  else
    start_connect(r);
  r->starting = 0;
  return r;
}

void *ml_client_ud(ml_hreq *r) {
  return r->ud_area;
}

void ml_client_cancel(ml_hreq *r) {
  r->cancelled = 1;
  if (!r->finished && !r->draining && !drain_start(r))
    finish(r, "cancelled");        /* closes its connection */
}

void ml_client_close(ml_client *c) {
  pool *p;
  c->closing = 1;
  uv_timer_stop(&c->sweep);
  while (c->drain != NULL)
    finish(c->drain, "cancelled");
  for (p = c->pools; p != NULL; p = p->next)
    while (p->idle != NULL)
      conn_close(p->idle);
  client_maybe_free(c);
}

/* }====================================================== */
