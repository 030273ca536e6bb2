/*
 * client.c - outbound HTTP/1.1: uv_getaddrinfo (on libuv's thread pool),
 * connect, the request written in one go, the response parsed with llhttp
 * (Content-Length, chunked, close-delimited; 1xx skipped; no body for
 * HEAD, 204, 304), and a pool of kept-alive connections per host:port.
 *
 * An exchange (ml_hreq) owns its name lookup; a connection (hconn)
 * belongs to the pool while idle and to one exchange while in use, and
 * keeps the buffer responses are parsed into from one exchange to the
 * next.  A connection that ends an exchange in any state but "response
 * complete, request written, keep-alive" is closed, so the pool never
 * hands out a half-used one.
 *
 * Deadlines cost no libuv timer each: the client keeps its exchanges in
 * deadline order (a new one nearly always goes last) under one timer, and
 * its idle connections in release order (each pool's oldest last) under
 * another; a timer that fires with nothing due just moves on.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "net/client.h"
#include "base/util.h"

#define MAX_IDLE 1024              /* idle connections kept per host:port:
                                      a fan-in of many concurrent calls to
                                      one backend must not churn them */
#define IDLE_MS 30000              /* then closed (ml_client_set_idle) */
#define MAX_HEADERS 65536          /* response head larger: bad response */
#define RESP_KEEP 16384            /* a larger response buffer is not kept
                                      for the connection's next exchange */

typedef struct hconn hconn;

/* The idle connections to one host:port, the most recent first. */
typedef struct pool {
  struct pool *next;
  hconn *idle, *idle_last;
  int nidle;
  int port;
  struct sockaddr_storage addr;   /* the last address resolved */
  int has_addr;
  char host[];
} pool;

struct ml_client {
  uv_loop_t *loop;
  pool *pools;
  uv_timer_t timer;               /* for the first exchange's deadline;
                                     ref'd while there are exchanges */
  uv_timer_t sweep;               /* closes idle connections; unref'd */
  ml_hreq *first, *last;          /* the exchanges, by deadline */
  uint64_t timer_at, sweep_at;    /* when each fires; 0: not started */
  uint64_t idle_ms;               /* an idle connection's life */
  int nconns;                     /* open connections */
  int nreqs;                      /* exchanges not yet freed */
  int closes;                     /* timer closes outstanding */
  unsigned closing : 1;
  unsigned freeing : 1;
  uint64_t connects;
  char readbuf[65536];            /* shared by every read callback */
};

struct hconn {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
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
  unsigned writing : 1;           /* a uv_write of the request is queued */
};

struct ml_hreq {
  ml_client *client;
  pool *pool;
  uv_getaddrinfo_t dns;
  ml_hreq *prev, *next;           /* the client's deadline order */
  uint64_t deadline;              /* loop time */
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
  unsigned queued : 1;            /* in the deadline order */
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
  uv_timer_init(loop, &c->timer);
  uv_timer_init(loop, &c->sweep);
  uv_unref((uv_handle_t *)&c->timer);
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
  if (--c->closes > 0)
    return;
  for (p = c->pools; p != NULL; p = next) {
    next = p->next;
    free(p);
  }
  free(c);
}

/* Frees the client, through its timers' close callbacks, once it is
 * closing and nothing of it is left. */
static void client_maybe_free(ml_client *c) {
  if (!c->closing || c->freeing || c->nconns > 0 || c->nreqs > 0)
    return;
  c->freeing = 1;
  c->closes = 2;
  c->timer.data = c->sweep.data = c;
  uv_close((uv_handle_t *)&c->timer, client_closed);
  uv_close((uv_handle_t *)&c->sweep, client_closed);
}

/* The pool for host:port, made on first use; NULL when out of memory. */
static pool *find_pool(ml_client *c, const char *host, int port) {
  pool *p;
  size_t n;
  for (p = c->pools; p != NULL; p = p->next)
    if (p->port == port && strcmp(p->host, host) == 0)
      return p;
  n = strlen(host) + 1;
  if ((p = calloc(1, sizeof *p + n)) == NULL)
    return NULL;
  memcpy(p->host, host, n);
  p->port = port;
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

static void conn_closed(uv_handle_t *h) {
  hconn *c = h->data;
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
  uv_close((uv_handle_t *)&c->tcp, conn_closed);
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
 * and starts again for the next to go. */
static void on_sweep(uv_timer_t *t) {
  ml_client *cl = container_of(t, ml_client, sweep);
  uint64_t now = uv_now(cl->loop), next = 0;
  pool *p;
  hconn *c;
  cl->sweep_at = 0;
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
 * closed: its write reads the exchange's request, which goes away.
 */
static void conn_release(hconn *c, int reusable) {
  pool *p = c->pool;
  c->req = NULL;
  if (!reusable || c->writing || c->client->closing ||
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
  uv_unref((uv_handle_t *)&c->tcp);
}

/* The most recently used idle connection to r's host, or NULL. */
static hconn *conn_take(ml_hreq *r) {
  hconn *c = r->pool->idle;
  if (c == NULL)
    return NULL;
  unlink_idle(c);
  uv_ref((uv_handle_t *)&c->tcp);
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

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  hconn *c = h->data;
  ML_UNUSED(hint);
  buf->base = c->client->readbuf;
  buf->len = sizeof c->client->readbuf;
}

/* Sends the exchange again on a fresh connection: the pooled one it
 * tried had been closed by the server meanwhile. */
static int retry(ml_hreq *r) {
  hconn *c = r->conn;
  if (!c->reused || r->got_bytes || !r->idempotent || r->retried)
    return 0;
  r->retried = 1;
  r->conn = NULL;
  conn_close(c);
  start_connect(r);
  return 1;
}

/* The connection ended (EOF or an error) during an exchange. */
static void on_end(hconn *c, ssize_t nread) {
  ml_hreq *r = c->req;
  llhttp_errno_t e;
  if (nread == UV_EOF && r->got_bytes &&
      llhttp_message_needs_eof(&c->parser)) {
    /* llhttp_finish returns what on_message_complete did: HPE_PAUSED */
    e = llhttp_finish(&c->parser);
    if ((e == HPE_OK || e == HPE_PAUSED) && r->complete) {
      finish(r, NULL);         /* a close-delimited body */
      return;
    }
  }
  if (!retry(r))
    finish(r, "closed");
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  hconn *c = s->data;
  ml_hreq *r = c->req;
  llhttp_errno_t e;
  if (c->closing || nread == 0)
    return;
  if (r == NULL) {             /* idle: the server closed or spoke */
    conn_close(c);
    return;
  }
  if (nread < 0) {
    on_end(c, nread);
    return;
  }
  r->got_bytes = 1;
  e = llhttp_execute(&c->parser, buf->base, (size_t)nread);
  if (e == HPE_PAUSED) {
    /* complete; bytes after it: the connection cannot be trusted again */
    r->extra_bytes = llhttp_get_error_pos(&c->parser) != buf->base + nread;
    finish(r, NULL);
  } else if (e != HPE_OK) {
    finish(r, r->err != NULL ? r->err : "bad response");
  }
}

static void write_done(uv_write_t *w, int status) {
  hconn *c = container_of(w, hconn, wreq);
  c->writing = 0;
  if (status < 0 && !c->closing && c->req != NULL && !retry(c->req))
    finish(c->req, "closed");
}

/*
 * The request in one write: uv_try_write, then uv_write for the rest,
 * straight from the caller's bytes.  Those stay until the exchange ends,
 * and a connection still writing then is closed, never pooled.
 */
static void send_request(hconn *c) {
  ml_hreq *r = c->req;
  uv_buf_t b = uv_buf_init((char *)r->data, (unsigned)r->len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == UV_EAGAIN)
    n = 0;
  if (n < 0) {
    if (!retry(r))
      finish(r, "closed");
    return;
  }
  if ((size_t)n < r->len) {
    b = uv_buf_init((char *)r->data + n, (unsigned)(r->len - n));
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_done) != 0)
      finish(r, "closed");
    else
      c->writing = 1;
  }
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

/* The short message for a failed connect or lookup. */
static const char *connect_error(ml_hreq *r, int status) {
  if (status == UV_ECONNREFUSED)
    return "connection refused";
  if (status == UV_ETIMEDOUT)
    return "timeout";
  snprintf(r->errbuf, sizeof r->errbuf, "connect: %s", uv_strerror(status));
  return r->errbuf;
}

static void on_connect(uv_connect_t *cr, int status) {
  hconn *c = container_of(cr, hconn, creq);
  if (c->closing || c->req == NULL)
    return;                    /* abandoned meanwhile */
  if (status < 0) {
    finish(c->req, connect_error(c->req, status));
    return;
  }
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    finish(c->req, "closed");
    return;
  }
  send_request(c);
}

/* A new connection for r to the address its pool has resolved. */
static void connect_to(ml_hreq *r) {
  ml_client *cl = r->client;
  hconn *c = calloc(1, sizeof *c);
  int rc;
  if (c == NULL) {
    finish(r, "connect: not enough memory");
    return;
  }
  c->client = cl;
  c->pool = r->pool;
  uv_tcp_init(cl->loop, &c->tcp);
  c->tcp.data = c;
  llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
  c->parser.data = c;
  cl->nconns++;
  cl->connects++;
  c->req = r;
  r->conn = c;
  uv_tcp_nodelay(&c->tcp, 1);
  rc = uv_tcp_connect(&c->creq, &c->tcp,
                      (const struct sockaddr *)&r->pool->addr, on_connect);
  if (rc != 0)
    finish(r, connect_error(r, rc));
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

static void on_deadline(uv_timer_t *t);

/* Starts the client's timer for its first exchange's deadline. */
static void timer_start(ml_client *cl) {
  uint64_t now = uv_now(cl->loop), at = cl->first->deadline;
  cl->timer_at = at;
  uv_timer_start(&cl->timer, on_deadline, at > now ? at - now : 0, 0);
}

/*
 * Puts r in the deadline order, searching from the end, where a new
 * exchange's deadline nearly always goes; the timer starts again only
 * when r comes first and is due before it would fire.
 */
static void deadline_add(ml_hreq *r, uint64_t deadline) {
  ml_client *cl = r->client;
  ml_hreq *after = cl->last;
  while (after != NULL && after->deadline > deadline)
    after = after->prev;
  r->deadline = deadline;
  r->prev = after;
  r->next = after != NULL ? after->next : cl->first;
  if (r->next != NULL)
    r->next->prev = r;
  else
    cl->last = r;
  if (after != NULL)
    after->next = r;
  else
    cl->first = r;
  r->queued = 1;
  uv_ref((uv_handle_t *)&cl->timer);
  if (cl->first == r && (cl->timer_at == 0 || deadline < cl->timer_at))
    timer_start(cl);
}

/* Takes r out of the order; the timer, if started, fires and moves on. */
static void deadline_remove(ml_hreq *r) {
  ml_client *cl = r->client;
  if (!r->queued)
    return;
  r->queued = 0;
  if (r->prev != NULL)
    r->prev->next = r->next;
  else
    cl->first = r->next;
  if (r->next != NULL)
    r->next->prev = r->prev;
  else
    cl->last = r->prev;
  if (cl->first == NULL)
    uv_unref((uv_handle_t *)&cl->timer);
}

/* Ends the exchanges whose deadline has come: "timeout", or the failure
 * a starting one deferred; then waits for the next deadline. */
static void on_deadline(uv_timer_t *t) {
  ml_client *cl = container_of(t, ml_client, timer);
  uint64_t now = uv_now(cl->loop);
  ml_hreq *r;
  cl->timer_at = 0;
  while ((r = cl->first) != NULL && r->deadline <= now)
    finish(r, r->early_err != NULL ? r->early_err : "timeout");
  if (cl->first != NULL && cl->timer_at == 0)
    timer_start(cl);
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
    deadline_remove(r);
    deadline_add(r, uv_now(r->client->loop));
    return;
  }
  r->finished = 1;
  r->conn = NULL;
  deadline_remove(r);
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
  if (r == NULL)
    return NULL;
  r->client = c;
  if ((r->pool = find_pool(c, o->host, o->port)) == NULL) {
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
  deadline_add(r, uv_now(c->loop) + o->timeout_ms);
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
  if (!r->finished)
    finish(r, "cancelled");        /* closes its connection */
}

void ml_client_close(ml_client *c) {
  pool *p;
  c->closing = 1;
  uv_timer_stop(&c->sweep);
  for (p = c->pools; p != NULL; p = p->next)
    while (p->idle != NULL)
      conn_close(p->idle);
  client_maybe_free(c);
}

/* }====================================================== */
