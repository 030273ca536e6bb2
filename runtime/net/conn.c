/*
 * conn.c - a server's TCP connections: read, run llhttp over the bytes
 * (its callbacks are parse.c's), hand a complete request to the layer
 * above through its callback, write responses in order, keep-alive and
 * timeouts, lingering close.  What serves a request and what a response
 * looks like on the wire are the layer above's (lib_req.c); where the
 * connections come from is the host's.
 *
 * One request is served at a time.  When llhttp completes a message it is
 * paused, so pipelined requests wait until the response before them has
 * been queued; their responses therefore leave in order.  Request text
 * is kept as offsets, which survive it moving (out of the shared read
 * buffer, or with its own buffer growing).  An idle connection holds no
 * request: requests and write operations come from per-server pools.  An
 * upgraded one holds its request's head and no reader (parser, input).
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include "base/activity.h"
#include "base/clock.h"
#include "net/conn.h"
#include "base/http.h"
#include "base/log.h"
#include "net/parse.h"
#include "net/proxy.h"
#include "net/realip.h"
#include "net/stream.h"

#define LINGER_MS 2000          /* read-and-drop before closing */
#define STOP_QUIET_MS 250       /* at a stop, an idle connection closes
                                   after this much quiet */
/* Back-pressure marks, for every connection whatever it is doing: reading
 * stops above a high mark and starts again once both are at or under
 * their low marks (see 'pace').  Parsing also waits above OUT_HIGH.  The
 * fuzzer's build makes them tiny, so that short inputs reach them. */
#ifdef ML_FUZZ_MARKS
#define IN_HIGH 512
#define IN_LOW 128
#define OUT_HIGH 2048
#define OUT_LOW 512
#else
#define IN_HIGH 65536           /* input read but not parsed yet */
#define IN_LOW 16384
#define OUT_HIGH 1048576        /* output the client has not taken */
#define OUT_LOW 262144
#endif

#define REQ_POOL_MAX 256        /* idle requests a server keeps */
#define WOP_POOL_MAX 64         /* idle write operations it keeps */
#define POOL_BUF_MAX 16384      /* buffers a pooled request keeps */
#define POOL_HDRS_MAX 32        /* header slots it keeps (a browser's) */

/*
 * A server's connections, with what they share: the pools, the read
 * buffer, the limits, the clock their timeouts run on, and the callbacks
 * of the layer above.  Owned by the host (server.c); outlives every
 * connection it accepted.
 */
struct ml_hserver {
  uv_loop_t *loop;
  ml_clock *clock;            /* real time, for every timeout */
  ml_conn_cbs cb;
  void *ud;                   /* for the callbacks */
  ml_limits limits;
  int max_conns;              /* more are answered 503 (0: no cap) */
  ml_trust *trust;            /* --forwarded-allow-ips, or NULL */
  int proxy_headers;          /* believe trusted peers' Forwarded */
  int proxy_protocol;         /* a PROXY header starts each connection */
  int closing;                /* a stop is under way */
  ml_conn *conns;             /* every open connection */
  int nconns;
  struct ml_req *req_pool;    /* idle requests */
  struct ml_wop *wop_pool;    /* idle write operations */
  int req_pooled, wop_pooled;
  char readbuf[65536];        /* shared by every read callback */
};

/* The send timer of a write the socket could not take at once: taken
 * from the server's pool only then, so an idle connection carries none.
 * While the stream holds output, it checks that the client takes some. */
typedef struct ml_wop {
  ml_ctimer send_timer;    /* every send_timeout_ms while writing */
  ml_conn *c;
  uint64_t sent;           /* the bytes the socket had taken then */
  struct ml_wop *next_free;
} ml_wop;

/*
 * A server connection on its stream (net/stream.c: TCP, or TLS with the
 * listener's context).  Output waits in its request's 'out' while the
 * stream still holds earlier bytes, and goes to the stream in one write
 * once it has taken them ('writing').
 */
struct ml_conn {
  ml_stream s;             /* its deadline is the connection's, for the
                              phase it is in: head, keep-alive, linger,
                              or an event stream's ping; on the server's
                              clock */
  ml_hserver *srv;
  ml_req *req;             /* being read, served or written; NULL idle */
  ml_wop *wop;             /* the send timer, while the request lasts */
  const ml_conn_upgrade *up; /* after a 101: who reads, or NULL */
  void *up_ud;
  ml_drain *drains;        /* writers waiting for the output to drain */
  ml_conn *prev, *next;    /* the server's list */
  ml_proxy *proxy;         /* --proxy-protocol: its header (proxy.c) */
  unsigned in_request : 1; /* a request has begun and is not served */
  unsigned handling : 1;   /* a coroutine is serving the request */
  unsigned writing : 1;    /* the stream holds output not yet taken */
  unsigned handshaking : 1;/* TLS: no output before the handshake */
  unsigned processing : 1; /* inside process_input */
  unsigned close_after : 1;/* close once the output is written */
  unsigned closing : 1;
  unsigned lingering : 1;  /* shut down, draining input before close */
  unsigned read_paused : 1;
  unsigned fin_after : 1;  /* a FIN once the output is written */
  unsigned fin_sent : 1;
};

static void process_input(ml_conn *c);
static void flush(ml_conn *c);
static void start_linger(ml_conn *c);
static void send_fin(ml_conn *c);
static void start_reading(ml_conn *c);
static void drop_input(ml_req *r);
static void pace(ml_conn *c);
static void check_drain(ml_conn *c);
static void set_deadline(ml_conn *c, uint64_t ms, ml_ctimer_cb cb);
static void head_timeout(ml_ctimer *t);
static void idle_timeout(ml_ctimer *t);

/*
** {======================================================
** Accessors for lib_req.c
** =======================================================
*/

const char *ml_conn_url(ml_conn *c, size_t *len) {
  *len = c->req->url_len;
  return c->req->text + c->req->url_off;
}

const char *ml_conn_path(ml_conn *c, size_t *len) {
  ml_req *r = c->req;
  *len = r->path_len;
  return r->decoded ? r->rd->path.data : r->text + r->path_off;
}

const char *ml_conn_body(ml_conn *c, size_t *len) {
  ml_reader *d = c->req->rd;
  *len = d != NULL ? d->body.len : 0;
  return d != NULL && d->body.data != NULL ? d->body.data : "";
}

/*
 * An upgraded request's header (see freeze): offsets from its text in 16
 * bits, its head being under 64 KiB.  The request's 'hdrs' points at
 * these then, in the block that holds it.
 */
typedef struct {
  uint16_t name_off, name_len, value_off, value_len;
} short_hdr;

static const short_hdr *short_hdrs(const ml_req *r) {
  return (const short_hdr *)(const void *)r->hdrs;
}

const char *ml_conn_header_name(ml_conn *c, int i, size_t *len) {
  ml_req *r = c->req;
  if (r->rd == NULL) {            /* upgraded */
    *len = short_hdrs(r)[i].name_len;
    return r->text + short_hdrs(r)[i].name_off;
  }
  *len = r->hdrs[i].name_len;
  return r->text + r->hdrs[i].name_off;
}

const char *ml_conn_header_value(ml_conn *c, int i, size_t *len) {
  ml_req *r = c->req;
  if (r->rd == NULL) {
    *len = short_hdrs(r)[i].value_len;
    return r->text + short_hdrs(r)[i].value_off;
  }
  *len = r->hdrs[i].value_len;
  return r->text + r->hdrs[i].value_off;
}

ml_req *ml_conn_req(ml_conn *c) {
  return c->req;
}

void ml_conn_peer(ml_conn *c, char *buf, size_t len) {
  struct sockaddr_storage sa;
  int salen = sizeof sa;
  char ip[64];
  const ml_proxy_header *h = c->proxy ? ml_proxy_result(c->proxy) : NULL;
  if (h != NULL && !h->local)
    sa = h->src;                   /* the client a PROXY header names */
  else if (uv_tcp_getpeername(&c->s.tcp, (struct sockaddr *)&sa,
                              &salen) != 0) {
    snprintf(buf, len, "-");
    return;
  }
  if (sa.ss_family == AF_INET6)
    uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
  else
    uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
  snprintf(buf, len, "%s", ip);
}

const ml_proxy_header *ml_conn_proxy_header(ml_conn *c) {
  return c->proxy != NULL ? ml_proxy_result(c->proxy) : NULL;
}

const ml_trust *ml_conn_trust(ml_conn *c) {
  return c->srv->proxy_headers ? c->srv->trust : NULL;
}

int ml_conn_keep_alive(ml_conn *c) {
  return c->req->keep_alive && !c->close_after && !c->srv->closing;
}

ml_buf *ml_conn_out(ml_conn *c) {
  return &c->req->out;
}

/* }====================================================== */

/*
** {======================================================
** Pools: requests and write operations live only while in use
** =======================================================
*/

/* A new request and its reader; NULL when out of memory. */
static ml_req *req_new(void) {
  ml_req *r = calloc(1, sizeof *r);
  if (r == NULL || (r->rd = calloc(1, sizeof *r->rd)) == NULL) {
    free(r);
    return NULL;
  }
  r->rd->req = r;
  r->hdrs = r->rd->inline_hdrs;
  r->rd->hdrs_cap = ML_REQ_INLINE_HDRS;
  return r;
}

/* A request from the server's pool (or a new one) for c; NULL when out
 * of memory.  A pooled request has its reader. */
static ml_req *req_acquire(ml_conn *c) {
  ml_hserver *s = c->srv;
  ml_req *r = s->req_pool;
  ml_reader *d;
  if (r != NULL) {
    s->req_pool = r->rd->next_free;
    s->req_pooled--;
  } else if ((r = req_new()) == NULL) {
    return NULL;
  }
  d = r->rd;
  r->conn = c;
  d->in.len = r->out.len = 0;
  r->text = NULL;
  d->parsed = d->avail = 0;
  d->shared = 0;
  d->tail = 0;
  r->data = NULL;
  llhttp_init(&d->parser, HTTP_REQUEST, &ml_parse_settings);
  c->req = r;
  return r;
}

/* Frees a reader, and the header array it made for its request. */
static void reader_free(ml_reader *d) {
  ml_buf_free(&d->in);
  ml_buf_free(&d->body);
  ml_buf_free(&d->path);
  if (d->req->hdrs != d->inline_hdrs)
    free(d->req->hdrs);
  free(d);
}

static void req_free(ml_req *r) {
  ml_buf_free(&r->out);
  if (r->rd != NULL)           /* else upgraded: the head is in its block */
    reader_free(r->rd);
  free(r);
}

static void trim(ml_buf *b) {
  if (b->cap > POOL_BUF_MAX)
    ml_buf_free(b);
  b->len = 0;
}

/* c is between requests: its request goes back to the pool (one that
 * was upgraded, and has no reader, is freed). */
static void req_release(ml_conn *c) {
  ml_hserver *s = c->srv;
  ml_req *r = c->req;
  ml_reader *d = r->rd;
  c->req = NULL;
  r->conn = NULL;
  if (d == NULL || s->req_pooled >= REQ_POOL_MAX || s->closing) {
    req_free(r);
    return;
  }
  if (d->hdrs_cap > POOL_HDRS_MAX) {  /* a crowd of headers: let it go */
    free(r->hdrs);
    r->hdrs = d->inline_hdrs;
    d->hdrs_cap = ML_REQ_INLINE_HDRS;
  }
  trim(&d->in);
  trim(&r->out);
  trim(&d->body);
  trim(&d->path);
  d->next_free = s->req_pool;
  s->req_pool = r;
  s->req_pooled++;
}

static ml_wop *wop_acquire(ml_hserver *s) {
  ml_wop *op = s->wop_pool;
  if (op != NULL) {
    s->wop_pool = op->next_free;
    s->wop_pooled--;
    return op;
  }
  if ((op = calloc(1, sizeof *op)) != NULL)
    ml_clock_timer_init_on(s->clock, &op->send_timer);
  return op;
}

static void wop_release(ml_hserver *s, ml_wop *op) {
  if (s->wop_pooled >= WOP_POOL_MAX || s->closing) {
    free(op);
    return;
  }
  op->next_free = s->wop_pool;
  s->wop_pool = op;
  s->wop_pooled++;
}

/*
 * Called where a libuv callback ends: a connection with no request begun,
 * none served, no input buffered and nothing left to write returns its
 * request to the pool, so an idle keep-alive connection holds no buffers.
 */
static void settle(ml_conn *c) {
  ml_req *r = c->req;
  if (r != NULL && !c->processing && !c->in_request && !c->handling &&
      !c->closing && !c->writing && r->out.len == 0 &&
      (r->rd == NULL || r->rd->in.len == 0)) {
    req_release(c);
    if (c->wop != NULL) {
      wop_release(c->srv, c->wop);
      c->wop = NULL;
    }
    ml_stream_trim(&c->s);
  }
}

/* }====================================================== */

/*
** {======================================================
** The server's connections
** =======================================================
*/

ml_hserver *ml_conn_hserver_new(uv_loop_t *loop, ml_clock *clock,
                                const ml_conn_cbs *cb, void *ud) {
  ml_hserver *h = calloc(1, sizeof *h);
  if (h == NULL)
    return NULL;
  h->loop = loop;
  h->clock = clock;
  h->cb = *cb;
  h->ud = ud;
  return h;
}

void ml_conn_hserver_free(ml_hserver *h) {
  ml_req *r;
  ml_wop *op;
  if (h == NULL)
    return;
  while ((r = h->req_pool) != NULL) {
    h->req_pool = r->rd->next_free;
    req_free(r);
  }
  while ((op = h->wop_pool) != NULL) {
    h->wop_pool = op->next_free;
    free(op);
  }
  ml_trust_free(h->trust);
  free(h);
}

void ml_conn_set_proxy(ml_hserver *h, ml_trust *trust, int headers,
                       int protocol) {
  ml_trust_free(h->trust);
  h->trust = trust;
  h->proxy_headers = headers;
  h->proxy_protocol = protocol;
}

void ml_conn_set_limits(ml_hserver *h, const ml_limits *l,
                        int max_connections) {
  h->limits = *l;
  h->max_conns = max_connections;
}

int ml_conn_count(ml_hserver *h) {
  return h->nconns;
}

/* }====================================================== */

/*
** {======================================================
** Closing
** =======================================================
*/

/* The socket has closed (its timer stopped before): free the connection. */
static void on_close(ml_stream *st) {
  ml_conn *c = container_of(st, ml_conn, s);
  ml_hserver *h = c->srv;
  if (c->req != NULL)
    req_free(c->req);
  if (c->wop != NULL)
    wop_release(h, c->wop);
  ml_proxy_free(c->proxy);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    h->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  free(c);
  h->nconns--;                /* counted until its memory is gone */
  h->cb.closed(h, h->ud);
}

/* The upgraded protocol lets go of the connection (its last call). */
static void detach_upgrade(ml_conn *c) {
  const ml_conn_upgrade *up = c->up;
  if (up != NULL) {
    c->up = NULL;
    up->detach(c->up_ud);
  }
}

/*
 * Closes now.  A handler serving the request is aborted (the layer above
 * cancels it); the stream sends close_notify (TLS) if the socket takes
 * it, and drops what it could not write.
 */
void ml_conn_close(ml_conn *c) {
  ml_drain *d;
  if (c->closing)
    return;
  c->closing = 1;
  detach_upgrade(c);               /* the protocol's last call */
  if (c->handling)                 /* its waits stop: no call back */
    c->srv->cb.abort(c, c->srv->ud);
  while ((d = c->drains) != NULL) {  /* others' waits end: closed */
    c->drains = d->next;
    d->c = NULL;
    d->cb(d, UV_ECANCELED);
  }
  ml_clock_timer_stop(&c->s.deadline);
  if (c->wop != NULL)
    ml_clock_timer_stop(&c->wop->send_timer);
  ml_stream_close(&c->s);          /* on_close follows */
}

/*
 * Graceful stop.  A response being made or written says "close", and the
 * connection closes after it; a request still arriving is read, and
 * answered so, within its header timeout.  An idle keep-alive connection
 * is not closed at once: its client may have a request on the way, which
 * a close would lose.  Its next request is answered with "close" too;
 * STOP_QUIET_MS with none closes it.
 */
void ml_conn_shutdown(ml_conn *c) {
  if (c->closing || c->lingering)
    return;
  if (c->up != NULL) {     /* the protocol says goodbye its own way */
    c->close_after = 1;
    c->up->stop(c->up_ud);
    return;
  }
  if (c->handling || c->writing ||
      (c->req != NULL && c->req->out.len > 0))
    c->close_after = 1;
  else if (!c->in_request)
    set_deadline(c, STOP_QUIET_MS, idle_timeout);
}

/* }====================================================== */

/*
** {======================================================
** Timers
** =======================================================
*/

/*
 * A connection is in one phase at a time, and each has its deadline: a
 * request's head (and body) must arrive in time, an idle keep-alive
 * connection closes after a while, a linger ends, an idle event stream
 * gets a comment.  So one clock deadline per connection, set with the
 * phase's callback; moving it later (each request does) costs nothing.
 * A handler at work has none: the deadline is dropped.  A write in
 * flight has its own timer, in its write operation.
 */
static void set_deadline(ml_conn *c, uint64_t ms, ml_ctimer_cb cb) {
  if (ml_clock_deadline(&c->s.deadline, cb, ms) != 0) {
    ml_log(MOONLET_LOG_ERROR, "connection timer: out of memory");
    ml_conn_close(c);      /* it could never time out */
  }
}

/* A head or body too slow: 408.  A connection that began no request in
 * time (bytes that never started one) is closed. */
static void head_timeout(ml_ctimer *t) {
  ml_conn *c = container_of(t, ml_conn, s.deadline);
  if (!c->in_request) {
    ml_conn_close(c);
    return;
  }
  ml_log(MOONLET_LOG_DEBUG, "request head timeout: 408");
  c->in_request = 0;
  ml_conn_reject(c, 408);
  settle(c);
}

/* Keep-alive over, or the linger is: close. */
static void idle_timeout(ml_ctimer *t) {
  ml_conn_close(container_of(t, ml_conn, s.deadline));
}

/* An idle event stream gets a comment, so proxies keep it open. */
static void stream_ping(ml_ctimer *t) {
  static const char ping[] = "e\r\n: keep-alive\n\n\r\n";
  ml_conn *c = container_of(t, ml_conn, s.deadline);
  ml_req *r = c->req;
  if (r->chunked)
    ml_buf_append(&r->out, ping, sizeof ping - 1);
  else
    ml_buf_append(&r->out, ping + 3, sizeof ping - 1 - 5);
  flush(c);
  if (!c->closing)
    set_deadline(c, r->stream_ping_ms, stream_ping);
}

/*
 * Every send_timeout_ms while the stream holds output: the client must
 * have taken some bytes since the last check (ciphertext, with TLS), or
 * it is dropped.
 */
static void send_check(ml_ctimer *t) {
  ml_wop *op = container_of(t, ml_wop, send_timer);
  ml_conn *c = op->c;
  uint64_t sent = ml_stream_sent(&c->s);
  if (sent > op->sent) {
    op->sent = sent;
    return;
  }
  ml_log(MOONLET_LOG_DEBUG, "send timeout: the client took nothing for "
         "%llu ms", (unsigned long long)c->srv->limits.send_timeout_ms);
  ml_conn_close(c);
}

/* A write waits for the client: it must take some of it in time, from
 * now: the loop time is brought up to date first, so that a response
 * that took long to make does not find its time already up.  Only when
 * the clock's heap cannot grow does this fail: then it closes. */
static void start_send_timer(ml_conn *c) {
  ml_wop *op = c->wop;
  uint64_t ms = c->srv->limits.send_timeout_ms;
  if (op == NULL && (op = c->wop = wop_acquire(c->srv)) == NULL) {
    ml_conn_close(c);
    return;
  }
  op->c = c;
  uv_update_time(c->srv->loop);
  op->sent = ml_stream_sent(&c->s);
  if (ml_clock_timer_start(&op->send_timer, send_check, ms, ms) != 0) {
    ml_log(MOONLET_LOG_ERROR, "connection timer: out of memory");
    ml_conn_close(c);
  }
}

void ml_conn_request_progress(ml_conn *c, int begun) {
  if (begun)
    c->in_request = 1;
  set_deadline(c, c->srv->limits.header_timeout_ms, head_timeout);
}

const ml_limits *ml_conn_limits(ml_conn *c) {
  return &c->srv->limits;
}

void ml_conn_stream_idle(ml_conn *c, uint64_t ms) {
  c->req->stream_ping_ms = ms;
  if (ms > 0)
    set_deadline(c, ms, stream_ping);
  else
    ml_clock_deadline_drop(&c->s.deadline);
}

/* }====================================================== */

/*
** {======================================================
** Writing
** =======================================================
*/

/*
 * Calls back, in order, the writers whose level the output has drained
 * to.  A callback may write, wait again or close the connection, so the
 * list is walked from its head after each one.
 */
static void check_drain(ml_conn *c) {
  ml_drain **p, *d;
  while (c->drains != NULL && !c->closing) {
    size_t pending = ml_conn_pending(c);
    for (p = &c->drains; (d = *p) != NULL && pending > d->low;
         p = &d->next)
      ;
    if (d == NULL)
      return;
    *p = d->next;
    d->c = NULL;
    d->cb(d, 0);
  }
}

/* The stream has written all it held (its 'drain' at 0 bytes); a write
 * that failed ends the stream instead (on_end). */
static void on_written(ml_stream *st) {
  ml_conn *c = container_of(st, ml_conn, s);
  c->writing = 0;
  if (c->wop != NULL)
    ml_clock_timer_stop(&c->wop->send_timer);
  flush(c);
  check_drain(c);
  if (c->closing)
    return;
  if (!c->handling && !c->close_after)
    process_input(c);      /* it may have waited on our output */
  pace(c);
  settle(c);
}

/*
 * Sends what is queued: the stream writes it at once if the socket takes
 * it (with TLS, through SSL_write), and keeps the rest, which it tells
 * of having written (on_written); more output waits in 'out' till then.
 * When the output is done and the connection should close, shuts it
 * down and lingers.
 */
static void flush(ml_conn *c) {
  ml_req *r = c->req;
  int rc;
  if (c->closing || c->writing || c->handshaking)
    return;
  if (r != NULL && r->out.len > 0) {
    rc = ml_stream_write(&c->s, r->out.data, r->out.len);
    r->out.len = 0;
    if (rc < 0) {
      ml_conn_close(c);
      return;
    }
    if (ml_stream_pending(&c->s) > 0) {
      c->writing = 1;
      ml_stream_want_drain(&c->s, 0);
      start_send_timer(c);
      return;
    }
    check_drain(c);          /* all written at once: a writer may go on */
    if (c->closing || c->writing)
      return;
  }
  if (c->fin_after && !c->fin_sent)
    send_fin(c);
  if (c->close_after && !c->handling)
    start_linger(c);
}

void ml_conn_flush(ml_conn *c) {
  flush(c);
}

size_t ml_conn_pending(ml_conn *c) {
  return (c->req != NULL ? c->req->out.len : 0) +
         (c->writing ? ml_stream_pending(&c->s) : 0);
}

void ml_conn_drain_wait(ml_conn *c, ml_drain *d, size_t low,
                        ml_drain_cb cb) {
  ml_drain **p = &c->drains;
  while (*p != NULL)                 /* last: woken in the order they came */
    p = &(*p)->next;
  d->c = c;
  d->low = low;
  d->cb = cb;
  d->next = NULL;
  *p = d;
}

void ml_conn_drain_stop(ml_drain *d) {
  ml_drain **p;
  if (d->c == NULL)
    return;
  for (p = &d->c->drains; *p != NULL; p = &(*p)->next)
    if (*p == d) {
      *p = d->next;
      break;
    }
  d->c = NULL;
}

int ml_conn_fd(ml_conn *c) {
  return ml_stream_fd(&c->s);
}

int ml_conn_tls(ml_conn *c, ml_stream_tls_info *info) {
  ml_stream_info(&c->s, info);
  return ml_stream_is_tls(&c->s);
}

ml_clock *ml_conn_clock(ml_conn *c) {
  return c->srv->clock;
}

int ml_conn_closing(ml_conn *c) {
  return c->closing || c->lingering;
}

/*
 * Answers a request we refuse before any handler runs (400, 408, 413,
 * 414, 431, 503...) and closes the connection after it.
 */
void ml_conn_reject(ml_conn *c, int status) {
  char body[64];
  int n;
  ml_buf *o;
  if (c->closing || c->close_after)
    return;
  if (c->req == NULL && req_acquire(c) == NULL) {
    ml_conn_close(c);
    return;
  }
  o = &c->req->out;
  n = snprintf(body, sizeof body, "%d %s\n", status, ml_http_reason(status));
  if (ml_http_status_line(o, status) != 0 ||
      ML_BUF_LIT(o, "Content-Type: text/plain; charset=utf-8\r\n"
                    "Connection: close\r\nContent-Length: ") != 0 ||
      ml_http_append_size(o, (size_t)n) != 0 ||
      ML_BUF_LIT(o, "\r\n\r\n") != 0 ||
      ml_buf_append(o, body, (size_t)n) != 0) {
    ml_conn_close(c);
    return;
  }
  c->close_after = 1;
  flush(c);
}

/* Shut down our side, then drop input until EOF or LINGER_MS, so the
 * client reads the last response before a reset could destroy it. */

/* close_notify (TLS) and a FIN after the output the stream holds (once;
 * it is not sent again).  A failure comes back through on_end. */
static void send_fin(ml_conn *c) {
  if (c->fin_sent || c->closing)
    return;
  c->fin_sent = 1;
  ml_stream_shutdown(&c->s);
}

static void start_linger(ml_conn *c) {
  if (c->lingering || c->closing)
    return;
  c->lingering = 1;
  send_fin(c);
  if (c->closing)
    return;
  set_deadline(c, LINGER_MS, idle_timeout);
  if (c->read_paused) {
    c->read_paused = 0;
    start_reading(c);
  }
}

/* }====================================================== */

/*
** {======================================================
** Serving one request
** =======================================================
*/

static void finish_request(ml_conn *c);

void ml_conn_served(ml_conn *c) {
  c->handling = 0;             /* no abort from here on */
  if (c->closing)
    return;
  if (!c->req->responded)      /* raised past dispatch: a bug of ours */
    ml_conn_reject(c, 500);
  else
    finish_request(c);
  settle(c);
}

/* A request id unique in this process, and across the processes of a
 * machine: the pid in the high half, a count in the low. */
static uint64_t next_request_id(void) {
  static uint64_t last;
  if (last == 0)
    last = (uint64_t)uv_os_getpid() << 32;
  return ++last;
}

/*
 * A complete request: find the path it is routed on, then hand it to the
 * layer above, which starts a handler (or refuses: 503).  The handler may
 * finish before this returns.
 */
static void serve_request(ml_conn *c) {
  ml_hserver *h = c->srv;
  ml_req *r = c->req;
  c->handling = 1;
  ml_clock_deadline_drop(&c->s.deadline);
  r->start = uv_now(h->loop);
  r->id = next_request_id();
  if (ml_parse_path(r) != 0) {
    c->handling = 0;
    ml_conn_reject(c, 400);
    return;
  }
  if (h->cb.request(c, h->ud) != 0) {
    c->handling = 0;
    ml_conn_reject(c, 503);
  }
}

/* The value of the request header 'name' (lower case), or NULL. */
static const char *find_header(ml_conn *c, const char *name, size_t *len) {
  size_t nlen = strlen(name), n;
  int i;
  for (i = 0; i < c->req->nhdrs; i++) {
    const char *h = ml_conn_header_name(c, i, &n);
    if (n == nlen && strncasecmp(h, name, n) == 0)
      return ml_conn_header_value(c, i, len);
  }
  return NULL;
}

void ml_conn_describe(ml_conn *c, char *buf, size_t size) {
  ml_req *r = c->req;
  char peer[64], id[17];
  size_t n;
  int https;
  const char *url;
  if (r == NULL) {
    snprintf(buf, size, "a request");
    return;
  }
  url = ml_conn_url(c, &n);
  ml_realip(c, peer, sizeof peer, &https);
  ml_log_request_id(r->id, id);
  snprintf(buf, size, "%s %.*s HTTP/1.%d (from %s, request %s)",
           llhttp_method_name((llhttp_method_t)r->method),
           (int)(n > 512 ? 512 : n), url, r->minor, peer, id);
}

static void log_access(ml_conn *c, ml_req *r) {
  char peer[64];
  ml_access a;
  int https;
  memset(&a, 0, sizeof a);
  ml_realip(c, peer, sizeof peer, &https);   /* behind proxies too */
  a.addr = peer;
  a.method = llhttp_method_name((llhttp_method_t)r->method);
  a.url = ml_conn_url(c, &a.url_len);
  a.minor = r->minor;
  a.status = r->status;
  a.bytes = r->bytes;
  a.seconds = (double)(uv_now(c->srv->loop) - r->start) / 1000.0;
  a.referer = find_header(c, "referer", &a.referer_len);
  a.agent = find_header(c, "user-agent", &a.agent_len);
  a.id = r->id;
  ml_log_access(&a);
}

/*
 * The response is queued: log it, release the request, and go on with a
 * pipelined request already buffered, or wait for the next one.
 */
static void finish_request(ml_conn *c) {
  ml_req *r = c->req;
  ml_reader *d = r->rd;
  size_t rest;
  if (ml_log_access_enabled())
    log_access(c, r);
  detach_upgrade(c);       /* its handler is over: so is the protocol */
  c->handling = 0;
  c->in_request = 0;
  if (!r->keep_alive || c->srv->closing || d == NULL)
    c->close_after = 1;          /* said "close": a stop is under way;
                                    or an upgraded request, reader gone */
  if (d == NULL) {
    flush(c);
    return;
  }
  if (d->body.cap > 1048576)
    ml_buf_free(&d->body);       /* don't hoard a large body's memory */
  /* the next request's text follows this one's: moving the start is all
   * it takes (on_read compacts the buffer, once per read) */
  r->text += d->parsed;
  d->avail -= d->parsed;
  d->parsed = 0;
  if ((rest = d->avail) == 0 && !d->shared)
    drop_input(r);
  llhttp_resume(&d->parser);
  if (c->close_after) {
    flush(c);
    return;
  }
  if (rest > 0)
    set_deadline(c, c->srv->limits.header_timeout_ms, head_timeout);
  else
    set_deadline(c, c->srv->limits.keepalive_timeout_ms, idle_timeout);
  if (!c->processing) {           /* process_input paces the reading */
    flush(c);
    process_input(c);
  }
}

/* }====================================================== */

/*
** {======================================================
** Reading
** =======================================================
*/

/*
 * Input is parsed where it lies: in the server's read buffer, straight
 * from on_read ("shared"), or in the request's own buffer, which holds
 * what must outlive a read callback: the text of a request whose handler
 * waits, a head still arriving, requests pipelined behind a busy one.
 * Offsets are from r->text, the start of the request's text in either;
 * rd->avail bytes of input follow it.  An upgraded request has no reader
 * and reads no more: its connection's bytes are another protocol's.
 */

/* Input read but not parsed yet: what back-pressure bounds. */
static size_t unparsed(ml_conn *c) {
  ml_reader *d = c->req != NULL ? c->req->rd : NULL;
  return d != NULL && d->avail > d->parsed ? d->avail - d->parsed : 0;
}

/* The request's own buffer holds no input any more. */
static void drop_input(ml_req *r) {
  r->rd->in.len = 0;
  r->text = r->rd->in.data;
  r->rd->avail = r->rd->parsed = 0;
}

/*
 * Appends a read to the request's own buffer.  The input before r->text
 * was consumed by requests served since the last read: it goes first, by
 * one move of what follows it.  Once per read, so a backlog of pipelined
 * requests is copied a bounded number of times, never once per request.
 */
static int keep_input(ml_req *r, const char *p, size_t n) {
  ml_reader *d = r->rd;
  if (d->in.len > 0 && r->text != d->in.data) {
    memmove(d->in.data, r->text, d->avail);
    d->in.len = d->avail;
  }
  if (ml_buf_append(&d->in, p, n) != 0)
    return -1;
  r->text = d->in.data;
  d->avail = (uint32_t)d->in.len;
  return 0;
}

static void on_alloc(ml_stream *st, uv_buf_t *buf) {
  ml_conn *c = container_of(st, ml_conn, s);
  /* one buffer for every connection: what must be kept is copied out */
  buf->base = c->srv->readbuf;
  buf->len = sizeof c->srv->readbuf;
}

/* Reads go on; a stream whose peer has ended (its EOF read while our
 * output was finishing) has nothing left to linger for: it closes. */
static void start_reading(ml_conn *c) {
  if (ml_stream_read_start(&c->s) != 0)
    ml_conn_close(c);
}

/*
 * Back-pressure, whatever the connection is doing (reading a head,
 * serving, writing, waiting to close): reading stops while the output the
 * client has not taken is over OUT_HIGH or the input not parsed yet is
 * over IN_HIGH, and starts again once both are at or under their low
 * marks.  A client that pipelines without reading then fills its own
 * socket buffers, not our memory.  Called where a read, a write or a
 * parse ends; a lingering connection reads on (to drop), and one that
 * will close after its response never needs more input.
 */
static void pace(ml_conn *c) {
  size_t out, in;
  if (c->closing || c->lingering || c->up != NULL)
    return;                  /* an upgraded protocol paces its own */
  out = ml_conn_pending(c);
  in = unparsed(c);
  if (!c->read_paused && (out > OUT_HIGH || in > IN_HIGH)) {
    ml_stream_read_stop(&c->s);
    c->read_paused = 1;
  } else if (c->read_paused && !c->close_after && out <= OUT_LOW &&
             in <= IN_LOW) {
    c->read_paused = 0;
    start_reading(c);
  }
}

/* The parser failed or we refused the request: answer and close. */
static void parse_error(ml_conn *c, llhttp_errno_t err) {
  ml_req *r = c->req;
  int status = ml_parse_error_status(r, err);
  ml_log(MOONLET_LOG_DEBUG, "bad request (%d): %s", status,
         r->rd->err_status ? "over a limit"
                           : llhttp_get_error_reason(&r->rd->parser));
  c->in_request = 0;
  ml_conn_reject(c, status);
}

/*
 * The read callback ends: copy out of the shared buffer what is still
 * needed (exactly that much), and drop the rest.
 */
static void unshare(ml_conn *c) {
  ml_req *r = c->req;
  ml_reader *d = r->rd;
  size_t keep;
  int consumed = d->parsed >= d->avail;
  d->shared = 0;
  if (c->closing)
    keep = 0;
  else if (c->handling || !consumed)
    keep = d->avail;        /* a request being served, or waiting ones */
  else
    keep = c->in_request ? d->head_end : 0;  /* a head still arriving */
  d->in.len = 0;
  if (keep > 0 && (ml_buf_reserve_exact(&d->in, keep) != 0 ||
                   ml_buf_append(&d->in, r->text, keep) != 0)) {
    drop_input(r);
    ml_conn_close(c);
    return;
  }
  r->text = d->in.data;
  d->avail = (uint32_t)keep;
  if (!c->handling && consumed)
    d->parsed = (uint32_t)keep;
  else if (d->parsed > keep)
    d->parsed = 0;                 /* closing: nothing is kept */
}

/*
 * Parses the input, serving each complete request in turn until one has
 * to wait (its handler yields) or the input runs out.  Responses produced
 * meanwhile are flushed together at the end.
 */
static void process_input(ml_conn *c) {
  llhttp_errno_t err;
  ml_reader *d;
  ml_req *r;
  if (c->processing)
    return;          /* an outer call is looping already */
  c->processing = 1;
  ml_activity_set("parsing and serving a connection's requests",
                  unparsed(c));   /* for a watchdog, should it get stuck */
  while ((r = c->req) != NULL && !c->closing && !c->handling &&
         !c->close_after && (d = r->rd) != NULL && d->parsed < d->avail) {
    if (ml_conn_pending(c) > OUT_HIGH) {
      flush(c);      /* the client must take some before we parse on */
      if (c->writing || c->closing)
        break;       /* on_written comes back for the rest */
    }
    err = ml_parse_execute(r);
    if (err == HPE_OK) {
      /* all consumed: keep only the head of a request still arriving
       * (its body is copied out as it comes) */
      if (d->shared) {
        d->parsed = d->avail;
        break;       /* unshare keeps the head */
      }
      d->avail = c->in_request ? d->head_end : 0;
      d->parsed = d->avail;
      d->in.len = (size_t)(r->text - d->in.data) + d->avail;
      if (d->avail == 0)
        drop_input(r);
    } else if (err == HPE_PAUSED) {
      serve_request(c);
    } else {
      parse_error(c, err);
    }
  }
  if ((r = c->req) != NULL && r->rd != NULL && r->rd->shared)
    unshare(c);
  c->processing = 0;
  ml_activity_clear();
  flush(c);
  pace(c);
  settle(c);
}

/*
 * --proxy-protocol: a connection's first bytes are the PROXY header, the
 * rest HTTP.  Returns how many of the n bytes at *p are left for HTTP
 * (*p moved past the header's); -1 when the header is bad or missing,
 * and the connection closed.
 */
static ssize_t take_proxy(ml_conn *c, const char **p, size_t n) {
  ssize_t used = ml_proxy_feed(c->proxy, *p, n);
  if (used < 0) {
    ml_log(MOONLET_LOG_DEBUG, "no valid PROXY header: closed");
    ml_conn_close(c);
    return -1;
  }
  *p += used;
  return (ssize_t)n - used;
}

/*
 * The client is done: EOF (a FIN, or close_notify), an end without
 * close_notify (taken as EOF: browsers do it), a failed handshake, clear
 * text on the TLS port (answered already), or a socket error.
 */
static void on_end(ml_stream *st, int status) {
  ml_conn *c = container_of(st, ml_conn, s);
  char why[128];
  if (c->closing)
    return;
  if (status == ML_STREAM_ETRUNC)
    status = UV_EOF;
  if (c->up != NULL) {   /* upgraded: its end is another protocol's */
    c->up->end(c->up_ud, status);
    return;
  }
  if (status == ML_STREAM_ETLS)
    ml_log(MOONLET_LOG_DEBUG, "%s", ml_stream_strerror(st, status, why,
                                                       sizeof why));
  if (status == UV_EOF && !c->handling && !c->lingering &&
      ml_conn_pending(c) > 0) {
    c->close_after = 1;          /* let the queued response finish */
    c->read_paused = 1;          /* then the linger finds the end */
    return;
  }
  ml_conn_close(c);
}

/* Bytes from the client (plaintext, with TLS). */
static void on_read(ml_stream *st, const char *data, size_t nread) {
  ml_conn *c = container_of(st, ml_conn, s);
  ml_req *r;
  ssize_t n;
  if (c->closing)
    return;
  if (c->up != NULL) {   /* upgraded: its bytes are another protocol's */
    c->up->read(c->up_ud, data, nread);
    return;
  }
  if (c->lingering)
    return;
  if (c->proxy != NULL && ml_proxy_result(c->proxy) == NULL) {
    if ((n = take_proxy(c, &data, nread)) <= 0)
      return;
    nread = (size_t)n;
  }
  if ((r = c->req) == NULL && (r = req_acquire(c)) == NULL) {
    ml_conn_close(c);
    return;
  }
  if (r->rd == NULL)  /* an upgrade's handler has ended: it closes */
    return;
  if (!c->handling && r->rd->in.len == 0) {  /* parse it where it lies */
    r->rd->shared = 1;
    r->text = data;
    r->rd->avail = (uint32_t)nread;
    r->rd->parsed = 0;
    process_input(c);
    return;
  }
  if (keep_input(r, data, nread) != 0) {
    ml_conn_close(c);
    return;
  }
  if (c->handling)    /* pipelined input waits; pace bounds it */
    pace(c);
  else
    process_input(c);
}

/*
 * Out of file descriptors, libuv accepts and closes every waiting client
 * (it keeps a spare descriptor for that) and tells no callback.  So a
 * connection accepted within a sixteenth of the limit is taken as the
 * sign, and said at most once a second.  The limit is read again then.
 */
static void check_fd_room(ml_conn *c) {
  static int limit, read_at = -1, warned = -1;  /* the process's */
  int now = (int)(uv_now(c->srv->loop) / 1000), fd = -1;
  uv_os_fd_t ufd;
  struct rlimit rl;
  if (uv_fileno((uv_handle_t *)&c->s.tcp, &ufd) == 0)
    fd = (int)ufd;
  if (now != read_at) {
    read_at = now;
    limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < INT_MAX
            ? (int)rl.rlim_cur : INT_MAX;
  }
  if (fd < 0 || fd < limit - (limit / 16 > 8 ? limit / 16 : 8) ||
      now == warned)
    return;
  warned = now;
  ml_log(MOONLET_LOG_WARN, "accept: out of file descriptors, or nearly "
         "(connection fd %d, limit %d): clients past the limit are closed "
         "unanswered", fd, limit);
}

/* --proxy-protocol: a PROXY header comes first, from a trusted peer
 * only; anyone else is closed at once.  0, or -1 (closed). */
static int expect_proxy(ml_conn *c) {
  struct sockaddr_storage sa;
  int salen = sizeof sa;
  if (uv_tcp_getpeername(&c->s.tcp, (struct sockaddr *)&sa, &salen) != 0 ||
      !ml_trust_addr(c->srv->trust, (struct sockaddr *)&sa)) {
    ml_log(MOONLET_LOG_DEBUG, "PROXY protocol from a peer not in "
           "--forwarded-allow-ips: closed");
    ml_conn_close(c);
    return -1;
  }
  if ((c->proxy = ml_proxy_new()) == NULL) {
    ml_conn_close(c);
    return -1;
  }
  return 0;
}

/* A TLS handshake is done: output may go now (a 503 over the limit may
 * be waiting); one that failed ends the stream instead (on_end). */
static void on_handshake(ml_stream *st, int status) {
  ml_conn *c = container_of(st, ml_conn, s);
  if (status != 0 || c->closing)
    return;
  c->handshaking = 0;
  flush(c);
}

static const ml_stream_cbs stream_cbs = {
  on_alloc, on_read, on_end, on_handshake, on_written, NULL, NULL, on_close
};

/*
 * A new connection, on TLS with 'tls' (the listener's context) or plain.
 * The header timeout runs from here, so a TLS handshake counts in it,
 * and the connection counts against the cap at once: its 503 leaves once
 * a handshake is done.
 */
void ml_conn_accept(ml_hserver *s, uv_stream_t *listener, ml_tls *tls) {
  ml_conn *c = calloc(1, sizeof *c);
  int rc;
  if (c == NULL || (rc = ml_stream_init(s->loop, &c->s, &stream_cbs,
                                        s->clock)) != 0) {
    ml_log(MOONLET_LOG_ERROR, "accept: out of memory");
    free(c);
    return;
  }
  c->srv = s;
  c->next = s->conns;              /* linked first: on_close unlinks */
  if (s->conns != NULL)
    s->conns->prev = c;
  s->conns = c;
  s->nconns++;
  if ((rc = ml_stream_accept(&c->s, listener, tls)) != 0) {
    ml_log(MOONLET_LOG_WARN, "accept: %s", uv_strerror(rc));
    ml_conn_close(c);
    return;
  }
  c->handshaking = tls != NULL;
  uv_tcp_nodelay(&c->s.tcp, 1);
  check_fd_room(c);
  if (s->proxy_protocol && expect_proxy(c) != 0)
    return;
  set_deadline(c, s->limits.header_timeout_ms, head_timeout);
  start_reading(c);
  if (s->max_conns > 0 && s->nconns > s->max_conns && !c->closing) {
    ml_log(MOONLET_LOG_DEBUG, "over --max-connections: 503");
    ml_conn_reject(c, 503);      /* answered at once, then closed */
  }
}

void ml_conn_responded(ml_conn *c, int status, size_t bytes, int close) {
  c->req->responded = 1;
  c->req->status = status;
  c->req->bytes = bytes;
  if (close)
    c->close_after = 1;
}

void ml_conn_shutdown_all(ml_hserver *h, int force) {
  ml_conn *c, *next;
  h->closing = 1;
  for (c = h->conns; c != NULL; c = next) {
    next = c->next;
    if (force)
      ml_conn_close(c);
    else
      ml_conn_shutdown(c);
  }
}

/* }====================================================== */

/*
** {======================================================
** Upgrades: the connection's bytes to another protocol
** =======================================================
*/

/*
 * An upgraded request keeps what its handler may still read: it moves to
 * one block of its exact size, the request, then its headers (short_hdr),
 * the text of its head (and a decoded path), and lets its reader go.  A
 * WebSocket that waits holds no parser and no input buffer.  Nothing
 * outside conn.c keeps a pointer to a request: the layer above asks for
 * c->req.  A head past 64 KiB, or no memory, and the request stays as it
 * was.
 */
static void freeze(ml_conn *c) {
  ml_req *r = c->req, *f;
  ml_reader *d = r->rd;
  size_t hn = (size_t)r->nhdrs * sizeof(short_hdr), tn = d->parsed,
         pn = r->decoded ? d->path.len : 0;
  short_hdr *sh;
  char *b;
  int i;
  if (tn > UINT16_MAX || (f = malloc(sizeof *f + hn + tn + pn)) == NULL)
    return;
  *f = *r;                     /* 'out' and 'data' move with it */
  b = (char *)(f + 1);         /* aligned: ml_req's size is */
  sh = (short_hdr *)(void *)b;
  for (i = 0; i < r->nhdrs; i++) {   /* each within the head's text */
    sh[i].name_off = (uint16_t)r->hdrs[i].name_off;
    sh[i].name_len = (uint16_t)r->hdrs[i].name_len;
    sh[i].value_off = (uint16_t)r->hdrs[i].value_off;
    sh[i].value_len = (uint16_t)r->hdrs[i].value_len;
  }
  memcpy(b + hn, r->text, tn);
  if (r->decoded) {
    memcpy(b + hn + tn, d->path.data, pn);
    f->path_off = (uint32_t)tn;
    f->decoded = 0;
  }
  f->rd = NULL;
  f->hdrs = (ml_hdr *)(void *)b;
  f->text = b + hn;
  c->req = f;
  reader_free(d);              /* the old header array with it */
  free(r);
}

void ml_conn_upgrade_to(ml_conn *c, const ml_conn_upgrade *up, void *ud) {
  ml_req *r = c->req;
  ml_reader *d = r->rd;
  size_t rest = unparsed(c);
  c->up = up;
  c->up_ud = ud;
  d->avail = d->parsed;           /* the head stays: req's fields */
  if (!d->shared)
    d->in.len = (size_t)(r->text - d->in.data) + d->avail;
  if (rest > 0)                   /* still there: only the length moved */
    up->read(ud, r->text + d->parsed, rest);
  freeze(c);
}

void *ml_conn_upgraded(ml_conn *c) {
  return c->up != NULL ? c->up_ud : NULL;
}

void ml_conn_reading(ml_conn *c, int on) {
  if (c->closing || c->lingering || c->read_paused == !on)
    return;
  c->read_paused = !on;
  if (on)
    start_reading(c);
  else
    ml_stream_read_stop(&c->s);
}

void ml_conn_end_output(ml_conn *c) {
  c->fin_after = 1;
  flush(c);
}

/* }====================================================== */
