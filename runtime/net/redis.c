/*
 * redis.c - a Redis connection: the name looked up off the loop, TCP,
 * AUTH and SELECT first, then commands.  Commands queue in 'out' and go
 * out in one write at the end of the loop turn (an idle handle), so the
 * commands that many coroutines issue in one turn share a write and a
 * round trip; replies come back in order and are matched to the queue
 * of slots.  The oldest slot has a deadline on the clock: past it, the
 * connection is closed and every slot fails with "timeout".
 *
 * A connection (ml_redis) is owned by whoever made it (lib_redis.c); it
 * owns its slots, its reader and its handles, and frees itself once it is
 * closed and its stream, its flusher and its lookup have called back.
 * The bytes go through the stream (net/stream.c): plain TCP, or TLS for
 * rediss://.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/redis.h"
#include "net/stream.h"
#include "base/util.h"

/* One command (or pipeline) waiting for its replies; owned by the
 * connection. */
struct ml_redis_slot {
  ml_redis_slot *next;
  void *ud;                      /* NULL: forgotten, or AUTH/SELECT's */
  int n, got;                    /* replies expected, received */
  int internal;                  /* AUTH or SELECT: checked here */
  uint64_t timeout_ms;
  ml_resp *acc;                  /* a pipeline's replies so far */
};

struct ml_redis {
  uv_loop_t *loop;
  const ml_redis_cbs *cb;
  void *ud;
  ml_stream s;                   /* the socket, TLS or not */
  ml_tls *tls;                   /* the owner's client context, or NULL */
  uv_getaddrinfo_t dns;
  uv_idle_t flusher;             /* writes 'out' at the end of the turn */
  ml_ctimer timer;               /* connecting, or the oldest reply */
  ml_resp_reader *reader;
  ml_buf out;                    /* queued, not yet written */
  ml_redis_slot *head, *tail;
  int nslots;
  int closes;                    /* handle closes outstanding */
  int port;
  int db;
  uint64_t connect_ms;
  unsigned connected : 1;        /* TCP (and TLS) is up */
  unsigned ready : 1;            /* AUTH and SELECT answered */
  unsigned resolving : 1;
  unsigned closing : 1;
  unsigned freed : 1;
  unsigned push : 1;
  unsigned refd : 1;
  unsigned in_read : 1;          /* parsing replies: free later */
  char *host, *user, *password;
  char err[160];
  char readbuf[65536];
};

static void fail_all(ml_redis *c, const char *err);
static void arm(ml_redis *c);

/*
** {======================================================
** Lifetime
** =======================================================
*/

static void maybe_free(ml_redis *c) {
  if (!c->closing || c->closes > 0 || c->resolving || c->in_read ||
      c->freed)
    return;
  c->freed = 1;
  ml_resp_reader_free(c->reader);
  ml_buf_free(&c->out);
  free(c->host);
  free(c->user);
  free(c->password);
  free(c);
}

static void flusher_closed(uv_handle_t *h) {
  ml_redis *c = h->data;
  c->closes--;
  maybe_free(c);
}

static void s_closed(ml_stream *s) {
  ml_redis *c = container_of(s, ml_redis, s);
  c->closes--;
  maybe_free(c);
}

/* Closes the stream and the flusher. */
static void tr_close(ml_redis *c) {
  c->closes = 2;
  ml_stream_close(&c->s);
  uv_close((uv_handle_t *)&c->flusher, flusher_closed);
}

void ml_redis_close(ml_redis *c) {
  if (c->closing)
    return;
  c->closing = 1;
  ml_clock_timer_stop(&c->timer);
  if (c->resolving)
    uv_cancel((uv_req_t *)&c->dns);
  tr_close(c);
  fail_all(c, c->err[0] != '\0' ? c->err : "closed");
  maybe_free(c);
}

/* The connection failed: every slot learns why, the owner too. */
static void fail(ml_redis *c, const char *err) {
  if (c->closing)
    return;
  if (err != c->err)
    snprintf(c->err, sizeof c->err, "%s", err);
  c->in_read++;                  /* the owner's callbacks may close it */
  ml_redis_close(c);
  if (c->cb->broken != NULL)
    c->cb->broken(c, c->err, c->ud);
  c->in_read--;
  maybe_free(c);
}

int ml_redis_ok(ml_redis *c) {
  return !c->closing;
}

int ml_redis_ready(ml_redis *c) {
  return c->ready && !c->closing;
}

int ml_redis_waiting(ml_redis *c) {
  return c->nslots;
}

void ml_redis_ref(ml_redis *c, int on) {
  c->refd = on != 0;
  if (c->closing)
    return;
  if (on)
    uv_ref((uv_handle_t *)&c->s.tcp);
  else
    uv_unref((uv_handle_t *)&c->s.tcp);
}

void ml_redis_set_push(ml_redis *c, int on) {
  c->push = on != 0;
}

/* }====================================================== */

/*
** {======================================================
** Slots
** =======================================================
*/

static ml_redis_slot *slot_pop(ml_redis *c) {
  ml_redis_slot *s = c->head;
  c->head = s->next;
  if (c->head == NULL)
    c->tail = NULL;
  c->nslots--;
  arm(c);
  return s;
}

/* Fails every slot with err, oldest first; the callbacks may not send
 * on this connection again (it is closing). */
static void fail_all(ml_redis *c, const char *err) {
  ml_redis_slot *s;
  char why[160];
  snprintf(why, sizeof why, "%s", err);
  while ((s = c->head) != NULL) {
    c->head = s->next;
    if (c->head == NULL)
      c->tail = NULL;
    c->nslots--;
    ml_resp_free(s->acc);
    if (s->ud != NULL && !s->internal)
      c->cb->reply(c, s->ud, NULL, why);
    free(s);
  }
}

static void on_deadline(ml_ctimer *t) {
  ml_redis *c = container_of(t, ml_redis, timer);
  fail(c, "timeout");
}

/* The timer follows the oldest slot (or the connect). */
static void arm(ml_redis *c) {
  uint64_t ms = !c->ready ? c->connect_ms
                          : c->head != NULL ? c->head->timeout_ms : 0;
  ml_clock_timer_stop(&c->timer);
  if (c->closing || ms == 0 || (c->ready && c->head == NULL))
    return;
  if (ml_clock_timer_start(&c->timer, on_deadline, ms, 0) != 0)
    fail(c, "not enough memory");
}

static void flush_soon(ml_redis *c);

static ml_redis_slot *slot_add(ml_redis *c, int n, uint64_t timeout_ms,
                               void *ud, int first) {
  ml_redis_slot *s = calloc(1, sizeof *s);
  if (s == NULL)
    return NULL;
  s->n = n;
  s->ud = ud;
  s->timeout_ms = timeout_ms;
  if (first) {                   /* AUTH and SELECT go before the rest */
    s->next = c->head;
    c->head = s;
    if (c->tail == NULL)
      c->tail = s;
  } else {
    if (c->tail != NULL)
      c->tail->next = s;
    else
      c->head = s;
    c->tail = s;
  }
  c->nslots++;
  if (c->head == s && c->ready)
    arm(c);
  return s;
}

ml_redis_slot *ml_redis_send(ml_redis *c, const char *cmd, size_t len,
                             int n, uint64_t timeout_ms, void *slot_ud) {
  ml_redis_slot *s = NULL;
  size_t was = c->out.len;
  if (c->closing || ml_buf_append(&c->out, cmd, len) != 0)
    return NULL;
  if (n > 0 && (s = slot_add(c, n, timeout_ms, slot_ud, 0)) == NULL) {
    c->out.len = was;
    return NULL;
  }
  flush_soon(c);
  return s;
}

void ml_redis_forget(ml_redis_slot *s) {
  s->ud = NULL;
}

/* }====================================================== */

/*
** {======================================================
** Replies
** =======================================================
*/

/* AUTH's or SELECT's reply: an error fails the connection. */
static int internal_reply(ml_redis *c, ml_resp *v) {
  char why[160];
  if (v->type == ML_RESP_ERROR) {
    snprintf(why, sizeof why, "auth: %s", v->str);
    ml_resp_free(v);
    fail(c, why);
    return -1;
  }
  ml_resp_free(v);
  if (c->head == NULL || !c->head->internal) {
    c->ready = 1;                /* the last of them */
    arm(c);
  }
  return 0;
}

/* One reply, for the oldest slot or as a push; -1 if c is closing. */
static int dispatch(ml_redis *c, ml_resp *v) {
  ml_redis_slot *s = c->head;
  if (s == NULL) {
    if (c->push && c->cb->push != NULL) {
      c->cb->push(c, v, c->ud);
      return c->closing ? -1 : 0;
    }
    ml_resp_free(v);
    fail(c, "bad reply");        /* nobody asked */
    return -1;
  }
  if (s->n > 1) {                /* a pipeline: gather */
    if (s->acc == NULL) {
      if ((s->acc = calloc(1, sizeof *s->acc)) == NULL ||
          (s->acc->elements = calloc((size_t)s->n, sizeof v)) == NULL) {
        ml_resp_free(v);
        fail(c, "not enough memory");
        return -1;
      }
      s->acc->type = ML_RESP_ARRAY;
    }
    s->acc->elements[s->acc->len++] = v;
    if (++s->got < s->n)
      return 0;
    v = s->acc;
    s->acc = NULL;
  }
  slot_pop(c);
  if (s->internal) {
    free(s);
    return internal_reply(c, v);
  }
  if (s->ud != NULL)
    c->cb->reply(c, s->ud, v, NULL);
  else
    ml_resp_free(v);             /* its caller left */
  free(s);
  return c->closing ? -1 : 0;
}

/* Bytes from the server: every complete reply is dispatched. */
static void on_data(ml_redis *c, const char *data, size_t len) {
  ml_resp *v;
  int rc;
  if (ml_resp_feed(c->reader, data, len) != 0) {
    fail(c, "too large");
    return;
  }
  c->in_read = 1;
  while (!c->closing && (rc = ml_resp_next(c->reader, &v)) != 0) {
    if (rc < 0) {
      c->in_read = 0;
      fail(c, "bad reply");
      return;
    }
    if (dispatch(c, v) < 0)
      break;
  }
  c->in_read = 0;
  maybe_free(c);
}

/* }====================================================== */

/*
** {======================================================
** The stream
** =======================================================
*/

static void s_alloc(ml_stream *s, uv_buf_t *buf) {
  ml_redis *c = container_of(s, ml_redis, s);
  buf->base = c->readbuf;
  buf->len = sizeof c->readbuf;
}

static void s_read(ml_stream *s, const char *data, size_t len) {
  ml_redis *c = container_of(s, ml_redis, s);
  if (!c->closing)
    on_data(c, data, len);
}

/* The short message for a status the stream reports. */
static const char *stream_error(ml_redis *c, int status) {
  char buf[160];
  if (status == UV_ECONNREFUSED)
    return "connection refused";
  if (status == UV_ETIMEDOUT)
    return "timeout";
  if (status == ML_STREAM_ETLS) {
    snprintf(c->err, sizeof c->err, "%s",
             ml_stream_strerror(&c->s, status, buf, sizeof buf));
    return c->err;
  }
  if (!c->connected) {
    snprintf(c->err, sizeof c->err, "connect: %s", uv_strerror(status));
    return c->err;
  }
  return "closed";
}

static void s_end(ml_stream *s, int status) {
  ml_redis *c = container_of(s, ml_redis, s);
  fail(c, stream_error(c, status));
}

/* Writes 'out': the stream takes it all (what the socket does not take
 * now waits in its queue). */
static void tr_flush(ml_redis *c) {
  if (c->out.len == 0 || !c->connected || c->closing)
    return;
  if (ml_stream_write(&c->s, c->out.data, c->out.len) != 0) {
    fail(c, "closed");
    return;
  }
  c->out.len = 0;
}

static void on_flush(uv_idle_t *h) {
  ml_redis *c = container_of(h, ml_redis, flusher);
  uv_idle_stop(h);
  tr_flush(c);
}

/* The end of this loop turn: everything queued by then, in one write. */
static void flush_soon(ml_redis *c) {
  if (c->connected && !c->closing)
    uv_idle_start(&c->flusher, on_flush);
}

/* Connected, and with TLS the handshake done and the certificate
 * checked. */
static void s_connected(ml_stream *s, int status) {
  ml_redis *c = container_of(s, ml_redis, s);
  if (c->closing)
    return;
  if (status < 0) {
    fail(c, stream_error(c, status));
    return;
  }
  if (ml_stream_read_start(&c->s) != 0) {
    fail(c, "closed");
    return;
  }
  c->connected = 1;
  if (c->head == NULL || !c->head->internal) {
    c->ready = 1;
    arm(c);
  }
  flush_soon(c);
}

static const ml_stream_cbs stream_cbs = {
  s_alloc, s_read, s_end, s_connected, NULL, NULL, NULL, s_closed
};

static void tr_connect(ml_redis *c, const struct sockaddr *sa) {
  int rc = ml_stream_connect(&c->s, sa, c->tls, c->host, NULL);
  if (rc != 0)
    fail(c, stream_error(c, rc));
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  ml_redis *c = container_of(req, ml_redis, dns);
  c->resolving = 0;
  if (c->closing) {
    uv_freeaddrinfo(res);
    maybe_free(c);
    return;
  }
  if (status < 0 || res == NULL) {
    snprintf(c->err, sizeof c->err, "dns: %s", uv_strerror(status));
    uv_freeaddrinfo(res);
    fail(c, c->err);
    return;
  }
  tr_connect(c, res->ai_addr);
  uv_freeaddrinfo(res);
}

/* }====================================================== */

/*
** {======================================================
** Opening
** =======================================================
*/

/* Queues AUTH and SELECT ahead of everything; 0 or -1. */
static int prelude(ml_redis *c) {
  ml_buf b = { NULL, 0, 0 };
  const char *argv[3];
  size_t lens[3];
  char db[16];
  int argc = 0, rc = 0, nslots = 0;
  if (c->password != NULL) {
    argv[argc++] = "AUTH";
    if (c->user != NULL)
      argv[argc++] = c->user;
    argv[argc++] = c->password;
    for (rc = 0; rc < argc; rc++)
      lens[rc] = strlen(argv[rc]);
    if (ml_resp_format(&b, argc, argv, lens) != 0)
      return -1;
    nslots++;
  }
  if (c->db != 0) {
    snprintf(db, sizeof db, "%d", c->db);
    argv[0] = "SELECT";
    argv[1] = db;
    lens[0] = 6;
    lens[1] = strlen(db);
    if (ml_resp_format(&b, 2, argv, lens) != 0) {
      ml_buf_free(&b);
      return -1;
    }
    nslots++;
  }
  c->out = b;
  while (nslots-- > 0) {
    ml_redis_slot *s = slot_add(c, 1, 0, NULL, 1);
    if (s == NULL)
      return -1;
    s->internal = 1;
  }
  return 0;
}

static char *dup_or_null(const char *s) {
  return s != NULL ? strdup(s) : NULL;
}

/* Connects to an address now, or looks the name up first. */
static void start(ml_redis *c) {
  struct sockaddr_storage ss;
  struct addrinfo hints;
  char port[16];
  if (uv_ip4_addr(c->host, c->port, (struct sockaddr_in *)&ss) == 0 ||
      uv_ip6_addr(c->host, c->port, (struct sockaddr_in6 *)&ss) == 0) {
    tr_connect(c, (struct sockaddr *)&ss);
    return;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  snprintf(port, sizeof port, "%d", c->port);
  if (uv_getaddrinfo(c->loop, &c->dns, on_resolved, c->host, port,
                     &hints) != 0) {
    fail(c, "dns: cannot start a lookup");
    return;
  }
  c->resolving = 1;
}

ml_redis *ml_redis_new(uv_loop_t *loop, ml_clock *clock,
                       const ml_redis_opts *o, const ml_redis_cbs *cb,
                       void *ud) {
  ml_redis *c = calloc(1, sizeof *c);
  if (c == NULL)
    return NULL;
  ml_clock_timer_init_on(clock, &c->timer);
  c->loop = loop;
  c->cb = cb;
  c->ud = ud;
  c->port = o->port;
  c->db = o->db;
  c->connect_ms = o->connect_ms;
  c->refd = 1;
  c->tls = o->tls;
  c->host = strdup(o->host);
  c->user = dup_or_null(o->user);
  c->password = dup_or_null(o->password);
  c->reader = ml_resp_reader_new();
  if (c->host == NULL || (o->user && !c->user) ||
      (o->password && !c->password) || c->reader == NULL ||
      prelude(c) != 0) {
    ml_resp_reader_free(c->reader);
    ml_buf_free(&c->out);
    free(c->host);
    free(c->user);
    free(c->password);
    while (c->head != NULL)
      free(slot_pop(c));
    free(c);
    return NULL;
  }
  if (ml_stream_init(loop, &c->s, &stream_cbs, clock) != 0) {
    ml_resp_reader_free(c->reader);
    ml_buf_free(&c->out);
    free(c->host);
    free(c->user);
    free(c->password);
    while (c->head != NULL)
      free(slot_pop(c));
    free(c);
    return NULL;
  }
  uv_idle_init(loop, &c->flusher);
  c->flusher.data = c;
  arm(c);
  start(c);
  return c;
}

/* }====================================================== */
