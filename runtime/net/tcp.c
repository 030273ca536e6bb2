/*
 * tcp.c - an outbound TCP connection with an input buffer: a lookup off
 * the loop (none for an address), connect, reads that append to 'in'
 * while the owner wants them, and writes that try the socket first and
 * queue the rest.  Deadlines are the owner's (lib_tcp.c, on the state's
 * clock).  Owned by whoever connected it; freed once closed and its
 * handle and lookup have called back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/tcp.h"
#include "base/util.h"

#define READ_CHUNK 65536

struct ml_tcp {
  uv_loop_t *loop;
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_getaddrinfo_t dns;
  uv_write_t wreq;
  const ml_tcp_cbs *cb;
  void *ud;
  ml_buf in;                     /* read, from 'off' on not yet taken */
  size_t off;
  ml_buf wbuf;                   /* the write in flight */
  int ended;
  int port;
  unsigned connected : 1;
  unsigned reading : 1;
  unsigned writing : 1;
  unsigned resolving : 1;
  unsigned closing : 1;
  unsigned handle_closed : 1;
  char err[160];
  char host[];
};

static void maybe_free(ml_tcp *t) {
  if (!t->closing || !t->handle_closed || t->resolving)
    return;
  ml_buf_free(&t->in);
  ml_buf_free(&t->wbuf);
  free(t);
}

static void on_closed(uv_handle_t *h) {
  ml_tcp *t = h->data;
  t->handle_closed = 1;
  maybe_free(t);
}

void ml_tcp_close(ml_tcp *t) {
  if (t->closing)
    return;
  t->closing = 1;
  if (t->resolving)
    uv_cancel((uv_req_t *)&t->dns);
  uv_close((uv_handle_t *)&t->tcp, on_closed);
}

void ml_tcp_set_owner(ml_tcp *t, const ml_tcp_cbs *cb, void *ud) {
  t->cb = cb;
  t->ud = ud;
}

void ml_tcp_ref(ml_tcp *t, int on) {
  if (t->closing)
    return;
  if (on)
    uv_ref((uv_handle_t *)&t->tcp);
  else
    uv_unref((uv_handle_t *)&t->tcp);
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

/*
** {======================================================
** Reading and writing
** =======================================================
*/

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  ml_tcp *t = h->data;
  ML_UNUSED(hint);
  if (ml_buf_reserve(&t->in, READ_CHUNK) != 0) {
    buf->base = NULL;            /* libuv reports UV_ENOBUFS */
    buf->len = 0;
    return;
  }
  buf->base = t->in.data + t->in.len;
  buf->len = t->in.cap - t->in.len;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  ml_tcp *t = s->data;
  ML_UNUSED(buf);
  if (t->closing || nread == 0)
    return;
  if (nread < 0) {
    t->ended = (int)nread;
    uv_read_stop(s);
    t->reading = 0;
  } else {
    t->in.len += (size_t)nread;
  }
  t->cb->data(t, t->ud);
}

void ml_tcp_read(ml_tcp *t, int on) {
  if (t->closing || t->ended || !t->connected || (on != 0) == t->reading)
    return;
  if (on && uv_read_start((uv_stream_t *)&t->tcp, on_alloc, on_read) != 0)
    return;
  if (!on)
    uv_read_stop((uv_stream_t *)&t->tcp);
  t->reading = on != 0;
}

static void write_done(uv_write_t *w, int status) {
  ml_tcp *t = container_of(w, ml_tcp, wreq);
  t->writing = 0;
  t->wbuf.len = 0;
  if (t->closing)
    return;
  t->cb->written(t, status < 0 ? "closed" : NULL, t->ud);
}

int ml_tcp_write(ml_tcp *t, const char *p, size_t n) {
  uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
  int w;
  if (t->closing || !t->connected || t->writing)
    return -1;
  w = uv_try_write((uv_stream_t *)&t->tcp, &b, 1);
  if (w == UV_EAGAIN)
    w = 0;
  if (w < 0)
    return -1;
  if ((size_t)w == n)
    return 0;
  t->wbuf.len = 0;
  if (ml_buf_append(&t->wbuf, p + w, n - (size_t)w) != 0)
    return -1;
  b = uv_buf_init(t->wbuf.data, (unsigned)t->wbuf.len);
  if (uv_write(&t->wreq, (uv_stream_t *)&t->tcp, &b, 1, write_done) != 0)
    return -1;
  t->writing = 1;
  return 1;
}

int ml_tcp_writing(ml_tcp *t) {
  return t->writing;
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

static const char *connect_error(ml_tcp *t, int status) {
  if (status == UV_ECONNREFUSED)
    return "connection refused";
  if (status == UV_ETIMEDOUT)
    return "timeout";
  snprintf(t->err, sizeof t->err, "connect: %s", uv_strerror(status));
  return t->err;
}

static void on_connect(uv_connect_t *req, int status) {
  ml_tcp *t = container_of(req, ml_tcp, creq);
  if (t->closing)
    return;
  t->connected = status == 0;
  t->cb->connected(t, status < 0 ? connect_error(t, status) : NULL, t->ud);
}

/* Starts the connect; 0, or the libuv error of a connect that failed
 * at once. */
static int connect_to(ml_tcp *t, const struct sockaddr *sa) {
  uv_tcp_nodelay(&t->tcp, 1);
  return uv_tcp_connect(&t->creq, &t->tcp, sa, on_connect);
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
    t->cb->connected(t, connect_error(t, rc), t->ud);
}

ml_tcp *ml_tcp_connect(uv_loop_t *loop, const char *host, int port,
                       const ml_tcp_cbs *cb, void *ud, char *err,
                       size_t errlen) {
  size_t n = strlen(host) + 1;
  ml_tcp *t = calloc(1, sizeof *t + n);
  struct sockaddr_storage ss;
  struct addrinfo hints;
  char ports[16];
  int rc;
  if (t == NULL) {
    snprintf(err, errlen, "not enough memory");
    return NULL;
  }
  memcpy(t->host, host, n);
  t->loop = loop;
  t->cb = cb;
  t->ud = ud;
  t->port = port;
  uv_tcp_init(loop, &t->tcp);
  t->tcp.data = t;
  if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) == 0) {
    if ((rc = connect_to(t, (struct sockaddr *)&ss)) == 0)
      return t;
    snprintf(err, errlen, "%s", connect_error(t, rc));
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
