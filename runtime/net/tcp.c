/*
 * tcp.c - an outbound connection with an input buffer, for moonlet.tcp's
 * cosockets: a lookup off the loop (none for an address), then a stream
 * (net/stream.c: plain TCP, or TLS with the owner's context) whose reads
 * run while the owner wants them and append to 'in'.  Deadlines are the
 * owner's (lib_tcp.c, on the state's clock).  Owned by whoever connected
 * it; freed once closed and its stream and lookup have called back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/tcp.h"
#include "net/stream.h"
#include "base/util.h"

struct ml_tcp {
  ml_stream s;
  uv_loop_t *loop;
  uv_getaddrinfo_t dns;
  const ml_tcp_cbs *cb;
  void *ud;
  ml_tls *tls;                   /* the owner's context, or NULL */
  ml_buf in;                     /* read, from 'off' on not yet taken */
  size_t off;
  int ended;
  int port;
  unsigned connected : 1;
  unsigned reading : 1;
  unsigned resolving : 1;
  unsigned closing : 1;
  unsigned stream_closed : 1;
  char err[200];
  char scratch[16384];           /* the stream reads here */
  const char *name;              /* for SNI and the certificate check */
  char host[];                   /* then the name */
};

static void maybe_free(ml_tcp *t) {
  if (!t->closing || !t->stream_closed || t->resolving)
    return;
  ml_buf_free(&t->in);
  free(t);
}

static void s_closed(ml_stream *s) {
  ml_tcp *t = container_of(s, ml_tcp, s);
  t->stream_closed = 1;
  maybe_free(t);
}

void ml_tcp_close(ml_tcp *t) {
  if (t->closing)
    return;
  t->closing = 1;
  if (t->resolving)
    uv_cancel((uv_req_t *)&t->dns);
  ml_stream_close(&t->s);
}

void ml_tcp_set_owner(ml_tcp *t, const ml_tcp_cbs *cb, void *ud) {
  t->cb = cb;
  t->ud = ud;
}

void ml_tcp_ref(ml_tcp *t, int on) {
  if (t->closing)
    return;
  if (on)
    uv_ref((uv_handle_t *)&t->s.tcp);
  else
    uv_unref((uv_handle_t *)&t->s.tcp);
}

int ml_tcp_ended(ml_tcp *t) {
  return t->ended;
}

const char *ml_tcp_data(ml_tcp *t, size_t *len) {
  *len = t->in.len - t->off;
  return t->in.data != NULL ? t->in.data + t->off : "";
}

void ml_tcp_consume(ml_tcp *t, size_t n) {
  t->off += n;
  if (t->off == t->in.len) {
    t->off = t->in.len = 0;
  } else if (t->off > 4096 && t->off > t->in.len / 2) {
    memmove(t->in.data, t->in.data + t->off, t->in.len - t->off);
    t->in.len -= t->off;
    t->off = 0;
  }
}

const char *ml_tcp_error(ml_tcp *t) {
  return t->err[0] != '\0' ? t->err : "closed";
}

/*
** {======================================================
** The stream's callbacks
** =======================================================
*/

static void s_alloc(ml_stream *s, uv_buf_t *buf) {
  ml_tcp *t = container_of(s, ml_tcp, s);
  buf->base = t->scratch;
  buf->len = sizeof t->scratch;
}

static void s_read(ml_stream *s, const char *data, size_t len) {
  ml_tcp *t = container_of(s, ml_tcp, s);
  if (t->closing)
    return;
  if (ml_buf_append(&t->in, data, len) != 0) {
    t->ended = UV_ENOMEM;        /* the reader fails, not the process */
    ml_stream_read_stop(&t->s);
    t->reading = 0;
  }
  t->cb->data(t, t->ud);
}

/* The short reason for a stream status; "closed" for a plain end. */
static const char *reason(ml_tcp *t, int status) {
  char buf[160];
  if (status == UV_ECONNREFUSED)
    return "connection refused";
  if (status == UV_ETIMEDOUT)
    return "timeout";
  if (status == ML_STREAM_ETLS) {
    snprintf(t->err, sizeof t->err, "%s",
             ml_stream_strerror(&t->s, status, buf, sizeof buf));
    return t->err;
  }
  if (!t->connected) {
    snprintf(t->err, sizeof t->err, "connect: %s", uv_strerror(status));
    return t->err;
  }
  return "closed";
}

static void s_end(ml_stream *s, int status) {
  ml_tcp *t = container_of(s, ml_tcp, s);
  if (t->closing)
    return;
  if (status != UV_EOF)
    reason(t, status);           /* kept for ml_tcp_error */
  t->ended = status;
  t->reading = 0;
  t->cb->data(t, t->ud);
}

static void s_connected(ml_stream *s, int status) {
  ml_tcp *t = container_of(s, ml_tcp, s);
  if (t->closing)
    return;
  t->connected = status == 0;
  t->cb->connected(t, status < 0 ? reason(t, status) : NULL, t->ud);
}

/* The queued output has gone to the kernel. */
static void s_drain(ml_stream *s) {
  ml_tcp *t = container_of(s, ml_tcp, s);
  if (!t->closing)
    t->cb->written(t, NULL, t->ud);
}

static const ml_stream_cbs stream_cbs = {
  s_alloc, s_read, s_end, s_connected, s_drain, NULL, NULL, s_closed
};

/* }====================================================== */

/*
** {======================================================
** Reading and writing
** =======================================================
*/

void ml_tcp_read(ml_tcp *t, int on) {
  if (t->closing || t->ended || !t->connected || (on != 0) == t->reading)
    return;
  if (on && ml_stream_read_start(&t->s) != 0)
    return;
  if (!on)
    ml_stream_read_stop(&t->s);
  t->reading = on != 0;
}

int ml_tcp_write(ml_tcp *t, const char *p, size_t n) {
  if (t->closing || !t->connected || t->ended ||
      ml_stream_write(&t->s, p, n) != 0)
    return -1;
  if (ml_stream_pending(&t->s) == 0)
    return 0;
  ml_stream_want_drain(&t->s, 0);
  return 1;
}

int ml_tcp_writing(ml_tcp *t) {
  return !t->closing && ml_stream_pending(&t->s) > 0;
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

/* Starts the stream's connect (and handshake); 0 or a negative error. */
static int connect_to(ml_tcp *t, const struct sockaddr *sa) {
  return ml_stream_connect(&t->s, sa, t->tls, t->name, NULL);
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  ml_tcp *t = container_of(req, ml_tcp, dns);
  int rc;
  t->resolving = 0;
  if (t->closing) {
    uv_freeaddrinfo(res);
    maybe_free(t);
    return;
  }
  if (status < 0 || res == NULL) {
    snprintf(t->err, sizeof t->err, "dns: %s", uv_strerror(status));
    uv_freeaddrinfo(res);
    t->cb->connected(t, t->err, t->ud);
    return;
  }
  rc = connect_to(t, res->ai_addr);
  uv_freeaddrinfo(res);
  if (rc != 0)
    t->cb->connected(t, reason(t, rc), t->ud);
}

ml_tcp *ml_tcp_connect(uv_loop_t *loop, const char *host, int port,
                       ml_tls *tls, const char *name, const ml_tcp_cbs *cb,
                       void *ud, char *err, size_t errlen) {
  size_t n = strlen(host) + 1, nn = name != NULL ? strlen(name) + 1 : 0;
  ml_tcp *t = calloc(1, sizeof *t + n + nn);
  struct sockaddr_storage ss;
  struct addrinfo hints;
  char ports[16];
  int rc;
  if (t == NULL || ml_stream_init(loop, &t->s, &stream_cbs, NULL) != 0) {
    free(t);
    snprintf(err, errlen, "not enough memory");
    return NULL;
  }
  memcpy(t->host, host, n);
  t->name = t->host;
  if (name != NULL)
    t->name = memcpy(t->host + n, name, nn);
  t->loop = loop;
  t->cb = cb;
  t->ud = ud;
  t->tls = tls;
  t->port = port;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
    if ((rc = connect_to(t, (struct sockaddr *)&ss)) == 0)
      return t;
    snprintf(err, errlen, "%s", reason(t, rc));
    ml_tcp_close(t);
    return NULL;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(ports, sizeof ports, "%d", port);
  if (uv_getaddrinfo(loop, &t->dns, on_resolved, host, ports, &hints) != 0) {
    snprintf(err, errlen, "dns: cannot start a lookup");
    ml_tcp_close(t);
    return NULL;
  }
  t->resolving = 1;
  return t;
}

/* }====================================================== */
