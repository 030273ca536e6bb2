/*
 * fuzz_conn.c - libFuzzer harness for the connection path: each input is
 * sent over a real loopback socket, cut into pieces whose size its first
 * byte decides, to a moonlet server in this process (parse, route, a Lua
 * handler, the response written).  The client reads the responses only
 * when its writes block, and both ends have small socket buffers, so that
 * the server's back-pressure (built with tiny marks) stops and restarts
 * its reading; at the end it reads until the server closes.  Built with
 * ASan and UBSan by `make fuzz`.
 *
 * Built with FUZZ_TLS (spec/fuzz/fuzz_tls.c), the server speaks TLS with a
 * throwaway certificate and the input goes through an OpenSSL client
 * first, each piece one record: the same bytes reach the parser through
 * the stream's decrypted path, as a TLS client sends them.
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
#ifdef FUZZ_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "base/cert.h"
#endif

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uv_loop_t *loop;
static int port;

/* The client's side of the socket: plain, or (FUZZ_TLS) through an SSL
 * object; both as write(2) and read(2) say, EAGAIN when they would wait. */
#ifndef FUZZ_TLS
static ssize_t io_write(int fd, const void *p, size_t n) {
  return write(fd, p, n);
}

static ssize_t io_read(int fd, void *p, size_t n) {
  return read(fd, p, n);
}
#else
static SSL_CTX *client_ctx;
static SSL *ssl;
static SSL_SESSION *session;   /* resumed: the handshakes stay cheap */

static ssize_t ssl_result(int n) {
  int e = n > 0 ? SSL_ERROR_NONE : SSL_get_error(ssl, n);
  ERR_clear_error();
  if (n > 0)
    return n;
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  if (e == SSL_ERROR_ZERO_RETURN)
    return 0;
  errno = EPIPE;
  return -1;
}

static ssize_t io_write(int fd, const void *p, size_t n) {
  (void)fd;
  return ssl_result(SSL_write(ssl, p, (int)n));
}

static ssize_t io_read(int fd, void *p, size_t n) {
  (void)fd;
  return ssl_result(SSL_read(ssl, p, (int)n));
}

/* A file holding 'b'; its path is kept for the process's life. */
static const char *temp_file(ml_buf *b) {
  static char paths[2][64];
  static int used;
  char *path = paths[used++];
  int fd;
  snprintf(path, 64, "/tmp/fuzz-tls-XXXXXX");
  if ((fd = mkstemp(path)) < 0 || write(fd, b->data, b->len) !=
      (ssize_t)b->len) {
    fprintf(stderr, "fuzz_tls: cannot write %s\n", path);
    exit(1);
  }
  close(fd);
  return path;
}

static void tls_setup(moonlet_config *cfg) {
  ml_buf cert = {0}, key = {0};
  if (ml_cert_throwaway(&cert, &key) != 0 ||
      (client_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
    fprintf(stderr, "fuzz_tls: no certificate\n");
    exit(1);
  }
  cfg->tls_cert = temp_file(&cert);
  cfg->tls_key = temp_file(&key);
  ml_buf_free(&cert);
  ml_buf_free(&key);
}

static double now_ms(void);

/* The handshake, the server's loop turning meanwhile; 0 when done. */
static int tls_connect(int fd) {
  double end = now_ms() + 1000;
  int rc;
  ssl = SSL_new(client_ctx);
  SSL_set_fd(ssl, fd);
  if (session != NULL)
    SSL_set_session(ssl, session);
  while ((rc = SSL_connect(ssl)) != 1 && now_ms() < end) {
    if (ssl_result(rc) < 0 && errno != EAGAIN)
      break;
    uv_run(loop, UV_RUN_NOWAIT);
  }
  ERR_clear_error();
  return rc == 1 ? 0 : -1;
}

static void tls_end(void) {
  SSL_SESSION *s = SSL_get1_session(ssl);
  if (s != NULL && SSL_SESSION_is_resumable(s)) {
    SSL_SESSION_free(session);
    session = s;
  } else {
    SSL_SESSION_free(s);
  }
  SSL_free(ssl);
  ssl = NULL;
  ERR_clear_error();
}
#endif

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
#ifdef FUZZ_TLS
  tls_setup(&cfg);
#endif
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
    r = io_read(fd, buf, sizeof buf);
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
    ssize_t w = io_write(fd, p, n);
    if (w > 0) {
      p += w;
      n -= (size_t)w;
    } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
      return;                     /* the server closed on us: fine */
    } else if (io_read(fd, buf, sizeof buf) == 0) {
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
#ifdef FUZZ_TLS
  if (tls_connect(fd) != 0) {
    tls_end();
    close(fd);
    return 0;
  }
#endif
  for (off = 0; off < size; off += piece) {
    send_piece(fd, data + off, size - off < piece ? size - off : piece);
    uv_run(loop, UV_RUN_NOWAIT);
  }
#ifdef FUZZ_TLS
  SSL_shutdown(ssl);               /* close_notify, then the FIN */
#endif
  shutdown(fd, SHUT_WR);
  drain(fd, 300);
#ifdef FUZZ_TLS
  tls_end();
#endif
  close(fd);
  for (i = 0; i < 8; i++)        /* let the server see the close */
    uv_run(loop, UV_RUN_NOWAIT);
  return 0;
}
