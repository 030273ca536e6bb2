/*
 * stream.c - a TCP connection with an optional TLS session (stream.h):
 * reads, the write queue and its water marks, the FIN, deadlines on the
 * clock, and OpenSSL driven from memory.  HTTP and everything above is
 * the owner's.
 *
 * The SSL object's BIO is ours and holds no bytes of its own: it reads
 * the ciphertext libuv just read, where it lies (what the SSL object has
 * not taken by the end of the pass is copied to 'in'), and writes the
 * record of an SSL_write straight to the socket when nothing waits
 * before it, else into the output queue, which reaches the socket
 * through uv_try_write and uv_write like a plain stream's.  So an idle
 * connection holds no buffer (SSL_MODE_RELEASE_BUFFERS frees OpenSSL's),
 * ciphertext is copied at most once on each side, and back-pressure
 * counts the bytes that go on the wire.
 */
#include <limits.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include "net/stream.h"

#define TLS_RECORD 0x16             /* a handshake record's first byte */

/* A TLS stream's state beyond its SSL object: allocated with it, so a
 * plain stream stays small.  Owned by the stream. */
struct ml_stream_tls {
  ml_stream *s;
  ml_tls *tls;                /* the context it came from */
  ml_buf in;                  /* ciphertext read but not yet taken */
  const char *in_ptr;         /* ciphertext for the SSL object to take */
  size_t in_len;
  unsigned long code;         /* OpenSSL's error, for ml_stream_strerror */
  const char *why;            /* or our own reason */
  long verify;                /* the peer's certificate check */
  ml_ctimer pump;             /* delivers plaintext held back by a stop */
  unsigned direct : 1;        /* SSL_write's one record: to the socket */
  unsigned full : 1;          /* the socket did not take it all */
};

static int try_now(ml_stream *s, const char *data, size_t len);
static int flush(ml_stream *s);
static int flush_q(ml_stream *s, int tried);
static void flush_or_end(ml_stream *s);
static void tls_pump(ml_stream *s);

/*
** {======================================================
** The BIO: ciphertext from memory, into the output queue
** =======================================================
*/

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

/* A record from SSL_write when nothing waits before it goes to the
 * socket from OpenSSL's buffer (direct); what the socket does not take,
 * and every other record (handshake flights, alerts: several go out as
 * one write), waits in the queue. */
static int bio_write(BIO *b, const char *data, int len) {
  ml_stream *s = BIO_get_data(b);
  size_t n = len > 0 ? (size_t)len : 0, put = 0;
  int rc;
  BIO_clear_retry_flags(b);
  if (n == 0)
    return 0;
  if (s->x->direct && s->wr == NULL && s->q.len == 0 && !s->closing) {
    rc = try_now(s, data, n);
    put = rc > 0 ? (size_t)rc : 0;   /* an error: the flush meets it */
    s->x->full = rc >= 0 && put < n;
  }
  if (put < n && ml_buf_append(&s->q, data + put, n - put) != 0)
    return -1;                       /* out of memory: the SSL op fails */
  s->out_total += (uint64_t)n;
  return len;
}

/* What libuv read and the SSL object has not taken yet; none: try later
 * (the socket's end is handled in on_end, not through the BIO). */
static int bio_read(BIO *b, char *out, int len) {
  ml_stream *s = BIO_get_data(b);
  size_t n;
  BIO_clear_retry_flags(b);
  if (s->x->in_len == 0) {
    BIO_set_retry_read(b);
    return -1;
  }
  n = s->x->in_len < (size_t)len ? s->x->in_len : (size_t)len;
  memcpy(out, s->x->in_ptr, n);
  s->x->in_ptr += n;
  s->x->in_len -= n;
  return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr) {
  ML_UNUSED(b);
  ML_UNUSED(num);
  ML_UNUSED(ptr);
  return cmd == BIO_CTRL_FLUSH;      /* the queue is flushed after each op */
}

static int bio_create(BIO *b) {
  BIO_set_init(b, 1);
  return 1;
}

static void bio_make(void) {
  BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                               "moonlet stream");
  if (m == NULL)
    return;
  BIO_meth_set_write(m, bio_write);
  BIO_meth_set_read(m, bio_read);
  BIO_meth_set_ctrl(m, bio_ctrl);
  BIO_meth_set_create(m, bio_create);
  bio_method = m;
}

int ml_stream_bio_init(void) {
  pthread_once(&bio_once, bio_make);
  return bio_method != NULL ? 0 : -1;
}

/* }====================================================== */

/*
** {======================================================
** Ending and closing
** =======================================================
*/

/* Records why TLS failed, from OpenSSL's error queue, which empties. */
static void tls_failed(ml_stream *s) {
  unsigned long e = ERR_peek_last_error();
  s->fatal = 1;
  if (s->x->code == 0 && s->x->why == NULL)
    s->x->code = e;
  if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED)
    s->x->verify = SSL_get_verify_result(s->ssl);
  ERR_clear_error();
}

static void set_reading(ml_stream *s);

/* The peer is done, or the stream failed: no more reads; the owner hears
 * once, through 'connected' while connecting, else 'end'. */
static void end(ml_stream *s, int status) {
  if (s->ended || s->closing)
    return;
  s->ended = 1;
  set_reading(s);
  if (s->connecting) {
    s->connecting = 0;
    if (s->cb->connected != NULL)
      s->cb->connected(s, status);
  } else if (s->cb->end != NULL) {
    s->cb->end(s, status);
  }
}

static void on_closed(uv_handle_t *h) {
  ml_stream *s = h->data;
  if (s->ssl != NULL) {
    SSL_set_app_data(s->ssl, NULL);
    SSL_free(s->ssl);
    s->ssl = NULL;
  }
  ml_buf_free(&s->q);
  if (s->x != NULL) {
    ml_buf_free(&s->x->in);
    free(s->x);
    s->x = NULL;
  }
  s->cb->closed(s);
}

/*
 * Queues close_notify once, if the session got that far and did not fail.
 * A session whose close_notify was not sent is one OpenSSL will not
 * resume, so one that could not be sent is marked as sent.
 */
static void send_notify(ml_stream *s) {
  if (s->ssl == NULL || !s->tls_done || s->fatal || s->notify_sent)
    return;
  s->notify_sent = 1;
  if (SSL_shutdown(s->ssl) < 0)
    ERR_clear_error();
  SSL_set_shutdown(s->ssl, SSL_get_shutdown(s->ssl) | SSL_SENT_SHUTDOWN);
}

void ml_stream_close(ml_stream *s) {
  if (s->closing)
    return;
  send_notify(s);
  if (s->wr == NULL && s->q.len > 0) {  /* its last bytes, if they fit */
    uv_buf_t b = uv_buf_init(s->q.data, (unsigned)s->q.len);
    uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
  }
  s->closing = 1;
  ml_clock_timer_stop(&s->deadline);
  if (s->x != NULL)
    ml_clock_timer_stop(&s->x->pump);
  uv_close((uv_handle_t *)&s->tcp, on_closed);
}

/* }====================================================== */

/*
** {======================================================
** Writing
** =======================================================
*/

static void check_drain(ml_stream *s) {
  if (s->want_drain && !s->closing &&
      ml_stream_pending(s) <= s->low) {
    s->want_drain = 0;
    if (s->cb->drain != NULL)
      s->cb->drain(s);
  }
}

static void shutdown_done(uv_shutdown_t *r, int status) {
  ML_UNUSED(status);                 /* the owner hears of errors by reads */
  free(r);
}

/* The FIN, once everything queued is written.  Without the memory for
 * it, none: the owner's close ends the connection as well. */
static void maybe_fin(ml_stream *s) {
  uv_shutdown_t *r;
  if (!s->shutdown || s->shut_sent || s->wr != NULL || s->q.len > 0 ||
      s->closing)
    return;
  s->shut_sent = 1;
  if ((r = malloc(sizeof *r)) != NULL &&
      uv_shutdown(r, (uv_stream_t *)&s->tcp, shutdown_done) != 0)
    free(r);
}

/* The one uv_write in flight and its bytes, which were 'q' (stream.h):
 * allocated while it lasts only, so an idle stream holds neither. */
struct ml_stream_write {
  uv_write_t req;
  ml_stream *s;
  ml_buf buf;
};

/* A uv_write's callback runs before the handle's close callback, even
 * when the stream closed meanwhile (UV_ECANCELED): 's' is still there.
 * Its buffer becomes the next 'q' unless one grew meanwhile, or it is a
 * big burst's, whose room is not kept. */
static void write_done(uv_write_t *req, int status) {
  struct ml_stream_write *wr = container_of(req, struct ml_stream_write,
                                            req);
  ml_stream *s = wr->s;
  s->wr = NULL;
  if (s->q.data == NULL && wr->buf.cap <= 65536 && !s->closing) {
    s->q = wr->buf;
    s->q.len = 0;
  } else {
    ml_buf_free(&wr->buf);
  }
  free(wr);
  if (s->closing)
    return;
  if (status < 0) {
    end(s, status);
    return;
  }
  flush_or_end(s);
  check_drain(s);
}

/*
 * Hands 'q' to the socket: uv_try_write, which usually takes it all
 * ('tried': the caller did, and it took none of 'q'), then one uv_write
 * for the rest, which takes 'q' with it.  0, or a write error, which the
 * caller reports: to the owner calling ml_stream_write as its result,
 * from a loop callback through 'end' (flush_or_end).
 */
static int flush_q(ml_stream *s, int tried) {
  struct ml_stream_write *wr;
  uv_buf_t b;
  int n = 0;
  if (s->wr != NULL || s->closing || s->q.len == 0) {
    if (ml_stream_pending(s) > s->high)
      s->want_drain = 1;             /* tell the owner when it went down */
    maybe_fin(s);
    return 0;
  }
  if (!tried) {
    b = uv_buf_init(s->q.data, (unsigned)s->q.len);
    n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
    if (n == UV_EAGAIN)
      n = 0;
    if (n >= 0 && (size_t)n == s->q.len) {
      s->q.len = 0;
      maybe_fin(s);
      return 0;
    }
  }
  if (n >= 0 && (wr = malloc(sizeof *wr)) == NULL)
    n = UV_ENOMEM;
  if (n >= 0) {
    wr->s = s;
    wr->buf = s->q;
    memset(&s->q, 0, sizeof s->q);
    b = uv_buf_init(wr->buf.data + n, (unsigned)(wr->buf.len - (size_t)n));
    if ((n = uv_write(&wr->req, (uv_stream_t *)&s->tcp, &b, 1,
                      write_done)) == 0) {
      s->wr = wr;
    } else {
      ml_buf_free(&wr->buf);
      free(wr);
    }
  }
  if (n < 0) {
    s->q.len = 0;
    return n;
  }
  if (ml_stream_pending(s) > s->high)
    s->want_drain = 1;
  return 0;
}

static int flush(ml_stream *s) {
  return flush_q(s, 0);
}

/* flush from a loop callback: a write error ends the stream. */
static void flush_or_end(ml_stream *s) {
  int rc = flush(s);
  if (rc < 0)
    end(s, rc);
}

/* What the socket takes of 'data' now: the bytes it took (0: none) or a
 * libuv error. */
static int try_now(ml_stream *s, const char *data, size_t len) {
  uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
  int n = uv_try_write((uv_stream_t *)&s->tcp, &b, 1);
  return n == UV_EAGAIN ? 0 : n;
}

/* Plain bytes: straight from the caller's memory when nothing waits;
 * what the socket did not take then is queued for one uv_write. */
static int write_plain(ml_stream *s, const char *data, size_t len) {
  int n, tried = 0;
  s->out_total += len;
  if (s->wr == NULL && s->q.len == 0) {
    if ((n = try_now(s, data, len)) < 0)
      return n;
    data += n;
    len -= (size_t)n;
    if (len == 0)
      return 0;
    tried = 1;                       /* the socket is full: no retry */
  }
  if (ml_buf_append(&s->q, data, len) != 0)
    return UV_ENOMEM;
  return flush_q(s, tried);
}

int ml_stream_write(ml_stream *s, const char *data, size_t len) {
  int n;
  if (s->closing || s->ended || s->shutdown)
    return UV_EPIPE;
  if (len == 0)
    return 0;
  if (s->ssl == NULL)
    return len > UINT_MAX / 2 ? UV_E2BIG : write_plain(s, data, len);
  if (!s->tls_done)
    return UV_ENOTCONN;
  /* one record goes straight out; more go out together from the queue */
  s->x->direct = len <= SSL3_RT_MAX_PLAIN_LENGTH;
  s->x->full = 0;
  while (len > 0) {                  /* each call encrypts (bio_write) */
    n = SSL_write(s->ssl, data, len > INT_MAX / 2 ? INT_MAX / 2 : (int)len);
    if (n <= 0) {
      s->x->direct = 0;
      tls_failed(s);
      return s->x->code == 0 ? UV_ENOMEM : ML_STREAM_ETLS;
    }
    data += n;
    len -= (size_t)n;
  }
  s->x->direct = 0;
  return flush_q(s, s->x->full);
}

size_t ml_stream_pending(ml_stream *s) {
  return s->q.len + (s->wr != NULL ? uv_stream_get_write_queue_size(
                                      (uv_stream_t *)&s->tcp) : 0);
}

uint64_t ml_stream_sent(ml_stream *s) {
  return s->out_total - ml_stream_pending(s);
}

int ml_stream_full(ml_stream *s) {
  return ml_stream_pending(s) > s->high;
}

static uint32_t mark(size_t n) {
  return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

void ml_stream_set_water(ml_stream *s, size_t low, size_t high) {
  s->low = mark(low);
  s->high = mark(high);
}

void ml_stream_want_drain(ml_stream *s, size_t low) {
  s->low = mark(low);
  s->want_drain = 1;
}

void ml_stream_shutdown(ml_stream *s) {
  if (s->closing || s->shutdown)
    return;
  send_notify(s);
  s->shutdown = 1;
  flush(s);
}

/* }====================================================== */

/*
** {======================================================
** Reading
** =======================================================
*/

/* libuv reads while the owner wants plaintext, a handshake runs, or a
 * clear-text client is read to its end. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf);
static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void set_reading(ml_stream *s) {
  int want = !s->closing && !s->ended && !s->connecting_tcp &&
             (s->reading || s->handshaking || s->discard);
  if (want && !s->uv_reading) {
    if (uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
      s->uv_reading = 1;
  } else if (!want && s->uv_reading) {
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->uv_reading = 0;
  }
}

/* The owner's buffer; a TLS stream reads into its second half. */
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  ml_stream *s = h->data;
  size_t half;
  ML_UNUSED(hint);
  s->cb->alloc(s, buf);
  if (s->ssl != NULL) {
    half = buf->len / 2;
    buf->base += half;
    buf->len -= half;
  }
}

/* The handshake goes on with what came; 1 once it is done. */
static int handshake(ml_stream *s) {
  int rc;
  rc = SSL_do_handshake(s->ssl);
  if (rc == 1) {
    s->handshaking = 0;
    s->tls_done = 1;
    flush_or_end(s);
    if (s->ended)
      return 0;
    set_reading(s);
    s->connecting = 0;
    if (s->cb->connected != NULL)
      s->cb->connected(s, 0);
    return !s->closing && !s->ended;
  }
  if (SSL_get_error(s->ssl, rc) == SSL_ERROR_WANT_READ) {
    flush_or_end(s);
    return 0;
  }
  tls_failed(s);
  flush(s);                          /* the alert, if the socket takes it */
  end(s, ML_STREAM_ETLS);
  return 0;
}

/* Keeps the ciphertext the SSL object did not take, for the next pass. */
static void keep_input(ml_stream *s) {
  if (s->x->in_len == 0) {
    s->x->in.len = 0;
  } else if (s->x->in.data != NULL && s->x->in_ptr >= s->x->in.data &&
             s->x->in_ptr < s->x->in.data + s->x->in.len) {
    memmove(s->x->in.data, s->x->in_ptr, s->x->in_len);
    s->x->in.len = s->x->in_len;
  } else {
    s->x->in.len = 0;
    if (ml_buf_append(&s->x->in, s->x->in_ptr, s->x->in_len) != 0) {
      s->x->why = "not enough memory";
      end(s, ML_STREAM_ETLS);
    }
  }
  s->x->in_len = 0;
  s->x->in_ptr = NULL;
}

/* Nothing left to decrypt: no ciphertext the SSL object has not taken,
 * no plaintext it holds.  SSL_read would only say so, at the cost of a
 * record buffer made and freed (SSL_MODE_RELEASE_BUFFERS) and a look at
 * the error queue; a record it holds in part needs more bytes anyway. */
static int drained(ml_stream *s) {
  return s->x->in_len == 0 && SSL_pending(s->ssl) == 0;
}

/*
 * Runs the SSL object over the input: the handshake, then plaintext up
 * to the owner while it reads, until it is all taken; then the output it
 * made (tickets, key updates, alerts) goes out.
 */
static void tls_pump(ml_stream *s) {
  uv_buf_t b;
  int n;
  if (s->handshaking && !handshake(s))
    goto out;
  if (s->reading) {
    s->cb->alloc(s, &b);
    b.len /= 2;
  }
  while (s->reading && !s->closing && !s->ended && !drained(s)) {
    n = SSL_read(s->ssl, b.base, (int)(b.len > INT_MAX ? INT_MAX : b.len));
    if (n > 0) {
      s->cb->read(s, b.base, (size_t)n);
      continue;
    }
    switch (SSL_get_error(s->ssl, n)) {
    case SSL_ERROR_WANT_READ:
      goto out;
    case SSL_ERROR_ZERO_RETURN:      /* close_notify: a clean end */
      end(s, UV_EOF);
      goto out;
    default:
      tls_failed(s);
      end(s, ML_STREAM_ETLS);
      goto out;
    }
  }
out:
  if (!s->closing) {
    flush_or_end(s);
    keep_input(s);
  }
}

/* A server's TLS port got clear text: its reply goes back, then a FIN,
 * and the rest is read and dropped until the peer's end. */
static void answer_plain(ml_stream *s) {
  s->discard = 1;
  s->handshaking = 0;
  s->x->in_len = 0;
  if (s->x->tls->plain_reply != NULL)
    ml_buf_append(&s->q, s->x->tls->plain_reply, s->x->tls->plain_len);
  s->shutdown = 1;
  flush_or_end(s);
}

static void on_tls_read(ml_stream *s, const char *data, size_t len) {
  if (s->discard)
    return;
  if (s->server && !s->sniffed) {
    s->sniffed = 1;
    if ((unsigned char)data[0] != TLS_RECORD &&
        data[0] >= 'A' && data[0] <= 'Z') {
      answer_plain(s);
      return;
    }
  }
  if (s->x->in.len > 0) {
    if (ml_buf_append(&s->x->in, data, len) != 0) {
      s->x->why = "not enough memory";
      end(s, ML_STREAM_ETLS);
      return;
    }
    s->x->in_ptr = s->x->in.data;
    s->x->in_len = s->x->in.len;
  } else {
    s->x->in_ptr = data;
    s->x->in_len = len;
  }
  tls_pump(s);
}

/* The socket's end: with TLS, clean only after the peer's close_notify. */
static void on_end(ml_stream *s, int status) {
  if (s->discard) {
    end(s, ML_STREAM_EPLAIN);
  } else if (s->ssl != NULL && status == UV_EOF && s->handshaking) {
    s->x->why = "handshake failed (connection closed)";
    s->fatal = 1;
    end(s, ML_STREAM_ETLS);
  } else if (s->ssl != NULL && status == UV_EOF) {
    end(s, SSL_get_shutdown(s->ssl) & SSL_RECEIVED_SHUTDOWN
               ? UV_EOF : ML_STREAM_ETRUNC);
  } else {
    end(s, status);
  }
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  ml_stream *s = st->data;
  if (s->closing || n == 0)
    return;
  if (n < 0)
    on_end(s, (int)n);
  else if (s->ssl == NULL)
    s->cb->read(s, buf->base, (size_t)n);
  else
    on_tls_read(s, buf->base, (size_t)n);
}

/* A read restarted over plaintext held back by a stop. */
static void pump_due(ml_ctimer *t) {
  ml_stream *s = container_of(t, struct ml_stream_tls, pump)->s;
  if (s->closing || !s->reading || s->ended ||
      (s->x->in.len == 0 && SSL_pending(s->ssl) == 0))
    return;
  s->x->in_ptr = s->x->in.data;
  s->x->in_len = s->x->in.len;
  tls_pump(s);
}

int ml_stream_read_start(ml_stream *s) {
  if (s->closing || s->ended)
    return UV_EPIPE;
  s->reading = 1;
  set_reading(s);
  if (s->ssl != NULL && s->tls_done &&
      (s->x->in.len > 0 || SSL_pending(s->ssl) > 0)) {
    if (s->deadline.clock == NULL ||
        ml_clock_timer_start(&s->x->pump, pump_due, 0, 0) != 0)
      pump_due(&s->x->pump);
  }
  return s->uv_reading || s->connecting_tcp ? 0 : UV_EPIPE;
}

void ml_stream_read_stop(ml_stream *s) {
  s->reading = 0;
  set_reading(s);
}

/* }====================================================== */

/*
** {======================================================
** Starting: connect, accept, the SSL object
** =======================================================
*/

int ml_stream_init(uv_loop_t *loop, ml_stream *s, const ml_stream_cbs *cb,
                   ml_clock *clock) {
  int rc;
  memset(s, 0, sizeof *s);
  s->cb = cb;
  s->low = 16384;
  s->high = 65536;
  ml_clock_timer_init_on(clock, &s->deadline);
  if ((rc = uv_tcp_init(loop, &s->tcp)) != 0)
    return rc;
  s->tcp.data = s;
  return 0;
}

static int is_address(const char *name) {
  unsigned char a[16];
  return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* The SSL object over our BIO, and the state beside it; 0 or
 * UV_ENOMEM. */
static int tls_start(ml_stream *s, ml_tls *t) {
  BIO *bio;
  if ((s->x = calloc(1, sizeof *s->x)) == NULL ||
      (s->ssl = SSL_new(t->ctx)) == NULL ||
      (bio = BIO_new(bio_method)) == NULL) {
    SSL_free(s->ssl);
    s->ssl = NULL;
    free(s->x);
    s->x = NULL;
    ERR_clear_error();
    return UV_ENOMEM;
  }
  s->x->s = s;
  s->x->verify = X509_V_OK;
  ml_clock_timer_init_on(s->deadline.clock, &s->x->pump);
  BIO_set_data(bio, s);
  SSL_set_bio(s->ssl, bio, bio);     /* one reference for both ways */
  SSL_set_app_data(s->ssl, s);
  s->x->tls = t;
  s->handshaking = 1;
  return 0;
}

/* SNI and the name the certificate must show: a host name, or an IP
 * address (no SNI for those, as RFC 6066 says). */
static int tls_name(ml_stream *s, const char *name) {
  X509_VERIFY_PARAM *p = SSL_get0_param(s->ssl);
  if (name == NULL || *name == '\0')
    return 0;
  if (is_address(name))
    return X509_VERIFY_PARAM_set1_ip_asc(p, name) == 1 ? 0 : UV_EINVAL;
  X509_VERIFY_PARAM_set_hostflags(p, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  if (SSL_set_tlsext_host_name(s->ssl, name) != 1 ||
      SSL_set1_host(s->ssl, name) != 1) {
    ERR_clear_error();
    return UV_EINVAL;
  }
  return 0;
}

/* Like write_done, this runs before the close callback. */
static void on_connect(uv_connect_t *cr, int status) {
  ml_stream *s = cr->data;
  free(cr);
  s->connecting_tcp = 0;
  if (s->closing || s->ended)
    return;
  if (status < 0) {
    end(s, status);
    return;
  }
  if (s->ssl == NULL) {
    s->connecting = 0;
    set_reading(s);
    if (s->cb->connected != NULL)
      s->cb->connected(s, 0);
    return;
  }
  set_reading(s);
  handshake(s);                      /* the ClientHello */
}

int ml_stream_connect(ml_stream *s, const struct sockaddr *addr,
                      ml_tls *tls, const char *name, SSL_SESSION *sess) {
  uv_connect_t *cr;
  int rc;
  if (tls != NULL) {
    if ((rc = tls_start(s, tls)) != 0 || (rc = tls_name(s, name)) != 0)
      return rc;
    SSL_set_connect_state(s->ssl);
    if (sess != NULL)
      SSL_set_session(s->ssl, sess);
  }
  if ((cr = malloc(sizeof *cr)) == NULL)
    return UV_ENOMEM;
  cr->data = s;
  uv_tcp_nodelay(&s->tcp, 1);
  s->connecting = 1;
  s->connecting_tcp = 1;
  rc = uv_tcp_connect(cr, &s->tcp, addr, on_connect);
  if (rc != 0) {
    free(cr);
    s->connecting = s->connecting_tcp = 0;
  }
  return rc;
}

int ml_stream_accept(ml_stream *s, uv_stream_t *listener, ml_tls *tls) {
  int rc;
  if ((rc = uv_accept(listener, (uv_stream_t *)&s->tcp)) != 0)
    return rc;
  s->server = 1;
  if (tls != NULL) {
    if ((rc = tls_start(s, tls)) != 0)
      return rc;
    SSL_set_accept_state(s->ssl);
  }
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** Deadlines, trimming, questions
** =======================================================
*/

static void deadline_due(ml_ctimer *t) {
  ml_stream *s = container_of(t, ml_stream, deadline);
  if (!s->closing && s->cb->timeout != NULL)
    s->cb->timeout(s);
}

int ml_stream_deadline(ml_stream *s, uint64_t ms) {
  if (ms == 0 || s->deadline.clock == NULL) {
    ml_clock_timer_stop(&s->deadline);
    return 0;
  }
  return ml_clock_timer_start(&s->deadline, deadline_due, ms, 0);
}

void ml_stream_trim(ml_stream *s) {
  if (s->q.data != NULL && s->q.len == 0)
    ml_buf_free(&s->q);
  if (s->x != NULL && s->x->in.data != NULL && s->x->in.len == 0)
    ml_buf_free(&s->x->in);
}

int ml_stream_fd(ml_stream *s) {
  uv_os_fd_t fd;
  if (s->ssl != NULL || s->closing ||
      uv_fileno((uv_handle_t *)&s->tcp, &fd) != 0)
    return -1;
  return fd;
}

int ml_stream_is_tls(ml_stream *s) {
  return s->ssl != NULL;
}

int ml_stream_resumed(ml_stream *s) {
  return s->ssl != NULL && SSL_session_reused(s->ssl);
}

void ml_stream_info(ml_stream *s, ml_stream_tls_info *info) {
  const unsigned char *alpn = NULL;
  unsigned int alen = 0;
  memset(info, 0, sizeof *info);
  if (s->ssl == NULL || !s->tls_done)
    return;
  info->version = SSL_get_version(s->ssl);
  info->cipher = SSL_get_cipher_name(s->ssl);
  info->sni = SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name);
  SSL_get0_alpn_selected(s->ssl, &alpn, &alen);
  info->alpn = alen > 0 ? (const char *)alpn : NULL;
  info->alpn_len = alen;
}

const char *ml_stream_strerror(ml_stream *s, int status, char *buf,
                               size_t len) {
  const char *r;
  switch (status) {
  case ML_STREAM_ETLS:
    if (s->x == NULL) {
      snprintf(buf, len, "tls: handshake failed");
    } else if (s->x->verify != X509_V_OK) {
      snprintf(buf, len, "tls: certificate verify failed (%s)",
               X509_verify_cert_error_string(s->x->verify));
    } else if (s->x->why != NULL) {
      snprintf(buf, len, "tls: %s", s->x->why);
    } else {
      r = s->x->code != 0 ? ERR_reason_error_string(s->x->code) : NULL;
      snprintf(buf, len, "tls: %s", r != NULL ? r : "handshake failed");
    }
    return buf;
  case ML_STREAM_ETRUNC:
  case UV_EOF:
    return "closed";
  case ML_STREAM_EPLAIN:
    return "tls: clear text on a TLS port";
  default:
    return uv_strerror(status);
  }
}

/* }====================================================== */
