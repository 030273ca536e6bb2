/*
 * fuzz_conn.c - libFuzzer harness for the connection path: each input is
 * sent over a real loopback socket, cut into pieces whose size its first
 * byte decides, to a moonlet server in this process (parse, route, a Lua
 * handler, the response written).  The client reads the responses only
 * when its writes block, and both ends have small socket buffers, so that
 * the server's back-pressure (built with tiny marks) stops and restarts
 * its reading; at the end it reads until the server closes.  Built with
 * ASan and UBSan by `make fuzz`.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "moonlet.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t *loop;
static int port;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  moonlet_config cfg;
  moonlet_server *s;
  const char *app = getenv("FUZZ_APP");
  (void)argc;
  (void)argv;
  moonlet_config_init(&cfg);
  cfg.port = 0;
  cfg.log_level = MOONLET_LOG_ERROR + 1;    /* handler errors are expected */
  cfg.max_body = 64 * 1024;
  loop = uv_default_loop();
  s = moonlet_new(loop, &cfg);
  if (s == NULL || moonlet_load(s, app ? app : "spec/fuzz/app.lua") != 0 ||
      (port = moonlet_listen(s)) < 0) {
    fprintf(stderr, "fuzz_conn: cannot start the server\n");
    exit(1);
  }
  return 0;
}

/* Runs the loop without blocking until 'fd' reads EOF or time is up. */
static void drain(int fd, double budget_ms) {
  char buf[65536];
  double end = now_ms() + budget_ms;
  while (now_ms() < end) {
    ssize_t r;
    uv_run(loop, UV_RUN_NOWAIT);
    r = read(fd, buf, sizeof buf);
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR))
      return;
  }
}

/* Writes it all, letting the server read between attempts; reads some
 * answers only when a write blocks (the server may wait on us). */
static void send_piece(int fd, const uint8_t *p, size_t n) {
  char buf[1024];
  double end = now_ms() + 200;
  while (n > 0 && now_ms() < end) {
    ssize_t w = write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return;                     /* the server closed on us: fine */
    } else if (read(fd, buf, sizeof buf) == 0) {
      return;
    }
    uv_run(loop, UV_RUN_NOWAIT);
  }
}

/*
 * Once the server has accepted fd's connection, its end gets a small
 * send buffer, so that the server's output backs up after a few KiB
 * rather than after the megabytes loopback buffers grow to.
 */
static void shrink_server_end(int fd) {
  struct sockaddr_in mine, peer;
  socklen_t len = sizeof mine;
  int s, i, size = 4096;
  if (getsockname(fd, (struct sockaddr *)&mine, &len) != 0)
    return;
  for (i = 0; i < 8; i++) {
    uv_run(loop, UV_RUN_NOWAIT);    /* accepts */
    for (s = 3; s < 1024; s++) {
      len = sizeof peer;
      if (s != fd && getpeername(s, (struct sockaddr *)&peer, &len) == 0 &&
          peer.sin_family == AF_INET && peer.sin_port == mine.sin_port &&
          peer.sin_addr.s_addr == mine.sin_addr.s_addr) {
        setsockopt(s, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        return;
      }
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct sockaddr_in sa;
  size_t piece, off;
  int fd, i, rcvbuf = 2048;
  if (size == 0)
    return 0;
  piece = data[0] < 128 ? size : (size_t)(data[0] & 63) + 1;
  data++;
  size--;
  fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0)                   /* before connect: the window follows */
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
    if (fd >= 0)
      close(fd);
    return 0;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  shrink_server_end(fd);
  for (off = 0; off < size; off += piece) {
    send_piece(fd, data + off, size - off < piece ? size - off : piece);
    uv_run(loop, UV_RUN_NOWAIT);
  }
  shutdown(fd, SHUT_WR);
  drain(fd, 300);
  close(fd);
  for (i = 0; i < 8; i++)        /* let the server see the close */
    uv_run(loop, UV_RUN_NOWAIT);
  return 0;
}
