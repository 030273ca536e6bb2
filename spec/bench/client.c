/*
 * client.c - the load clients of `make bench` that wrk cannot be: many
 * connections held open, a burst of slow requests, an exact count of
 * requests.  libuv + llhttp; every mode ends by itself (a deadline).
 *
 *   client get   PORT PATH              one request: prints "STATUS BODY"
 *   client count PORT PATH N CONNS [DEPTH]
 *                                       N requests over CONNS keep-alive
 *                                       connections, DEPTH (default 1) in
 *                                       one write, the next write when
 *                                       they are all answered
 *   client idle  PORT PATH N HOLD_S     N connections, one request each,
 *                                       prints "ready ...", holds them
 *                                       HOLD_S seconds, resets them, exits
 *   client burst PORT PATH N            N connections, one request each, all
 *                                       at once; completion time, latencies
 *   client probe                        no network: a fixed amount of
 *                                       arithmetic, its time in µs, to show
 *                                       how fast the CPU it runs on is now
 *
 * At most MAX_CONNECTING connects are outstanding at a time, so the
 * server's listen backlog is not what gets measured.  Connections end
 * with a reset, so runs do not pile up TIME_WAIT sockets.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <uv.h>
#include <llhttp.h>

#define MAX_CONNECTING 256
#define DEADLINE_MS 120000

enum { GET, COUNT, IDLE, BURST, PROBE };

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  llhttp_t parser;
  uint64_t start;          /* hrtime the current request was sent */
  int id;
  int waiting;             /* answers still due for the last write */
  unsigned open : 1;
} cconn;

static uv_loop_t *loop;
static uv_timer_t deadline, hold;
static struct sockaddr_in addr;
static llhttp_settings_t settings;
static char read_buf[65536];
static char request[1024 * 64];
static size_t one_len;        /* one request; request[] holds DEPTH */
static int mode, n_total, n_conns, hold_s, depth = 1;
static int started, connecting, sent, done, errors, not_2xx, bad_conns;
static cconn *conns;
static double *latency;    /* ms, per request (burst) */
static uint64_t t0, connect_max; /* ns: the slowest connect */
static int last_status;
static char body[4096];
static size_t body_len;

static void open_more(void);
static void conn_error(cconn *c);
static void finish(void);

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h; (void)hint;
  *buf = uv_buf_init(read_buf, sizeof read_buf); /* consumed at once */
}

static void on_written(uv_write_t *req, int status) {
  free(req);
  (void)status; /* a failed write shows up as a read error */
}

/* Sends the next write: DEPTH requests, fewer at the end of a count. */
static void send_request(cconn *c) {
  int k = mode == COUNT && n_total - sent < depth ? n_total - sent : depth;
  size_t len = one_len * (size_t)k;
  uv_buf_t b = uv_buf_init(request, len);
  uv_write_t *w;
  int n;
  c->start = uv_hrtime();
  c->waiting = k;
  sent += k;
  n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)len) return;
  if (n > 0) b = uv_buf_init(request + n, len - n);
  w = malloc(sizeof *w); /* freed by on_written */
  if (uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
    free(w);
    conn_error(c);
  }
}

/* A connection failed before its requests were done. */
static void conn_error(cconn *c) {
  if (!c->open) return;
  c->open = 0;
  errors++;
  bad_conns++;
  uv_read_stop((uv_stream_t *)&c->tcp);
  if (mode == IDLE || mode == BURST) done++; /* it will not answer */
  if (done >= n_total || bad_conns >= n_conns) finish();
  else if (mode != COUNT) open_more();
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  (void)p;
  if (body_len + len < sizeof body) {
    memcpy(body + body_len, at, len);
    body_len += len;
  }
  return 0;
}

static int on_complete(llhttp_t *p) {
  cconn *c = p->data;
  last_status = llhttp_get_status_code(p);
  if (last_status < 200 || last_status > 299) not_2xx++;
  if (latency) latency[c->id] = (uv_hrtime() - c->start) / 1e6;
  done++;
  if (--c->waiting > 0 && done < n_total) return 0;
  if (mode == COUNT && sent < n_total) send_request(c);
  else if (done >= n_total) finish();
  return 0;
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  cconn *c = s->data;
  if (nread == 0) return;
  if (nread < 0 ||
      llhttp_execute(&c->parser, buf->base, nread) != HPE_OK) {
    conn_error(c);
  }
}

static void on_connect(uv_connect_t *req, int status) {
  cconn *c = req->data;
  connecting--;
  if (uv_hrtime() - c->start > connect_max)
    connect_max = uv_hrtime() - c->start;
  if (status < 0) {
    conn_error(c);
    return;
  }
  uv_tcp_nodelay(&c->tcp, 1);
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  send_request(c);
  open_more();
}

/* Starts connections until MAX_CONNECTING are outstanding. */
static void open_more(void) {
  while (started < n_conns && connecting < MAX_CONNECTING) {
    cconn *c = &conns[started];
    c->id = started++;
    c->tcp.data = c;
    c->creq.data = c;
    c->open = 1;
    c->start = uv_hrtime(); /* the connect, until send_request */
    llhttp_init(&c->parser, HTTP_RESPONSE, &settings);
    c->parser.data = c; /* after llhttp_init, which clears it */
    uv_tcp_init(loop, &c->tcp);
    connecting++;
    if (uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&addr,
                       on_connect) != 0) {
      connecting--;
      conn_error(c);
    }
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
  int i = (int)(p * n);
  if (n == 0) return 0;
  return v[i >= n ? n - 1 : i];
}

/* Sets every socket to close with a reset, then leaves: no TIME_WAIT. */
static void reset_all_and_exit(int code) {
  struct linger lg = { 1, 0 };
  uv_os_fd_t fd;
  int i;
  for (i = 0; i < started; i++)
    if (uv_fileno((uv_handle_t *)&conns[i].tcp, &fd) == 0)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  fflush(stdout);
  exit(code);
}

static void on_hold(uv_timer_t *t) {
  (void)t;
  reset_all_and_exit(0);
}

static void finish(void) {
  double ms = (uv_hrtime() - t0) / 1e6;
  int ok = done - not_2xx - (mode == IDLE || mode == BURST ? bad_conns : 0);
  static int finished;
  if (finished++) return;
  uv_timer_stop(&deadline);
  switch (mode) {
  case GET:
    printf("%d %.*s\n", last_status, (int)body_len, body);
    reset_all_and_exit(last_status ? 0 : 1);
    break;
  case COUNT:
    printf("done n=%d errors=%d not_2xx=%d ms=%.1f\n", done, errors,
           not_2xx, ms);
    reset_all_and_exit(done == n_total && !errors ? 0 : 1);
    break;
  case IDLE:
    printf("ready n=%d ok=%d errors=%d not_2xx=%d ms=%.1f\n", n_total, ok,
           errors, not_2xx, ms);
    fflush(stdout);
    uv_timer_start(&hold, on_hold, (uint64_t)hold_s * 1000, 0);
    break;
  case BURST: {
    int i, m = 0;
    for (i = 0; i < n_total; i++)
      if (latency[i] > 0) latency[m++] = latency[i];
    qsort(latency, m, sizeof *latency, cmp_double);
    printf("done n=%d ok=%d errors=%d not_2xx=%d total_ms=%.1f "
           "p50_ms=%.1f p99_ms=%.1f max_ms=%.1f connect_max_ms=%.1f\n",
           n_total, ok, errors, not_2xx, ms, pct(latency, m, 0.50),
           pct(latency, m, 0.99), m ? latency[m - 1] : 0.0,
           connect_max / 1e6);
    reset_all_and_exit(0);
  } }
}

static void on_deadline(uv_timer_t *t) {
  (void)t;
  errors += n_total - done;
  fprintf(stderr, "client: deadline: %d of %d answered\n", done, n_total);
  finish();
}

/*
 * The CPU probe: a fixed chain of dependent multiplications and a table
 * walk (about 30 ms on a 3 GHz core), timed.  Run on the servers' CPU
 * just before each measured run, it shows how fast that CPU was then:
 * the machine's speed drifts, and a shared one more.
 */
static int cpu_probe(void) {
  static uint32_t table[1 << 16];
  uint64_t t, x = 88172645463325252ull;
  uint32_t i, acc = 0;
  for (i = 0; i < (1u << 16); i++)
    table[i] = i * 2654435761u;
  t = uv_hrtime();
  for (i = 0; i < 16000000u; i++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    acc += table[(x >> 40) & 0xffff];
  }
  t = uv_hrtime() - t;
  printf("probe_us=%.0f check=%u\n", t / 1e3, acc & 1);
  return 0;
}

int main(int argc, char **argv) {
  static const char *names[] = { "get", "count", "idle", "burst", "probe" };
  static const int nargs[] = { 4, 6, 6, 5, 2 };
  int i;
  signal(SIGPIPE, SIG_IGN);
  for (mode = 0; mode < 5; mode++)
    if (argc > 1 && strcmp(argv[1], names[mode]) == 0) break;
  if (mode == 5 || (argc != nargs[mode] &&
                    !(mode == COUNT && argc == nargs[mode] + 1))) {
    fprintf(stderr, "usage: client get|count|idle|burst|probe PORT PATH "
                    "[N [CONNS|HOLD_S] [DEPTH]]\n");
    return 2;
  }
  if (mode == PROBE)
    return cpu_probe();
  n_total = mode == GET ? 1 : atoi(argv[4]);
  n_conns = mode == COUNT ? atoi(argv[5]) : n_total;
  if (mode == IDLE) hold_s = atoi(argv[5]);
  if (mode == COUNT && argc == 7) depth = atoi(argv[6]);
  if (n_total < 1 || n_conns < 1 || n_conns > n_total || depth < 1 ||
      depth > 256) {
    fprintf(stderr, "client: bad counts\n");
    return 2;
  }
  one_len = snprintf(request, 256,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
                     argv[3]);
  if (one_len >= 256) {
    fprintf(stderr, "client: the path is too long\n");
    return 2;
  }
  for (i = 1; i < depth; i++)
    memcpy(request + one_len * i, request, one_len);
  uv_ip4_addr("127.0.0.1", atoi(argv[2]), &addr);
  llhttp_settings_init(&settings);
  settings.on_message_complete = on_complete;
  if (mode == GET) settings.on_body = on_body;
  conns = calloc(n_conns, sizeof *conns);
  if (mode == BURST) latency = calloc(n_total, sizeof *latency);
  loop = uv_default_loop();
  uv_timer_init(loop, &deadline);
  uv_timer_start(&deadline, on_deadline, DEADLINE_MS, 0);
  uv_timer_init(loop, &hold);
  t0 = uv_hrtime();
  open_more();
  uv_run(loop, UV_RUN_DEFAULT); /* finish() or on_hold() exits */
  fprintf(stderr, "client: the loop ended early\n");
  return 1;
}
