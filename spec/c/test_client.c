/*
 * test_client.c - client.c's deadlines and pool against a small HTTP
 * server on the same loop (127.0.0.1, an ephemeral port): timeouts end
 * in deadline order whatever order they started in, idle connections
 * close after their time, a cancelled exchange keeps its connection if
 * the response comes soon and closes it if not, and a closed client
 * leaves no handle behind; a deadline on a virtual clock
 * waits for that clock.
 */
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "net/client.h"
#include "base/clock.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/*
** {======================================================
** The server: "GET /hang" is never answered, anything else gets "ok"
** =======================================================
*/

typedef struct {
  uv_tcp_t tcp;
  char buf[4096];
  size_t len;
} sconn;

static uv_tcp_t server;
static int server_port, accepted, ended;

static void sconn_closed(uv_handle_t *h) {
  free(h->data);
}

static void on_salloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  sconn *c = h->data;
  (void)hint;
  buf->base = c->buf + c->len;
  buf->len = sizeof c->buf - c->len;
}

static void on_sread(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  sconn *c = s->data;
  char *end;
  (void)buf;
  if (n < 0 || c->len + (size_t)n >= sizeof c->buf) {
    ended++;
    uv_close((uv_handle_t *)s, sconn_closed);
    return;
  }
  c->len += (size_t)n;
  while ((end = memchr(c->buf, '\n', c->len)) != NULL &&
         (end = strstr(c->buf, "\r\n\r\n")) != NULL) {
    size_t used = (size_t)(end + 4 - c->buf);
    uv_buf_t b = uv_buf_init((char *)ok, sizeof ok - 1);
    if (strncmp(c->buf, "GET /hang ", 10) != 0)
      uv_try_write(s, &b, 1);
    memmove(c->buf, c->buf + used, c->len - used);
    c->len -= used;
    c->buf[c->len] = '\0';
  }
}

static void on_sconn(uv_stream_t *s, int status) {
  sconn *c;
  if (status < 0 || (c = calloc(1, sizeof *c)) == NULL)
    return;
  uv_tcp_init(s->loop, &c->tcp);
  c->tcp.data = c;
  if (uv_accept(s, (uv_stream_t *)&c->tcp) != 0) {
    uv_close((uv_handle_t *)&c->tcp, sconn_closed);
    return;
  }
  accepted++;
  uv_read_start((uv_stream_t *)&c->tcp, on_salloc, on_sread);
}

static int server_start(uv_loop_t *loop) {
  struct sockaddr_in a;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  accepted = ended = 0;
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(loop, &server);
  if (uv_tcp_bind(&server, (const struct sockaddr *)&a, 0) != 0 ||
      uv_listen((uv_stream_t *)&server, 64, on_sconn) != 0)
    return -1;
  uv_tcp_getsockname(&server, (struct sockaddr *)&bound, &len);
  server_port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

/* Closes a handle left on the loop: the server or one of its
 * connections (the client's are gone by then). */
static void close_any(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, h->data != NULL && h != (uv_handle_t *)&server
                    ? sconn_closed : NULL);
}

/* }====================================================== */

typedef struct {
  const char *err;
  int status;
  uint64_t at;                       /* loop time it ended */
  int order;
} outcome;

static int ended_exchanges;
static uv_loop_t *test_loop;
static ml_clock *test_clock;         /* the exchanges' deadlines */

/* A loop with its real clock, the test server on it and a client: NULL
 * if the server or the client cannot start. */
static ml_client *start_client(uv_loop_t *loop) {
  uv_loop_init(loop);
  test_loop = loop;
  test_clock = ml_clock_new_real(loop);
  if (server_start(loop) != 0)
    return NULL;
  return ml_client_new(loop);
}

static void on_done(ml_hreq *r, const ml_hres *res, void *ud) {
  outcome *o = ud;
  (void)r;
  o->err = res->err;                 /* static strings only here */
  o->status = res->status;
  o->at = uv_now(test_loop);
  o->order = ++ended_exchanges;
}

static ml_hreq *get(ml_client *c, const char *path, uint64_t timeout_ms,
                    outcome *o) {
  static char req[4][128];
  static int next;
  char *data = req[next++ % 4];
  ml_hreq_opts opts;
  memset(&opts, 0, sizeof opts);
  snprintf(data, 128, "GET %s HTTP/1.1\r\nHost: t\r\n\r\n", path);
  opts.host = "127.0.0.1";
  opts.port = server_port;
  opts.data = data;
  opts.len = strlen(data);
  opts.timeout_ms = timeout_ms;
  opts.max_body = 1024;
  opts.idempotent = 1;
  opts.clock = test_clock;
  return ml_client_request(c, &opts, on_done, o);
}

static void time_up(uv_timer_t *t) {
  *(int *)t->data = 1;
}

/* Turns the loop until *n reaches 'want' or 'ms' have passed (the
 * server's handles keep it alive). */
static void run_until(uv_loop_t *loop, const int *n, int want, uint64_t ms) {
  uv_timer_t t;
  int up = 0;
  uv_timer_init(loop, &t);
  t.data = &up;
  uv_timer_start(&t, time_up, ms, 0);
  while (!up && (n == NULL || *n < want))
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&t, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
}

#define run_for(loop, ms) run_until((loop), NULL, 0, (ms))

/* Lets the closed client's handles go, closes the server's, runs the
 * loop dry; uv_loop_close's result (0: no handle leaked). */
static int finish_loop(uv_loop_t *loop) {
  run_for(loop, 20);                 /* the client's last closes */
  ml_clock_close(test_clock, NULL, NULL);
  uv_walk(loop, close_any, NULL);    /* the server's */
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop);
}


TEST(client_deadlines_in_order) {
  uv_loop_t loop;
  ml_client *c;
  static const uint64_t timeouts[3] = { 300, 100, 200 };
  outcome o[4];
  uint64_t t0;
  int i;
  CHECK((c = start_client(&loop)) != NULL);
  memset(o, 0, sizeof o);
  ended_exchanges = 0;
  t0 = uv_now(&loop);
  /* the second goes first in the order, the third between */
  for (i = 0; i < 3; i++)
    CHECK(get(c, "/hang", timeouts[i], &o[i]) != NULL);
  CHECK(get(c, "/ok", 1000, &o[3]) != NULL);
  run_until(&loop, &ended_exchanges, 4, 2000);
  CHECK_INT(ended_exchanges, 4);
  CHECK(o[3].err == NULL);
  CHECK_INT(o[3].status, 200);
  CHECK_INT(o[3].order, 1);
  for (i = 0; i < 3; i++) {
    CHECK_STR(o[i].err, "timeout");
    CHECK(o[i].at - t0 >= timeouts[i]);
  }
  CHECK_INT(o[1].order, 2);
  CHECK_INT(o[2].order, 3);
  CHECK_INT(o[0].order, 4);
  CHECK(o[0].at - t0 < 1000);
  CHECK_INT(ml_client_connects(c), 4);
  run_for(&loop, 50);
  CHECK_INT(ended, 3);               /* the timed-out ones were closed */
  ml_client_close(c);
  CHECK_INT(finish_loop(&loop), 0);
}

TEST(client_idle_connections_close) {
  uv_loop_t loop;
  ml_client *c;
  outcome o[4];
  int i;
  CHECK((c = start_client(&loop)) != NULL);
  ml_client_set_idle(c, 100);
  memset(o, 0, sizeof o);
  ended_exchanges = 0;
  for (i = 0; i < 3; i++)
    CHECK(get(c, "/ok", 1000, &o[i]) != NULL);
  run_until(&loop, &ended_exchanges, 3, 2000);
  CHECK_INT(ended_exchanges, 3);
  CHECK_INT(accepted, 3);
  CHECK(get(c, "/ok", 1000, &o[3]) != NULL);    /* a pooled one */
  run_until(&loop, &ended_exchanges, 4, 2000);
  CHECK_INT(o[3].status, 200);
  CHECK_INT(ml_client_connects(c), 3);
  run_for(&loop, 50);
  CHECK_INT(ended, 0);               /* not yet */
  run_for(&loop, 300);
  CHECK_INT(ended, 3);               /* all three, idle past 100 ms */
  CHECK(get(c, "/ok", 1000, &o[0]) != NULL);
  run_until(&loop, &ended_exchanges, 5, 2000);
  CHECK_INT(o[0].status, 200);
  CHECK_INT(ml_client_connects(c), 4);          /* a new one */
  ml_client_close(c);
  CHECK_INT(finish_loop(&loop), 0);
}

TEST(client_cancel_closes_the_connection) {
  uv_loop_t loop;
  ml_client *c;
  ml_hreq *r;
  outcome o;
  CHECK((c = start_client(&loop)) != NULL);
  memset(&o, 0, sizeof o);
  ended_exchanges = 0;
  CHECK((r = get(c, "/hang", 5000, &o)) != NULL);
  run_for(&loop, 50);
  CHECK_INT(accepted, 1);
  ml_client_cancel(r);
  run_for(&loop, 50);
  CHECK_INT(ended_exchanges, 0);     /* never called back */
  CHECK_INT(ended, 0);               /* the response may still come */
  run_for(&loop, 300);
  CHECK_INT(ended, 1);               /* it did not: closed */
  CHECK_INT(ended_exchanges, 0);
  ml_client_close(c);                /* frees itself: nothing is left */
  CHECK_INT(finish_loop(&loop), 0);
}

TEST(client_cancel_drains_to_the_pool) {
  uv_loop_t loop;
  ml_client *c;
  ml_hreq *r;
  outcome o[3];
  CHECK((c = start_client(&loop)) != NULL);
  memset(o, 0, sizeof o);
  ended_exchanges = 0;
  CHECK(get(c, "/ok", 1000, &o[0]) != NULL);
  run_until(&loop, &ended_exchanges, 1, 2000);
  CHECK_INT(o[0].status, 200);
  /* a pooled connection: the request goes out at once, the response
   * comes after the cancel and is dropped; the connection stays */
  CHECK((r = get(c, "/ok", 1000, &o[1])) != NULL);
  ml_client_cancel(r);
  run_for(&loop, 50);
  CHECK_INT(ended_exchanges, 1);     /* never called back */
  CHECK_INT(ended, 0);
  CHECK(get(c, "/ok", 1000, &o[2]) != NULL);
  run_until(&loop, &ended_exchanges, 2, 2000);
  CHECK_INT(o[2].status, 200);
  CHECK_INT(accepted, 1);
  CHECK_INT(ml_client_connects(c), 1);
  /* a client closed while one drains closes it at once */
  CHECK((r = get(c, "/hang", 5000, &o[0])) != NULL);
  ml_client_cancel(r);
  ml_client_close(c);
  run_for(&loop, 50);
  CHECK_INT(ended, 1);
  CHECK_INT(ended_exchanges, 2);
  CHECK_INT(finish_loop(&loop), 0);
}

static void turn(void *ud) {
  uv_run(ud, UV_RUN_NOWAIT);
}

TEST(client_deadline_on_a_virtual_clock) {
  uv_loop_t loop;
  ml_client *c;
  ml_clock *real, *virt;
  outcome o;
  uv_loop_init(&loop);
  test_loop = &loop;
  real = ml_clock_new_real(&loop);
  test_clock = virt = ml_clock_new(0, real);
  CHECK(server_start(&loop) == 0);
  CHECK((c = ml_client_new(&loop)) != NULL);
  memset(&o, 0, sizeof o);
  ended_exchanges = 0;
  CHECK(get(c, "/hang", 30000, &o) != NULL);
  run_for(&loop, 100);
  CHECK_INT(accepted, 1);
  ml_clock_advance(virt, 29999, turn, &loop);
  CHECK_INT(ended_exchanges, 0);     /* real time does not count */
  ml_clock_advance(virt, 1, turn, &loop);
  CHECK_INT(ended_exchanges, 1);
  CHECK_STR(o.err, "timeout");
  ml_client_close(c);
  ml_clock_free(virt);
  test_clock = real;
  CHECK_INT(finish_loop(&loop), 0);
}
