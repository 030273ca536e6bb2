/*
 * tlsclient.c - the TLS client of `make bench` that wrk cannot be: many
 * TLS connections held open.  OpenSSL on blocking sockets, one connection
 * after another (the handshakes are what takes the time, and they are
 * the server's to make as fast as it can); ends by itself.
 *
 *   tlsclient idle PORT PATH N HOLD_S   N TLS connections (full handshakes,
 *                                       TLS 1.3, no verification), one
 *                                       keep-alive request each; prints
 *                                       "ready n= ok= errors= ms=", holds
 *                                       them HOLD_S seconds, exits
 *   tlsclient count PORT PATH N CONNS   CONNS TLS connections (full
 *                                       handshakes), then N keep-alive
 *                                       requests taking turns on them, one
 *                                       at a time; prints "n= ok= errors=
 *                                       ms=".  TLSCLIENT_VERSION=1.2 holds
 *                                       both modes to TLS 1.2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#define IO_TIMEOUT_S 10

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* A TCP connection to 127.0.0.1:port with send and receive timeouts;
 * the descriptor or -1. */
static int dial(int port) {
  struct sockaddr_in a;
  struct timeval tv = { IO_TIMEOUT_S, 0 };
  int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  if (fd < 0)
    return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Reads one response with a Content-Length body; 0 when it was a 2xx. */
static int read_response(SSL *ssl) {
  char buf[16384];
  size_t have = 0;
  char *end, *cl;
  long len = -1;
  int n;
  for (;;) {
    if (have == sizeof buf - 1)
      return -1;
    if ((n = SSL_read(ssl, buf + have, (int)(sizeof buf - 1 - have))) <= 0)
      return -1;
    have += (size_t)n;
    buf[have] = '\0';
    if ((end = strstr(buf, "\r\n\r\n")) == NULL)
      continue;
    if (len < 0) {
      cl = strstr(buf, "Content-Length:");
      if (cl == NULL && (cl = strstr(buf, "content-length:")) == NULL)
        return -1;
      len = strtol(cl + 15, NULL, 10);
    }
    if ((long)(have - (size_t)(end + 4 - buf)) >= len)
      return strncmp(buf + 9, "2", 1) == 0 ? 0 : -1;
  }
}

/* One connection: handshake, a request, its response; the SSL object
 * (its socket open) or NULL. */
static SSL *open_one(SSL_CTX *ctx, int port, const char *req) {
  int fd = dial(port);
  SSL *ssl;
  if (fd < 0)
    return NULL;
  if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
      SSL_set_tlsext_host_name(ssl, "localhost") != 1 ||
      SSL_connect(ssl) != 1 ||
      SSL_write(ssl, req, (int)strlen(req)) != (int)strlen(req) ||
      read_response(ssl) != 0) {
    ERR_clear_error();
    SSL_free(ssl);
    close(fd);
    return NULL;
  }
  return ssl;
}

/* count: n requests taking turns on the k connections open_one made;
 * prints the tally. */
static int count(SSL **conns, int k, int n, const char *req) {
  int i, ok = 0, len = (int)strlen(req);
  double t0 = now_ms();
  for (i = 0; i < n; i++) {
    SSL *ssl = conns[i % k];
    if (ssl != NULL && SSL_write(ssl, req, len) == len &&
        read_response(ssl) == 0)
      ok++;
    else
      ERR_clear_error();
  }
  printf("n=%d ok=%d errors=%d ms=%.1f\n", n, ok, n - ok, now_ms() - t0);
  return ok == n ? 0 : 1;
}

int main(int argc, char **argv) {
  SSL_CTX *ctx;
  SSL **conns;
  char req[512];
  const char *v = getenv("TLSCLIENT_VERSION");
  int port, n, hold, i, k, ok = 0, counting;
  double t0;
  counting = argc == 6 && strcmp(argv[1], "count") == 0;
  if (argc != 6 || (!counting && strcmp(argv[1], "idle") != 0)) {
    fprintf(stderr, "usage: tlsclient idle PORT PATH N HOLD_S\n"
                    "       tlsclient count PORT PATH N CONNS\n");
    return 2;
  }
  port = atoi(argv[2]);
  n = atoi(argv[4]);
  hold = atoi(argv[5]);
  k = counting ? hold : n;           /* the connections to open */
  snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
           argv[3]);
  if (k <= 0 || (ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
      (conns = calloc((size_t)k, sizeof *conns)) == NULL)
    return 1;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (v != NULL && strcmp(v, "1.2") == 0)
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
  if (counting) {
    for (i = 0; i < k; i++)
      conns[i] = open_one(ctx, port, req);
    return count(conns, k, n, req);  /* the kernel closes them */
  }
  t0 = now_ms();
  for (i = 0; i < n; i++)
    ok += (conns[i] = open_one(ctx, port, req)) != NULL;
  printf("ready n=%d ok=%d errors=%d ms=%.1f\n", n, ok, n - ok,
         now_ms() - t0);
  fflush(stdout);
  sleep((unsigned)hold);
  for (i = 0; i < n; i++)       /* the process ends: the kernel closes */
    if (conns[i] != NULL)
      SSL_free(conns[i]);
  free(conns);
  SSL_CTX_free(ctx);
  return 0;
}
