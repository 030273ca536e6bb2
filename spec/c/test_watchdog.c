/*
 * test_watchdog.c - a host's graceful stop (moonlet_close) while a
 * handler never waits: the watchdog stops that handler once the grace is
 * over, so the stop finishes, on the host's own loop, with no signal.
 * And the loop stuck in C: logged with its label, and only then.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>
#include "moonlet.h"
#include "base/activity.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

typedef struct {
  moonlet_server *s;
  int done;                 /* moonlet_close's callback ran */
  uint64_t closed_at;       /* uv_hrtime of moonlet_close */
  uv_tcp_t client;
  uv_connect_t connect;
  uv_write_t write;
  char answer[256];
  size_t len;
} stop_host;

static void on_done(void *ud) {
  ((stop_host *)ud)->done = 1;
}

/* host_stop(): the host's graceful stop, called by the app's handler. */
static int host_stop(lua_State *L) {
  stop_host *h = lua_touserdata(L, lua_upvalueindex(1));
  h->closed_at = uv_hrtime();
  moonlet_close(h->s, on_done, h);
  return 0;
}

static void add_stop(lua_State *L, void *ud) {
  lua_pushlightuserdata(L, ud);
  lua_pushcclosure(L, host_stop, 1);
  lua_setglobal(L, "host_stop");
}

static void on_alloc(uv_handle_t *hd, size_t size, uv_buf_t *buf) {
  stop_host *h = hd->data;
  (void)size;
  *buf = uv_buf_init(h->answer + h->len, sizeof h->answer - 1 - h->len);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  stop_host *h = st->data;
  (void)buf;
  if (n > 0)
    h->len += (size_t)n;
  if (n < 0 || h->len == sizeof h->answer - 1)
    uv_close((uv_handle_t *)st, NULL);
}

static void on_connect(uv_connect_t *req, int status) {
  static char get[] = "GET /stop-and-spin HTTP/1.1\r\nHost: t\r\n\r\n";
  stop_host *h = req->data;
  uv_buf_t b = uv_buf_init(get, sizeof get - 1);
  if (status != 0) {
    uv_close((uv_handle_t *)&h->client, NULL);
    return;
  }
  uv_write(&h->write, (uv_stream_t *)&h->client, &b, 1, NULL);
  uv_read_start((uv_stream_t *)&h->client, on_alloc, on_read);
}

TEST(watchdog_stops_stuck_code_after_a_hosts_close) {
  uv_loop_t loop;
  moonlet_config cfg;
  stop_host h;
  struct sockaddr_in addr;
  double took;
  int port;
  memset(&h, 0, sizeof h);
  alarm(20);                  /* a stop that never finishes fails here */
  CHECK_INT(uv_loop_init(&loop), 0);
  moonlet_config_init(&cfg);
  cfg.port = 0;
  cfg.grace = 0.2;
  cfg.log_level = MOONLET_LOG_ERROR;
  CHECK((h.s = moonlet_new(&loop, &cfg)) != NULL);
  moonlet_on_state(h.s, add_stop, &h);
  CHECK_INT(moonlet_load(h.s, "spec/apps/host_stop.lua"), 0);
  CHECK((port = moonlet_listen(h.s)) > 0);
  uv_tcp_init(&loop, &h.client);
  h.client.data = h.connect.data = &h;
  uv_ip4_addr("127.0.0.1", port, &addr);
  uv_tcp_connect(&h.connect, &h.client, (struct sockaddr *)&addr,
                 on_connect);
  uv_run(&loop, UV_RUN_DEFAULT);    /* until the server and client end */
  alarm(0);
  took = (double)(uv_hrtime() - h.closed_at) / 1e9;
  CHECK_INT(h.done, 1);
  CHECK(took >= 0.2 && took < 5);
  CHECK(strncmp(h.answer, "HTTP/1.1 503 ", 13) == 0);
  CHECK(strstr(h.answer, "grace period is over") != NULL);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/*
** The loop stuck in C: the watchdog thread sees it neither turn nor wait
** in the kernel, and logs the label of the work it is stuck in.
*/

/* stderr into a file while a test runs, then the text it got. */
typedef struct {
  int saved, fd;
  char path[64];
  char text[4096];
} captured;

static int capture_start(captured *c) {
  strcpy(c->path, "/tmp/moonlet-test-XXXXXX");
  if ((c->fd = mkstemp(c->path)) < 0)
    return -1;
  fflush(stderr);
  c->saved = dup(2);
  dup2(c->fd, 2);
  return 0;
}

static void capture_end(captured *c) {
  ssize_t n;
  fflush(stderr);
  dup2(c->saved, 2);
  close(c->saved);
  n = pread(c->fd, c->text, sizeof c->text - 1, 0);
  c->text[n > 0 ? n : 0] = '\0';
  close(c->fd);
  unlink(c->path);
}

static void spin_ms(uint64_t ms) {
  uint64_t end = uv_hrtime() + ms * 1000000u;
  while (uv_hrtime() < end)
    ;
}

static void stuck_in_c(uv_timer_t *t) {
  ml_activity_set("testing a stuck loop", 42);
  spin_ms(*(uint64_t *)t->data);
  ml_activity_clear();
}

static void spin_unlabelled(uv_timer_t *t) {
  (void)t;
  spin_ms(400);
}

static void noop(uv_timer_t *t) {
  (void)t;
}

static void on_closed(void *ud) {
  *(int *)ud = 1;
}

/* A server on 'loop' with a 100 ms watchdog; no app, no port. */
static moonlet_server *watched_server(uv_loop_t *loop) {
  moonlet_config cfg;
  moonlet_config_init(&cfg);
  cfg.watchdog_ms = 100;
  cfg.log_level = MOONLET_LOG_WARN;
  return moonlet_new(loop, &cfg);
}

/* Runs loop with one timer: 'cb' after 'after' ms; until 'end' ms. */
static void run_timer(uv_loop_t *loop, uv_timer_cb cb, uint64_t after,
                      uint64_t end_ms, void *data) {
  uv_timer_t t, end;
  uv_timer_init(loop, &t);
  uv_timer_init(loop, &end);
  t.data = data;
  uv_timer_start(&t, cb, after, 0);
  uv_timer_start(&end, noop, end_ms, 0);
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close((uv_handle_t *)&t, NULL);
  uv_close((uv_handle_t *)&end, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
}

static void close_server(uv_loop_t *loop, moonlet_server *s) {
  int done = 0;
  moonlet_close(s, on_closed, &done);
  while (!done && uv_run(loop, UV_RUN_ONCE) != 0)
    ;
}

TEST(watchdog_logs_a_loop_stuck_in_c) {
  uv_loop_t loop;
  moonlet_server *s;
  captured out;
  uint64_t ms = 500;
  CHECK_INT(uv_loop_init(&loop), 0);
  CHECK((s = watched_server(&loop)) != NULL);
  CHECK_INT(capture_start(&out), 0);
  run_timer(&loop, stuck_in_c, 20, 900, &ms);
  capture_end(&out);
  close_server(&loop, s);
  CHECK(strstr(out.text, "watchdog: the loop has been stuck for ") != NULL);
  CHECK(strstr(out.text, " ms in C: testing a stuck loop (42 bytes)\n")
        != NULL);
  CHECK(strstr(out.text, "watchdog: the loop runs again, after 0.") !=
        NULL);
  CHECK_INT(uv_loop_close(&loop), 0);
}

/* A loop that waits in the kernel, one that is not run at all, and code
 * that labels nothing (a host's own callback) are not reported. */
TEST(watchdog_quiet_for_idle_or_unrun_loops) {
  uv_loop_t loop;
  moonlet_server *s;
  captured out;
  uint64_t ms = 50;              /* under the watchdog's 100 ms */
  CHECK_INT(uv_loop_init(&loop), 0);
  CHECK((s = watched_server(&loop)) != NULL);
  CHECK_INT(capture_start(&out), 0);
  run_timer(&loop, stuck_in_c, 400, 500, &ms);  /* idle 400 ms first */
  usleep(400000);                             /* the loop is not run */
  run_timer(&loop, spin_unlabelled, 10, 500, NULL);
  capture_end(&out);
  close_server(&loop, s);
  CHECK_STR(out.text, "");
  CHECK_INT(uv_loop_close(&loop), 0);
}
