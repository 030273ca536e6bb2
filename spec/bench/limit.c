/*
 * limit.c - the ceiling for `make bench`: a bare libuv + llhttp server that
 * answers every request with a fixed "Hello, World!" response, with no
 * scripting at all.  Keep-alive and pipelining: every response a read
 * completes is gathered and written at once, in order.
 *
 *   limit [--port P] [--fanin BACKEND_PORT] [--sleep MS]
 *
 * --fanin: each request first fetches GET /backend from 127.0.0.1:BACKEND_PORT
 * over a pooled keep-alive connection (a LIFO of idle ones; a new one when
 * none is idle), then answers.  Idle connections stay read, so one the
 * backend closes (nginx after keepalive_timeout, 75 s) leaves the pool at
 * once; a reused one that fails before any byte of the answer is retried
 * once on a new connection, as real clients do.  --sleep: each request
 * waits MS on a timer.
 * A connection serves its requests one after another in both modes.
 * Prints `limit listening on http://127.0.0.1:PORT` once it accepts.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <uv.h>
#include <llhttp.h>

typedef struct conn conn;
typedef struct backend backend;

struct conn {
  uv_tcp_t tcp;
  uv_timer_t timer;        /* --sleep only */
  llhttp_t parser;
  int pending;             /* requests still waiting for a delay */
  int closes;              /* handle closes outstanding */
  backend *fetch;          /* --fanin: the fetch in flight */
  unsigned busy : 1;       /* a delay (fetch or timer) runs */
  unsigned close_after : 1;
  unsigned closing : 1;
};

struct backend {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  llhttp_t parser;
  conn *owner;             /* NULL while idle in the pool */
  backend *next_idle, *prev_idle;
  unsigned idle : 1;       /* in the pool */
  unsigned done : 1;       /* a complete response arrived */
  unsigned keep : 1;
  unsigned reused : 1;     /* served a fetch before this one */
  unsigned got_bytes : 1;  /* some of this fetch's answer arrived */
};

typedef struct {
  uv_write_t req;
  uv_buf_t buf;
  conn *c;
} wreq_t;

static uv_loop_t *loop;
static uv_tcp_t listener;
static uv_timer_t date_timer;
static char date_hdr[64];
static char resp_ok[256];  /* the keep-alive answer, rebuilt every second */
static int resp_ok_len;
static char read_buf[65536];
static int fanin_port, sleep_ms;
static backend *idle_backends;
static struct sockaddr_in backend_addr;
static llhttp_settings_t req_settings, res_settings;
static char *out;          /* responses not yet handed to libuv: shared, */
static size_t out_len, out_cap; /* flushed before another conn appends */
static conn *out_owner;

static const char BODY[] = "Hello, World!";
static const char BACKEND_REQ[] =
  "GET /backend HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static void conn_close(conn *c);
static void start_delay(conn *c);
static void flush(conn *c);
static void start_fetch(conn *c, int fresh);

/* The Date header, refreshed once a second as real servers do, and the
 * whole usual answer with it. */
static void update_date(uv_timer_t *t) {
  time_t now = time(NULL);
  struct tm tm;
  (void)t;
  gmtime_r(&now, &tm);
  strftime(date_hdr, sizeof date_hdr, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  resp_ok_len = snprintf(resp_ok, sizeof resp_ok,
                         "HTTP/1.1 200 OK\r\nServer: limit\r\nDate: %s\r\n"
                         "Content-Type: text/html; charset=utf-8\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         date_hdr, (int)sizeof BODY - 1, BODY);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h; (void)hint;
  *buf = uv_buf_init(read_buf, sizeof read_buf); /* consumed at once */
}

/* Appends one response to the shared output, which holds one
 * connection's responses at a time. */
static void append_response(conn *c, int status) {
  char head[256];
  const char *r = head;
  int n, ok = status == 200;
  if (out_owner && out_owner != c) flush(out_owner);
  out_owner = c;
  if (ok && !c->close_after) {
    r = resp_ok;
    n = resp_ok_len;
  } else {
    n = snprintf(head, sizeof head,
                 "HTTP/1.1 %s\r\nServer: limit\r\nDate: %s\r\n"
                 "Content-Type: text/html; charset=utf-8\r\n"
                 "Content-Length: %d\r\n%s\r\n%s",
                 ok ? "200 OK" : "502 Bad Gateway", date_hdr,
                 ok ? (int)sizeof BODY - 1 : 0,
                 c->close_after ? "Connection: close\r\n" : "",
                 ok ? BODY : "");
  }
  if (out_len + n > out_cap) {
    out_cap = (out_len + n) * 2;
    out = realloc(out, out_cap);
    if (!out) abort();
  }
  memcpy(out + out_len, r, n);
  out_len += n;
}

static void on_written(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  conn *c = w->c;
  free(w->buf.base);
  free(w);
  if (status < 0) conn_close(c);
}

/* Hands the gathered output to the socket: a try_write, then a queued
 * write for what it did not take; libuv keeps the order. */
static void flush(conn *c) {
  int n = 0;
  uv_buf_t b;
  if (out_owner != c) return;
  out_owner = NULL;
  if (c->closing || out_len == 0) { out_len = 0; return; }
  b = uv_buf_init(out, out_len);
  n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n < 0 && n != UV_EAGAIN) { out_len = 0; conn_close(c); return; }
  if (n < 0) n = 0;
  if ((size_t)n < out_len) {
    wreq_t *w = malloc(sizeof *w);
    w->c = c;
    w->buf = uv_buf_init(malloc(out_len - n), out_len - n);
    memcpy(w->buf.base, out + n, out_len - n);
    uv_write(&w->req, (uv_stream_t *)&c->tcp, &w->buf, 1, on_written);
  }
  out_len = 0;
  if (c->close_after && !c->busy && c->pending == 0)
    conn_close(c); /* queued writes still go out before the close */
}

/*
** {======================================================
** Client connections
** =======================================================
*/

static int on_message_complete(llhttp_t *p) {
  conn *c = p->data;
  if (!llhttp_should_keep_alive(p)) c->close_after = 1;
  if (fanin_port || sleep_ms) {
    c->pending++;
    if (!c->busy) start_delay(c);
  } else {
    append_response(c, 200);
  }
  return 0;
}

static void on_closed(uv_handle_t *h) {
  conn *c = h->data;
  if (--c->closes == 0) free(c);
}

static void conn_close(conn *c) {
  if (c->closing) return;
  c->closing = 1;
  if (out_owner == c) { out_owner = NULL; out_len = 0; }
  if (c->fetch) c->fetch->owner = NULL; /* the fetch finishes ownerless */
  c->closes = 1;
  uv_close((uv_handle_t *)&c->tcp, on_closed);
  if (sleep_ms) {
    c->closes++;
    uv_close((uv_handle_t *)&c->timer, on_closed);
  }
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  conn *c = s->data;
  if (nread < 0) { conn_close(c); return; }
  if (nread == 0) return;
  if (llhttp_execute(&c->parser, buf->base, nread) != HPE_OK) {
    conn_close(c);
    return;
  }
  flush(c);
}

static void on_connection(uv_stream_t *server, int status) {
  conn *c;
  if (status < 0) return;
  c = calloc(1, sizeof *c);
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
    c->closes = 1;
    c->closing = 1;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  if (sleep_ms) {
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
  }
  llhttp_init(&c->parser, HTTP_REQUEST, &req_settings);
  c->parser.data = c;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* A delay ended: answer the oldest waiting request, start the next. */
static void delay_done(conn *c, int status) {
  c->busy = 0;
  c->fetch = NULL;
  c->pending--;
  append_response(c, status);
  if (c->pending > 0) start_delay(c);
  flush(c);
}

/* }====================================================== */

/*
** {======================================================
** --sleep and --fanin delays
** =======================================================
*/

static void on_timer(uv_timer_t *t) {
  delay_done(t->data, 200);
}

static void backend_closed(uv_handle_t *h) {
  free(h->data);
}

static void pool_push(backend *b) {
  b->idle = 1;
  b->prev_idle = NULL;
  b->next_idle = idle_backends;
  if (idle_backends) idle_backends->prev_idle = b;
  idle_backends = b;
}

static void pool_remove(backend *b) {
  if (!b->idle) return;
  b->idle = 0;
  if (b->prev_idle) b->prev_idle->next_idle = b->next_idle;
  else idle_backends = b->next_idle;
  if (b->next_idle) b->next_idle->prev_idle = b->prev_idle;
  b->next_idle = b->prev_idle = NULL;
}

/* Drops a backend connection.  A client waiting on it gets its fetch
 * again on a new connection when this one was reused and nothing of the
 * answer came (the backend had closed it meanwhile), else a 502. */
static void backend_fail(backend *b) {
  conn *c = b->owner;
  int retry = b->reused && !b->got_bytes;
  b->owner = NULL;
  pool_remove(b);
  if (!uv_is_closing((uv_handle_t *)&b->tcp))
    uv_close((uv_handle_t *)&b->tcp, backend_closed);
  if (c == NULL) return;
  if (retry) start_fetch(c, 1);
  else delay_done(c, 502);
}

static int on_backend_complete(llhttp_t *p) {
  backend *b = p->data;
  b->done = 1;
  b->keep = llhttp_should_keep_alive(p);
  return HPE_PAUSED; /* one response per fetch */
}

static void on_backend_read(uv_stream_t *s, ssize_t nread,
                            const uv_buf_t *buf) {
  backend *b = s->data;
  conn *c;
  llhttp_errno_t err;
  if (nread == 0) return;
  if (nread < 0 || b->idle) {
    backend_fail(b); /* closed, or spoke while idle */
    return;
  }
  b->got_bytes = 1;
  err = llhttp_execute(&b->parser, buf->base, nread);
  if (err == HPE_PAUSED) llhttp_resume(&b->parser);
  else if (err != HPE_OK) { backend_fail(b); return; }
  if (!b->done) return;
  c = b->owner;
  b->owner = NULL;
  b->done = 0;
  if (b->keep) { /* back to the pool, still read to see it close */
    b->reused = 1;
    pool_push(b);
  } else {
    uv_close((uv_handle_t *)&b->tcp, backend_closed);
  }
  if (c) delay_done(c, 200); /* NULL: its client left meanwhile */
}

static void on_backend_written(uv_write_t *req, int status) {
  backend *b = req->data;
  if (status < 0) backend_fail(b);
}

/* Sends the request on a connected backend, which is read all along: a
 * try_write, then a queued write for what it did not take. */
static void backend_send(backend *b) {
  uv_buf_t buf = uv_buf_init((char *)BACKEND_REQ, sizeof BACKEND_REQ - 1);
  int n;
  b->got_bytes = 0;
  n = uv_try_write((uv_stream_t *)&b->tcp, &buf, 1);
  if (n == (int)buf.len) return;
  if (n < 0 && n != UV_EAGAIN) { backend_fail(b); return; }
  if (n > 0) buf = uv_buf_init(buf.base + n, buf.len - n);
  b->wreq.data = b;
  if (uv_write(&b->wreq, (uv_stream_t *)&b->tcp, &buf, 1,
               on_backend_written) != 0)
    backend_fail(b);
}

static void on_backend_connect(uv_connect_t *req, int status) {
  backend *b = req->data;
  if (status < 0) { backend_fail(b); return; }
  uv_tcp_nodelay(&b->tcp, 1);
  if (uv_read_start((uv_stream_t *)&b->tcp, on_alloc, on_backend_read) != 0)
    backend_fail(b);
  else
    backend_send(b);
}

/* The fetch for c's oldest waiting request: on the most recently used
 * idle connection, or a new one (always a new one when 'fresh'). */
static void start_fetch(conn *c, int fresh) {
  backend *b = fresh ? NULL : idle_backends;
  if (b) {
    pool_remove(b);
    b->owner = c;
    c->fetch = b;
    backend_send(b);
    return;
  }
  b = calloc(1, sizeof *b);
  b->owner = c;
  c->fetch = b;
  b->tcp.data = b;
  b->creq.data = b;
  llhttp_init(&b->parser, HTTP_RESPONSE, &res_settings);
  b->parser.data = b;
  uv_tcp_init(loop, &b->tcp);
  if (uv_tcp_connect(&b->creq, &b->tcp,
                     (const struct sockaddr *)&backend_addr,
                     on_backend_connect) != 0)
    backend_fail(b);
}

static void start_delay(conn *c) {
  c->busy = 1;
  if (sleep_ms) uv_timer_start(&c->timer, on_timer, sleep_ms, 0);
  else start_fetch(c, 0);
}

/* }====================================================== */

static void on_signal(uv_signal_t *s, int signum) {
  (void)signum;
  uv_stop(s->loop);
}

int main(int argc, char **argv) {
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int port = 0, i, len = sizeof bound;
  uv_signal_t sigterm, sigint;
  for (i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--port") == 0) port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--fanin") == 0) fanin_port = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--sleep") == 0) sleep_ms = atoi(argv[i + 1]);
    else break;
  }
  if (i != argc) {
    fprintf(stderr, "usage: limit [--port P] [--fanin BACKEND_PORT] "
                    "[--sleep MS]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  llhttp_settings_init(&req_settings);
  req_settings.on_message_complete = on_message_complete;
  llhttp_settings_init(&res_settings);
  res_settings.on_message_complete = on_backend_complete;
  uv_ip4_addr("127.0.0.1", fanin_port, &backend_addr);
  update_date(NULL);
  uv_timer_init(loop, &date_timer);
  uv_timer_start(&date_timer, update_date, 1000, 1000);
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_init(loop, &listener);
  if (uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0) != 0 ||
      uv_listen((uv_stream_t *)&listener, 4096, on_connection) != 0) {
    fprintf(stderr, "limit: cannot listen on port %d\n", port);
    return 1;
  }
  uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
  printf("limit listening on http://127.0.0.1:%d\n",
         ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  uv_signal_init(loop, &sigterm);
  uv_signal_start(&sigterm, on_signal, SIGTERM);
  uv_signal_init(loop, &sigint);
  uv_signal_start(&sigint, on_signal, SIGINT);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
