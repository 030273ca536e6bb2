/*
 * ws_client.c - a client's upgraded connection: uv_getaddrinfo on
 * libuv's pool, connect, the handshake request, the response head read
 * with llhttp, then raw bytes both ways with a write queue and a drain
 * mark.  The deadline covers everything until the head is read; it is an
 * entry on a clock's heap, so virtual time moves it.  What the head must
 * say, and the protocol after it, are the owner's.
 *
 * The connection frees itself when its handle has closed, after the
 * owner's 'closed' callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "net/ws_client.h"
#include "base/util.h"

#define MAX_HEAD 16384            /* a larger response head: bad response */

struct ml_wscl {
  uv_tcp_t tcp;
  uv_getaddrinfo_t dns;
  uv_connect_t creq;
  uv_write_t wreq;
  uv_shutdown_t sreq;
  ml_ctimer deadline;
  const ml_wscl_cbs *cb;
  void *ud;
  llhttp_t parser;
  llhttp_settings_t settings;
  ml_buf q;                       /* output not yet handed to libuv */
  ml_buf w;                       /* output libuv is writing */
  ml_buf head;                    /* the response's header pairs */
  size_t head_bytes;
  size_t low;                     /* 'drain' at or below this */
  int status;
  int nheaders;
  int port;
  unsigned resolving : 1;         /* a name lookup in flight */
  unsigned connected : 1;         /* the head came: bytes are the owner's */
  unsigned writing : 1;
  unsigned want_drain : 1;
  unsigned fin : 1;               /* a FIN after the output */
  unsigned fin_sent : 1;
  unsigned closing : 1;
  unsigned handle_open : 1;       /* tcp was initialised */
  unsigned in_value : 1;
  unsigned head_done : 1;
  char readbuf[16384];
  char host[];
};

static void flush(ml_wscl *c);

void *ml_wscl_ud(ml_wscl *c) {
  return c->ud;
}

/*
** {======================================================
** Closing and failing
** =======================================================
*/

static void free_conn(ml_wscl *c) {
  ml_buf_free(&c->q);
  ml_buf_free(&c->w);
  ml_buf_free(&c->head);
  free(c);
}

static void on_close(uv_handle_t *h) {
  ml_wscl *c = h->data;
  c->cb->closed(c);
  free_conn(c);
}

/* Closes once the name lookup, if any, has come back. */
void ml_wscl_close(ml_wscl *c) {
  if (c->closing)
    return;
  c->closing = 1;
  ml_clock_timer_stop(&c->deadline);
  if (c->resolving) {
    uv_cancel((uv_req_t *)&c->dns);   /* on_resolved finishes the close */
    return;
  }
  if (c->handle_open)
    uv_close((uv_handle_t *)&c->tcp, on_close);
  else {                              /* nothing to close: a turn later */
    uv_tcp_init(c->dns.loop, &c->tcp);
    c->tcp.data = c;
    c->handle_open = 1;
    uv_close((uv_handle_t *)&c->tcp, on_close);
  }
}

/* The handshake did not happen: 'ready' says why, then the close. */
static void fail(ml_wscl *c, const char *err) {
  const ml_wscl_cbs *cb = c->cb;
  if (c->closing)
    return;
  ml_wscl_close(c);
  cb->ready(c, err, NULL);
}

static void fail_status(ml_wscl *c, const char *what, int status) {
  char buf[128];
  if (status == UV_ECONNREFUSED) {
    fail(c, "connection refused");
    return;
  }
  snprintf(buf, sizeof buf, "%s: %s", what, uv_strerror(status));
  fail(c, buf);
}

static void on_deadline(ml_ctimer *t) {
  fail(container_of(t, ml_wscl, deadline), "timeout");
}

/* }====================================================== */

/*
** {======================================================
** The response head
** =======================================================
*/

static int on_field(llhttp_t *p, const char *at, size_t len) {
  ml_wscl *c = p->data;
  if (c->in_value || c->nheaders == 0) {   /* a new header */
    if (c->nheaders > 0 && ml_buf_append(&c->head, "", 1) != 0)
      return -1;
    c->nheaders++;
    c->in_value = 0;
  }
  c->head_bytes += len;
  return c->head_bytes > MAX_HEAD ? -1 : ml_buf_append(&c->head, at, len);
}

static int on_value(llhttp_t *p, const char *at, size_t len) {
  ml_wscl *c = p->data;
  if (!c->in_value) {
    c->in_value = 1;
    if (ml_buf_append(&c->head, "", 1) != 0)
      return -1;
  }
  c->head_bytes += len;
  return c->head_bytes > MAX_HEAD ? -1 : ml_buf_append(&c->head, at, len);
}

/* The head is all we read with llhttp: pause, the rest is not HTTP. */
static int on_headers_complete(llhttp_t *p) {
  ml_wscl *c = p->data;
  c->status = p->status_code;
  c->head_done = 1;
  return HPE_PAUSED;
}

/* Feeds response bytes; once the head is whole, tells the owner and
 * hands it what followed. */
static void read_head(ml_wscl *c, const char *data, size_t len) {
  llhttp_errno_t err = llhttp_execute(&c->parser, data, len);
  const char *rest;
  ml_wscl_head h;
  if (err != HPE_PAUSED || !c->head_done) {
    if (err != HPE_OK || c->head_bytes > MAX_HEAD)
      fail(c, "bad response");
    return;
  }
  rest = llhttp_get_error_pos(&c->parser);
  if (c->nheaders > 0 && ml_buf_append(&c->head, "", 1) != 0) {
    fail(c, "bad response");
    return;
  }
  ml_clock_timer_stop(&c->deadline);
  c->connected = 1;
  h.status = c->status;
  h.headers = c->head.data;
  h.nheaders = c->nheaders;
  c->cb->ready(c, NULL, &h);
  ml_buf_free(&c->head);
  if (!c->closing && rest < data + len)
    c->cb->read(c, rest, (size_t)(data + len - rest));
}

/* }====================================================== */

/*
** {======================================================
** Reading and writing
** =======================================================
*/

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  ml_wscl *c = h->data;
  ML_UNUSED(hint);
  buf->base = c->readbuf;
  buf->len = sizeof c->readbuf;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  ml_wscl *c = s->data;
  if (n == 0 || c->closing)
    return;
  if (n < 0) {
    uv_read_stop(s);
    if (c->connected)
      c->cb->end(c, (int)n);
    else
      fail(c, "closed");
    return;
  }
  if (c->connected)
    c->cb->read(c, buf->base, (size_t)n);
  else
    read_head(c, buf->base, (size_t)n);
}

static void check_drain(ml_wscl *c) {
  if (c->want_drain && !c->closing && ml_wscl_pending(c) <= c->low) {
    c->want_drain = 0;
    c->cb->drain(c);
  }
}

static void on_shutdown(uv_shutdown_t *r, int status) {
  ML_UNUSED(r);
  ML_UNUSED(status);
}

static void write_done(uv_write_t *w, int status) {
  ml_wscl *c = w->data;
  c->writing = 0;
  c->w.len = 0;
  if (c->closing)
    return;
  if (status < 0) {
    if (c->connected)
      c->cb->end(c, status);
    else
      fail_status(c, "connect", status);
    return;
  }
  flush(c);
  check_drain(c);
}

/* The queue goes out: uv_try_write, then one uv_write for the rest. */
static void flush(ml_wscl *c) {
  uv_buf_t b;
  ml_buf t;
  int n;
  if (c->writing || c->closing || !c->handle_open)
    return;
  if (c->q.len > 0) {
    b = uv_buf_init(c->q.data, (unsigned)c->q.len);
    n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (n < 0 && n != UV_EAGAIN) {
      ml_wscl_close(c);
      return;
    }
    if (n < 0)
      n = 0;
    if ((size_t)n < c->q.len) {
      t = c->w;
      c->w = c->q;
      c->q = t;
      c->q.len = 0;
      b = uv_buf_init(c->w.data + n, (unsigned)(c->w.len - (size_t)n));
      c->wreq.data = c;
      if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_done)
          != 0) {
        ml_wscl_close(c);
        return;
      }
      c->writing = 1;
      return;
    }
    c->q.len = 0;
  }
  if (c->fin && !c->fin_sent && c->connected) {
    c->fin_sent = 1;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
      ml_wscl_close(c);
  }
}

int ml_wscl_write(ml_wscl *c, const void *a, size_t alen, const void *b,
                  size_t blen) {
  if (c->closing || c->fin)
    return UV_EPIPE;
  if (ml_buf_reserve(&c->q, alen + blen) != 0)
    return UV_ENOMEM;
  memcpy(c->q.data + c->q.len, a, alen);
  if (blen > 0)
    memcpy(c->q.data + c->q.len + alen, b, blen);
  c->q.len += alen + blen;
  flush(c);
  return 0;
}

size_t ml_wscl_pending(ml_wscl *c) {
  return c->q.len + (c->writing ? c->w.len : 0);
}

void ml_wscl_want_drain(ml_wscl *c, size_t low) {
  c->low = low;
  c->want_drain = 1;
}

void ml_wscl_reading(ml_wscl *c, int on) {
  if (c->closing || !c->connected)
    return;
  if (on)
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  else
    uv_read_stop((uv_stream_t *)&c->tcp);
}

void ml_wscl_end_output(ml_wscl *c) {
  c->fin = 1;
  flush(c);
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

static void on_connect(uv_connect_t *req, int status) {
  ml_wscl *c = req->data;
  if (c->closing)
    return;
  if (status < 0) {
    fail_status(c, "connect", status);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
    fail(c, "closed");
    return;
  }
  flush(c);                       /* the request, queued at the start */
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  ml_wscl *c = req->data;
  char buf[160];
  int rc;
  c->resolving = 0;
  if (c->closing) {               /* closed meanwhile: finish it */
    uv_freeaddrinfo(res);
    c->closing = 0;
    ml_wscl_close(c);
    return;
  }
  if (status < 0) {
    snprintf(buf, sizeof buf, "dns: %s", uv_strerror(status));
    fail(c, buf);
    return;
  }
  uv_tcp_init(req->loop, &c->tcp);
  c->tcp.data = c;
  c->handle_open = 1;
  c->creq.data = c;
  rc = uv_tcp_connect(&c->creq, &c->tcp, res->ai_addr, on_connect);
  uv_freeaddrinfo(res);
  if (rc != 0)
    fail_status(c, "connect", rc);
}

ml_wscl *ml_wscl_open(uv_loop_t *loop, ml_clock *clock, const char *host,
                      int port, const char *request, size_t len,
                      uint64_t timeout_ms, const ml_wscl_cbs *cb,
                      void *ud) {
  size_t hl = strlen(host);
  ml_wscl *c = calloc(1, sizeof *c + hl + 1);
  struct addrinfo hints;
  char ports[16];
  if (c == NULL)
    return NULL;
  memcpy(c->host, host, hl + 1);
  c->cb = cb;
  c->ud = ud;
  c->port = port;
  c->dns.loop = loop;
  llhttp_settings_init(&c->settings);
  c->settings.on_header_field = on_field;
  c->settings.on_header_value = on_value;
  c->settings.on_headers_complete = on_headers_complete;
  llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
  c->parser.data = c;
  ml_clock_timer_init_on(clock, &c->deadline);
  if (ml_buf_append(&c->q, request, len) != 0 ||
      ml_clock_timer_start(&c->deadline, on_deadline, timeout_ms, 0) != 0) {
    free_conn(c);
    return NULL;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(ports, sizeof ports, "%d", port);
  c->dns.data = c;
  c->resolving = 1;
  if (uv_getaddrinfo(loop, &c->dns, on_resolved, c->host, ports, &hints)
      != 0) {
    ml_clock_timer_stop(&c->deadline);
    free_conn(c);
    return NULL;
  }
  return c;
}

/* }====================================================== */
