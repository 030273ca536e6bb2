/*
 * wsclient.c - the WebSocket load client of `make bench`: libuv, frames
 * by hand (masked, as a client's must be), no compression offered.
 * Every mode ends by itself (a deadline).
 *
 *   wsclient echo PORT PATH CONNS SIZE SECONDS
 *       CONNS WebSockets, each sending a SIZE-byte binary message and
 *       waiting for its echo, again and again; after SECONDS prints
 *       "BENCH messages=N seconds=S errors=E"
 *   wsclient count PORT PATH CONNS SIZE N
 *       the same until N echoes have come back (make bench-instr);
 *       prints "BENCH messages=N errors=E"
 *   wsclient idle PORT PATH CONNS HOLD_S
 *       CONNS WebSockets opened and left idle; prints "ready open=N
 *       errors=E", holds them HOLD_S seconds, resets them, exits
 *
 * At most MAX_CONNECTING handshakes are outstanding at a time, so the
 * listen backlog is not what gets measured; a refused or reset connect
 * is retried (at most RETRIES times in all).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#define MAX_CONNECTING 128
#define RETRIES 2000
#define DEADLINE_MS 180000

typedef struct {
  uv_tcp_t tcp;
  uv_connect_t creq;
  uv_write_t wreq;
  char buf[65536 + 64];
  size_t len;             /* bytes in buf */
  int id;
  unsigned upgraded : 1;
  unsigned open : 1;
} wconn;

static uv_loop_t *loop;
static struct sockaddr_in addr;
static const char *path;
static int mode_echo, conns, size, hold_s, seconds;
static unsigned long long count_to;   /* count mode: stop at this many */
static int started, connecting, ready, errors, retries;
static unsigned long long messages;
static char *frame;       /* the masked message, built once */
static size_t frame_len, echo_len;
static char request[512];
static uv_timer_t timer;
static wconn **all;

static void start_one(int id);
static void on_timer(uv_timer_t *t);
static void finish(void);

/* Every connection is up (or failed for good): the measured part, or
 * the hold, starts now. */
static void all_started(void) {
  if (ready + errors != conns)
    return;
  if (mode_echo) {
    messages = 0;
    if (count_to == 0)
      uv_timer_start(&timer, on_timer, (uint64_t)seconds * 1000, 0);
    return;
  }
  printf("ready open=%d errors=%d\n", ready, errors);
  fflush(stdout);
  uv_timer_start(&timer, on_timer, (uint64_t)hold_s * 1000, 0);
}

static void on_closed(uv_handle_t *h) {
  free(h->data);
}

/* A connection failed: counted, and retried while the budget lasts. */
static void failed(wconn *c) {
  int id = c->id;
  if (!uv_is_closing((uv_handle_t *)&c->tcp))
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  all[id] = NULL;
  if (!c->upgraded) {
    connecting--;
    if (retries++ < RETRIES) {
      start_one(id);
      return;
    }
  }
  errors++;
  all_started();
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  wconn *c = h->data;
  (void)hint;
  buf->base = c->buf + c->len;
  buf->len = sizeof c->buf - c->len;
}

static void send_message(wconn *c);

static void write_done(uv_write_t *w, int status) {
  if (status < 0 && status != UV_ECANCELED)
    failed(w->data);
}

/* The echo is a frame of SIZE bytes: 2, 4 or 10 bytes of head. */
static void on_echo_bytes(wconn *c) {
  while (c->len >= echo_len) {
    messages++;
    memmove(c->buf, c->buf + echo_len, c->len - echo_len);
    c->len -= echo_len;
    if (count_to > 0 && messages >= count_to) {
      finish();
      return;
    }
    send_message(c);
  }
}

static void send_message(wconn *c) {
  uv_buf_t b = uv_buf_init(frame, (unsigned)frame_len);
  int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
  if (n == (int)frame_len)
    return;
  if (n < 0)
    n = 0;
  b = uv_buf_init(frame + n, (unsigned)(frame_len - (size_t)n));
  c->wreq.data = c;
  if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, write_done) != 0)
    failed(c);
}

static void upgraded(wconn *c, size_t head) {
  c->upgraded = 1;
  connecting--;
  ready++;
  memmove(c->buf, c->buf + head, c->len - head);
  c->len -= head;
  if (mode_echo) {
    send_message(c);
    on_echo_bytes(c);
  }
  all_started();
  while (started < conns && connecting < MAX_CONNECTING)
    start_one(started++);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  wconn *c = s->data;
  char *end;
  (void)buf;
  if (n < 0) {
    failed(c);
    return;
  }
  c->len += (size_t)n;
  if (c->upgraded) {
    if (mode_echo)
      on_echo_bytes(c);
    else
      c->len = 0;
    return;
  }
  c->buf[c->len] = '\0';
  if ((end = strstr(c->buf, "\r\n\r\n")) == NULL)
    return;
  if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0) {
    failed(c);
    return;
  }
  upgraded(c, (size_t)(end + 4 - c->buf));
}

static void on_connect(uv_connect_t *r, int status) {
  wconn *c = r->data;
  uv_buf_t b = uv_buf_init(request, (unsigned)strlen(request));
  if (status < 0) {
    failed(c);
    return;
  }
  c->open = 1;
  uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
  uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

static void start_one(int id) {
  wconn *c = calloc(1, sizeof *c);
  if (c == NULL) {
    errors++;
    return;
  }
  c->id = id;
  all[id] = c;
  uv_tcp_init(loop, &c->tcp);
  c->tcp.data = c;
  c->creq.data = c;
  connecting++;
  if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&addr,
                     on_connect) != 0)
    failed(c);
}

/* The end: report, reset every connection, stop. */
static void on_timer(uv_timer_t *t) {
  (void)t;
  finish();
}

static void finish(void) {
  int i;
  struct linger lg = { 1, 0 };
  uv_os_fd_t fd;
  if (uv_is_closing((uv_handle_t *)&timer))
    return;
  if (mode_echo && ready + errors == conns && count_to > 0)
    printf("BENCH messages=%llu errors=%d\n", messages, errors);
  else if (mode_echo && ready + errors == conns)
    printf("BENCH messages=%llu seconds=%d errors=%d open=%d\n", messages,
           seconds, errors, ready);
  else if (ready + errors < conns)
    printf("ready open=%d errors=%d note=timeout\n", ready, errors);
  fflush(stdout);
  for (i = 0; i < conns; i++) {
    wconn *c = all[i];
    if (c == NULL || uv_is_closing((uv_handle_t *)&c->tcp))
      continue;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0)
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    uv_close((uv_handle_t *)&c->tcp, on_closed);
  }
  uv_close((uv_handle_t *)&timer, NULL);
}

/* The message every connection sends: SIZE bytes, masked once. */
static void build_frame(void) {
  static const unsigned char key[4] = { 0x11, 0x22, 0x33, 0x44 };
  size_t h = 2, i;
  frame = malloc((size_t)size + 14);
  frame[0] = (char)0x82;
  if (size < 126) {
    frame[1] = (char)(0x80 | size);
  } else if (size < 65536) {
    frame[1] = (char)(0x80 | 126);
    frame[2] = (char)(size >> 8);
    frame[3] = (char)size;
    h = 4;
  } else {
    fprintf(stderr, "wsclient: SIZE must be under 64 KiB\n");
    exit(2);
  }
  memcpy(frame + h, key, 4);
  for (i = 0; i < (size_t)size; i++)
    frame[h + 4 + i] = (char)(('a' + i % 26) ^ key[i & 3]);
  frame_len = h + 4 + (size_t)size;
  echo_len = h + (size_t)size;       /* the server's is not masked */
}

int main(int argc, char **argv) {
  int i;
  if (argc < 6 || (strcmp(argv[1], "idle") != 0 && argc < 7)) {
    fprintf(stderr, "usage: wsclient echo PORT PATH CONNS SIZE SECONDS\n"
                    "       wsclient count PORT PATH CONNS SIZE N\n"
                    "       wsclient idle PORT PATH CONNS HOLD_S\n");
    return 2;
  }
  mode_echo = strcmp(argv[1], "idle") != 0;
  path = argv[3];
  conns = atoi(argv[4]);
  if (mode_echo) {
    size = atoi(argv[5]);
    if (strcmp(argv[1], "count") == 0)
      count_to = strtoull(argv[6], NULL, 10);
    else
      seconds = atoi(argv[6]);
    build_frame();
  } else {
    hold_s = atoi(argv[5]);
  }
  snprintf(request, sizeof request, "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%s"
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n", path, argv[2]);
  loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", atoi(argv[2]), &addr);
  all = calloc((size_t)conns, sizeof *all);
  uv_timer_init(loop, &timer);
  uv_timer_start(&timer, on_timer, DEADLINE_MS, 0);   /* set-up's limit */
  for (i = 0; started < conns && i < MAX_CONNECTING; i++)
    start_one(started++);
  uv_run(loop, UV_RUN_DEFAULT);
  return 0;
}
