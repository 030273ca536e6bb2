/*
 * ws_client.c - a client's upgraded connection on the stream layer
 * (stream.c: TCP, TLS for wss://, the write queue, the deadline):
 * uv_getaddrinfo on libuv's pool, connect, the handshake request, the
 * response head read with llhttp; then raw bytes both ways.  The
 * deadline covers everything until the head is read.  What the head must
 * say, and the protocol after it, are the owner's.
 *
 * The connection frees itself once its stream has closed, after the
 * owner's 'closed' callback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "net/stream.h"
#include "net/ws_client.h"
#include "base/util.h"

#define MAX_HEAD 16384            /* a larger response head: bad response */

struct ml_wscl {
  ml_stream s;
  uv_getaddrinfo_t dns;
  const ml_wscl_cbs *cb;
  void *ud;
  ml_tls *tls;                    /* wss://: the context; NULL: ws:// */
  llhttp_t parser;
  llhttp_settings_t settings;
  ml_buf request;                 /* the handshake, until connected */
  ml_buf head;                    /* the response's header pairs */
  size_t head_bytes;
  int status;
  int nheaders;
  unsigned resolving : 1;         /* a name lookup in flight */
  unsigned connected : 1;         /* the head came: bytes are the owner's */
  unsigned closing : 1;
  unsigned in_value : 1;
  unsigned head_done : 1;
  unsigned silent : 1;            /* opening failed: no 'closed' */
  char readbuf[32768];            /* a TLS stream reads into its half */
  char host[];
};

#define FROM_STREAM(st) container_of(st, ml_wscl, s)

void *ml_wscl_ud(ml_wscl *c) {
  return c->ud;
}

/*
** {======================================================
** Closing and failing
** =======================================================
*/

static void on_closed(ml_stream *s) {
  ml_wscl *c = FROM_STREAM(s);
  if (!c->silent)
    c->cb->closed(c);
  ml_buf_free(&c->request);
  ml_buf_free(&c->head);
  free(c);
}

/* Closes once the name lookup, if any, has come back. */
void ml_wscl_close(ml_wscl *c) {
  if (c->closing)
    return;
  c->closing = 1;
  if (c->resolving)
    uv_cancel((uv_req_t *)&c->dns);   /* on_resolved closes the stream */
  else
    ml_stream_close(&c->s);
}

/* The handshake did not happen: 'ready' says why, then the close. */
static void fail(ml_wscl *c, const char *err) {
  if (c->closing)
    return;
  ml_wscl_close(c);
  c->cb->ready(c, err, NULL);
}

/* A stream status as a short error. */
static void fail_status(ml_wscl *c, int status) {
  char buf[160], msg[192];
  if (status == UV_ECONNREFUSED) {
    fail(c, "connection refused");
  } else if (status == ML_STREAM_ETLS || status == UV_EOF ||
             status == ML_STREAM_ETRUNC) {
    fail(c, ml_stream_strerror(&c->s, status, buf, sizeof buf));
  } else {
    snprintf(msg, sizeof msg, "connect: %s", uv_strerror(status));
    fail(c, msg);
  }
}

static void on_timeout(ml_stream *s) {
  fail(FROM_STREAM(s), "timeout");
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
    if (err != HPE_OK)
      fail(c, "bad response");
    return;
  }
  rest = llhttp_get_error_pos(&c->parser);
  if (c->nheaders > 0 && ml_buf_append(&c->head, "", 1) != 0) {
    fail(c, "bad response");
    return;
  }
  ml_stream_deadline(&c->s, 0);
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
** The stream's callbacks, and the owner's calls
** =======================================================
*/

static void on_alloc(ml_stream *s, uv_buf_t *buf) {
  ml_wscl *c = FROM_STREAM(s);
  buf->base = c->readbuf;
  buf->len = sizeof c->readbuf;
}

static void on_read(ml_stream *s, const char *data, size_t len) {
  ml_wscl *c = FROM_STREAM(s);
  if (c->closing)
    return;
  if (c->connected)
    c->cb->read(c, data, len);
  else
    read_head(c, data, len);
}

static void on_end(ml_stream *s, int status) {
  ml_wscl *c = FROM_STREAM(s);
  if (c->closing)
    return;
  if (c->connected)
    c->cb->end(c, status);
  else
    fail_status(c, status == UV_EOF ? ML_STREAM_ETRUNC : status);
}

/* Connected (and the TLS handshake done): the request goes; reads
 * start. */
static void on_connected(ml_stream *s, int status) {
  ml_wscl *c = FROM_STREAM(s);
  if (c->closing)
    return;
  if (status < 0) {
    fail_status(c, status);
    return;
  }
  status = ml_stream_write(s, c->request.data, c->request.len);
  ml_buf_free(&c->request);
  if (status != 0 || ml_stream_read_start(s) != 0)
    fail(c, "closed");
}

static void on_drain(ml_stream *s) {
  ml_wscl *c = FROM_STREAM(s);
  if (c->connected && !c->closing)
    c->cb->drain(c);
}

static void on_session(ml_stream *s, SSL_SESSION *sess) {
  ML_UNUSED(s);
  SSL_SESSION_free(sess);         /* each handshake stands alone */
}

static const ml_stream_cbs stream_cbs = {
  on_alloc, on_read, on_end, on_connected, on_drain, on_timeout,
  on_session, on_closed
};

int ml_wscl_write(ml_wscl *c, const void *a, size_t alen, const void *b,
                  size_t blen) {
  int rc;
  if (c->closing)
    return UV_EPIPE;
  if ((rc = ml_stream_write(&c->s, a, alen)) == 0 && blen > 0)
    rc = ml_stream_write(&c->s, b, blen);
  return rc;
}

size_t ml_wscl_pending(ml_wscl *c) {
  return ml_stream_pending(&c->s);
}

void ml_wscl_want_drain(ml_wscl *c, size_t low) {
  ml_stream_want_drain(&c->s, low);
}

void ml_wscl_reading(ml_wscl *c, int on) {
  if (c->closing || !c->connected)
    return;
  if (on)
    ml_stream_read_start(&c->s);
  else
    ml_stream_read_stop(&c->s);
}

void ml_wscl_end_output(ml_wscl *c) {
  if (!c->closing)
    ml_stream_shutdown(&c->s);
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  ml_wscl *c = req->data;
  char buf[160];
  int rc;
  c->resolving = 0;
  if (c->closing) {               /* closed meanwhile: finish it */
    uv_freeaddrinfo(res);
    ml_stream_close(&c->s);
    return;
  }
  if (status < 0) {
    snprintf(buf, sizeof buf, "dns: %s", uv_strerror(status));
    fail(c, buf);
    return;
  }
  rc = ml_stream_connect(&c->s, res->ai_addr, c->tls, c->host, NULL);
  uv_freeaddrinfo(res);
  if (rc != 0)
    fail_status(c, rc);
}

/* The parser of the response head. */
static void head_parser(ml_wscl *c) {
  llhttp_settings_init(&c->settings);
  c->settings.on_header_field = on_field;
  c->settings.on_header_value = on_value;
  c->settings.on_headers_complete = on_headers_complete;
  llhttp_init(&c->parser, HTTP_RESPONSE, &c->settings);
  c->parser.data = c;
}

ml_wscl *ml_wscl_open(uv_loop_t *loop, ml_clock *clock, ml_tls *tls,
                      const char *host, int port, const char *request,
                      size_t len, uint64_t timeout_ms,
                      const ml_wscl_cbs *cb, void *ud) {
  size_t hl = strlen(host);
  ml_wscl *c = calloc(1, sizeof *c + hl + 1);
  struct addrinfo hints;
  char ports[16];
  if (c == NULL)
    return NULL;
  memcpy(c->host, host, hl + 1);
  c->cb = cb;
  c->ud = ud;
  c->tls = tls;
  head_parser(c);
  if (ml_stream_init(loop, &c->s, &stream_cbs, clock) != 0) {
    free(c);
    return NULL;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(ports, sizeof ports, "%d", port);
  c->dns.data = c;
  if (ml_buf_append(&c->request, request, len) != 0 ||
      ml_stream_deadline(&c->s, timeout_ms) != 0 ||
      uv_getaddrinfo(loop, &c->dns, on_resolved, c->host, ports, &hints)
      != 0) {
    c->closing = c->silent = 1;   /* freed when the stream has closed */
    ml_stream_close(&c->s);
    return NULL;
  }
  c->resolving = 1;
  return c;
}

/* }====================================================== */
