/*
 * test_stream.c - stream.c between two of its own streams on one loop,
 * over 127.0.0.1: plain and TLS echo, verification failures and their
 * reasons, ALPN refusal, resumption (across a reload too), close_notify
 * against a bare close, clear text on a TLS port, back-pressure and its
 * drain, a read stop in the middle of decrypted input, deadlines.  The
 * certificates are made by spec/tls/make-certs.sh with the openssl CLI.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "net/stream.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/*
** {======================================================
** Peers: one struct per stream, both sides
** =======================================================
*/

enum { M_ECHO, M_HOLD, M_SEND_CLOSE, M_SEND_DROP };

typedef struct {
  ml_stream s;
  ml_buf got;
  int connected, ended, closed, drains, timeouts, reads;
  int stop_after;                   /* stop reading after this many reads */
  int mode;                         /* what a server peer does */
} peer;

static char pki[64];
static char rbuf[65536];
static uv_loop_t *loop;
static uv_tcp_t listener;
static int port;
static ml_tls *server_tls;
static peer *last_server;
static int server_mode, sessions;
static SSL_SESSION *saved;
static ml_clock *clock_;

static void remove_pki(void) {
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", pki);
  if (system(cmd) != 0)
    fprintf(stderr, "cannot remove %s\n", pki);
}

/* The throwaway PKI, made once for every test here. */
static int make_pki(void) {
  char cmd[256];
  if (pki[0] != '\0')
    return 0;
  strcpy(pki, "/tmp/ml-stream-XXXXXX");
  if (mkdtemp(pki) == NULL)
    return -1;
  atexit(remove_pki);
  snprintf(cmd, sizeof cmd, "sh spec/tls/make-certs.sh '%s'", pki);
  return system(cmd) == 0 ? 0 : -1;
}

static const char *pf(const char *name) {
  static char paths[8][128];
  static int i;
  char *p = paths[i++ % 8];
  snprintf(p, 128, "%s/%s", pki, name);
  return p;
}

static peer *of(ml_stream *s) {
  return container_of(s, peer, s);
}

static void p_alloc(ml_stream *s, uv_buf_t *b) {
  ML_UNUSED(s);
  b->base = rbuf;
  b->len = sizeof rbuf;
}

static void p_read(ml_stream *s, const char *d, size_t n) {
  peer *p = of(s);
  ml_buf_append(&p->got, d, n);
  p->reads++;
  if (p->mode == M_ECHO && s->server)
    ml_stream_write(s, d, n);
  if (p->stop_after > 0 && p->reads >= p->stop_after)
    ml_stream_read_stop(s);
}

static void p_end(ml_stream *s, int status) {
  of(s)->ended = status == UV_EOF ? 1 : status;
  if (s->server)
    ml_stream_close(s);
}

static void p_connected(ml_stream *s, int status) {
  peer *p = of(s);
  p->connected = status == 0 ? 1 : status;
  if (status != 0)
    return;
  if (!s->server) {
    ml_stream_read_start(s);
    return;
  }
  if (p->mode == M_SEND_CLOSE || p->mode == M_SEND_DROP) {
    ml_stream_write(s, "abc", 3);
    if (p->mode == M_SEND_DROP)
      s->fatal = 1;                 /* no close_notify: a bare close */
    ml_stream_close(s);
  }
}

static void p_drain(ml_stream *s) {
  of(s)->drains++;
}

static void p_timeout(ml_stream *s) {
  of(s)->timeouts++;
}

static void p_session(ml_stream *s, SSL_SESSION *sess) {
  ML_UNUSED(s);
  sessions++;
  SSL_SESSION_free(saved);
  saved = sess;
}

static void p_closed(ml_stream *s) {
  peer *p = of(s);
  p->closed = 1;
  if (p->s.server) {
    if (last_server == p)
      last_server = NULL;
    ml_buf_free(&p->got);
    free(p);
  }
}

static const ml_stream_cbs cbs = {
  p_alloc, p_read, p_end, p_connected, p_drain, p_timeout, p_session,
  p_closed
};

static void on_conn(uv_stream_t *l, int status) {
  peer *p;
  if (status < 0 || (p = calloc(1, sizeof *p)) == NULL)
    return;
  ml_stream_init(loop, &p->s, &cbs, clock_);
  p->mode = server_mode;
  if (ml_stream_accept(&p->s, l, server_tls) != 0) {
    ml_stream_close(&p->s);
    return;
  }
  last_server = p;
  if (server_mode != M_HOLD)
    ml_stream_read_start(&p->s);
  if (server_tls == NULL && (p->mode == M_SEND_CLOSE))
    p_connected(&p->s, 0);
}

/* A loop with a listener on 127.0.0.1, TLS with 'cert' unless NULL. */
static int setup(const char *cert, const char *key, int mode) {
  struct sockaddr_in a;
  struct sockaddr_storage bound;
  int len = sizeof bound;
  char err[256];
  ml_tls_opts o;
  if (make_pki() != 0)
    return -1;
  loop = malloc(sizeof *loop);
  uv_loop_init(loop);
  clock_ = ml_clock_new_real(loop);
  server_mode = mode;
  sessions = 0;
  server_tls = NULL;
  if (cert != NULL) {
    memset(&o, 0, sizeof o);
    o.server = 1;
    o.cert = pf(cert);
    o.key = pf(key);
    o.plain_reply = "HTTP/1.1 400 Bad Request\r\n\r\n";
    if ((server_tls = ml_tls_new(&o, err, sizeof err)) == NULL) {
      fprintf(stderr, "%s\n", err);
      return -1;
    }
  }
  uv_ip4_addr("127.0.0.1", 0, &a);
  uv_tcp_init(loop, &listener);
  if (uv_tcp_bind(&listener, (const struct sockaddr *)&a, 0) != 0 ||
      uv_listen((uv_stream_t *)&listener, 64, on_conn) != 0)
    return -1;
  uv_tcp_getsockname(&listener, (struct sockaddr *)&bound, &len);
  port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
  return 0;
}

static void clock_closed(void *ud) {
  ML_UNUSED(ud);
}

/* Closes everything; 0 when the loop had nothing left. */
static int teardown(void) {
  int rc;
  if (last_server != NULL)
    ml_stream_close(&last_server->s);
  uv_close((uv_handle_t *)&listener, NULL);
  ml_clock_close(clock_, clock_closed, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  rc = uv_loop_close(loop);
  free(loop);
  ml_tls_free(server_tls);
  server_tls = NULL;
  SSL_SESSION_free(saved);
  saved = NULL;
  return rc;
}

static void guard_due(uv_timer_t *t) {
  ML_UNUSED(t);
}

/* Runs the loop until *flag is set, for at most 20 s. */
static int run_until(int *flag) {
  uv_timer_t guard;                /* wakes the loop if nothing else does */
  uint64_t end = uv_now(loop) + 20000;
  uv_timer_init(loop, &guard);
  uv_timer_start(&guard, guard_due, 20000, 0);
  while (*flag == 0 && uv_now(loop) < end)
    uv_run(loop, UV_RUN_ONCE);
  uv_close((uv_handle_t *)&guard, NULL);
  uv_run(loop, UV_RUN_NOWAIT);
  return *flag;
}

/* A client context: verification against the test CA unless ca is NULL
 * and verify 0. */
static ml_tls *client_tls(int verify, const char *ca, const char *alpn) {
  ml_tls_opts o;
  char err[256];
  ml_tls *t;
  memset(&o, 0, sizeof o);
  o.verify = verify;
  o.ca_file = ca != NULL ? pf(ca) : NULL;
  o.alpn = alpn;
  if ((t = ml_tls_new(&o, err, sizeof err)) == NULL)
    fprintf(stderr, "%s\n", err);
  return t;
}

static int connect_peer(peer *p, ml_tls *t, const char *name,
                        SSL_SESSION *sess) {
  struct sockaddr_in a;
  memset(p, 0, sizeof *p);
  uv_ip4_addr("127.0.0.1", port, &a);
  ml_stream_init(loop, &p->s, &cbs, clock_);
  return ml_stream_connect(&p->s, (const struct sockaddr *)&a, t, name,
                           sess);
}

static void close_peer(peer *p) {
  ml_stream_close(&p->s);
  run_until(&p->closed);
  ml_buf_free(&p->got);
}

/* }====================================================== */

TEST(stream_plain_echo) {
  peer c;
  CHECK(setup(NULL, NULL, M_ECHO) == 0);
  CHECK(connect_peer(&c, NULL, NULL, NULL) == 0);
  CHECK(run_until(&c.connected) == 1);
  CHECK(ml_stream_fd(&c.s) >= 0);
  CHECK_INT(ml_stream_write(&c.s, "hello", 5), 0);
  while (c.got.len < 5 && run_until(&c.reads))
    c.reads = 0;
  CHECK_INT(c.got.len, 5);
  CHECK(memcmp(c.got.data, "hello", 5) == 0);
  close_peer(&c);
  CHECK_INT(teardown(), 0);
}

TEST(stream_tls_echo_verified) {
  peer c;
  ml_tls *t;
  ml_stream_tls_info info;
  CHECK(setup("server.pem", "server.key", M_ECHO) == 0);
  CHECK((t = client_tls(1, "ca.pem", "http/1.1")) != NULL);
  CHECK(connect_peer(&c, t, "localhost", NULL) == 0);
  CHECK_INT(run_until(&c.connected), 1);
  CHECK(ml_stream_fd(&c.s) == -1);  /* no sendfile through TLS */
  ml_stream_info(&c.s, &info);
  CHECK(info.alpn != NULL && info.alpn_len == 8);
  CHECK(memcmp(info.alpn, "http/1.1", 8) == 0);
  CHECK(info.version != NULL);
  CHECK_INT(ml_stream_write(&c.s, "hello over tls", 14), 0);
  while (c.got.len < 14 && run_until(&c.reads))
    c.reads = 0;
  CHECK_INT(c.got.len, 14);
  CHECK(memcmp(c.got.data, "hello over tls", 14) == 0);
  CHECK(last_server != NULL);
  ml_stream_info(&last_server->s, &info);
  CHECK_STR(info.sni, "localhost");
  close_peer(&c);
  ml_tls_free(t);
  CHECK_INT(teardown(), 0);
}

/* Connects with t to 'name' and returns the message of the failure. */
static const char *fail_reason(ml_tls *t, const char *name, char *buf,
                               size_t len) {
  peer c;
  const char *m = "(connected)";
  if (connect_peer(&c, t, name, NULL) != 0)
    return "(connect)";
  run_until(&c.connected);
  if (c.connected < 0)
    m = ml_stream_strerror(&c.s, c.connected, buf, len);
  close_peer(&c);
  return m;
}

TEST(stream_tls_verify_failures_say_why) {
  ml_tls *trusting, *untrusting, *lax;
  char buf[256];
  CHECK(setup("server.pem", "server.key", M_ECHO) == 0);
  CHECK((trusting = client_tls(1, "ca.pem", NULL)) != NULL);
  CHECK((untrusting = client_tls(1, "rogue-ca.pem", NULL)) != NULL);
  CHECK((lax = client_tls(0, NULL, NULL)) != NULL);
  CHECK_STR(fail_reason(untrusting, "localhost", buf, sizeof buf),
            "tls: certificate verify failed "
            "(self-signed certificate in certificate chain)");
  CHECK_STR(fail_reason(trusting, "other.example", buf, sizeof buf),
            "tls: certificate verify failed (hostname mismatch)");
  CHECK_STR(fail_reason(trusting, "127.0.0.2", buf, sizeof buf),
            "tls: certificate verify failed (IP address mismatch)");
  CHECK_STR(fail_reason(trusting, "127.0.0.1", buf, sizeof buf),
            "(connected)");
  CHECK_STR(fail_reason(lax, "other.example", buf, sizeof buf),
            "(connected)");
  ml_tls_free(trusting);
  ml_tls_free(untrusting);
  ml_tls_free(lax);
  CHECK_INT(teardown(), 0);
}

TEST(stream_tls_alpn_without_http11_is_refused) {
  ml_tls *t;
  char buf[256];
  CHECK(setup("server.pem", "server.key", M_ECHO) == 0);
  CHECK((t = client_tls(1, "ca.pem", "h2")) != NULL);
  CHECK_STR(fail_reason(t, "localhost", buf, sizeof buf),
            "tls: tlsv1 alert no application protocol");
  ml_tls_free(t);
  CHECK_INT(teardown(), 0);
}

/* One echo on a new connection; whether it resumed. */
static int one_exchange(ml_tls *t, SSL_SESSION *sess) {
  peer c;
  int resumed;
  if (connect_peer(&c, t, "localhost", sess) != 0 ||
      run_until(&c.connected) != 1)
    return -1;
  ml_stream_write(&c.s, "x", 1);
  run_until(&c.reads);             /* tickets come with the first reads */
  resumed = ml_stream_resumed(&c.s);
  close_peer(&c);
  return resumed;
}

TEST(stream_tls_sessions_resume_across_a_reload) {
  ml_tls *t;
  char err[256];
  CHECK(setup("server.pem", "server.key", M_ECHO) == 0);
  CHECK((t = client_tls(1, "ca.pem", NULL)) != NULL);
  CHECK_INT(one_exchange(t, NULL), 0);
  CHECK(sessions > 0 && saved != NULL);
  CHECK_INT(one_exchange(t, saved), 1);
  CHECK_INT(ml_tls_reload(server_tls, pf("server2.pem"), pf("server2.key"),
                          err, sizeof err), 0);
  CHECK_INT(one_exchange(t, saved), 1);   /* the ticket keys stayed */
  CHECK_INT(ml_tls_reload(server_tls, pf("server.pem"), pf("broken.key"),
                          err, sizeof err), -1);
  CHECK(strncmp(err, "tls: cannot load the key", 24) == 0);
  CHECK_INT(one_exchange(t, saved), 1);   /* the old pair is still there */
  ml_tls_free(t);
  CHECK_INT(teardown(), 0);
}

TEST(stream_tls_close_notify_or_truncation) {
  peer c;
  ml_tls *t;
  CHECK(setup("server.pem", "server.key", M_SEND_CLOSE) == 0);
  CHECK((t = client_tls(1, "ca.pem", NULL)) != NULL);
  CHECK(connect_peer(&c, t, "localhost", NULL) == 0);
  CHECK_INT(run_until(&c.ended), 1);        /* close_notify: UV_EOF */
  CHECK_INT(c.got.len, 3);
  close_peer(&c);
  server_mode = M_SEND_DROP;
  CHECK(connect_peer(&c, t, "localhost", NULL) == 0);
  CHECK_INT(run_until(&c.ended), ML_STREAM_ETRUNC);
  CHECK_INT(c.got.len, 3);
  close_peer(&c);
  ml_tls_free(t);
  CHECK_INT(teardown(), 0);
}

TEST(stream_tls_port_answers_clear_text) {
  peer c;
  CHECK(setup("server.pem", "server.key", M_ECHO) == 0);
  CHECK(connect_peer(&c, NULL, NULL, NULL) == 0);
  CHECK_INT(run_until(&c.connected), 1);
  ml_stream_read_start(&c.s);
  CHECK_INT(ml_stream_write(&c.s, "GET / HTTP/1.1\r\n\r\n", 18), 0);
  CHECK_INT(run_until(&c.ended), 1);        /* the server's FIN */
  CHECK_INT(c.got.len, 28);
  CHECK(memcmp(c.got.data, "HTTP/1.1 400 Bad Request\r\n\r\n", 28) == 0);
  close_peer(&c);
  CHECK_INT(teardown(), 0);
}

/* A TLS client writes to a server that does not read until its
 * output is full: the queue passes its high-water mark, and what the
 * socket took stays put however much is added; once the server reads,
 * 'drain' comes and the count of bytes taken has grown. */
TEST(stream_tls_back_pressure_and_drain) {
  peer c;
  ml_tls *t;
  static char chunk[65536];
  uint64_t sent;
  int i;
  CHECK(setup("server.pem", "server.key", M_HOLD) == 0);
  CHECK((t = client_tls(0, NULL, NULL)) != NULL);
  CHECK(connect_peer(&c, t, "localhost", NULL) == 0);
  /* the server holds: the handshake needs its reads, so start them and
   * stop after the first plaintext */
  while (last_server == NULL)
    uv_run(loop, UV_RUN_ONCE);
  last_server->stop_after = 1;
  ml_stream_read_start(&last_server->s);
  CHECK_INT(run_until(&c.connected), 1);
  for (i = 0; i < 1024 && !ml_stream_full(&c.s); i++)
    CHECK_INT(ml_stream_write(&c.s, chunk, sizeof chunk), 0);
  CHECK(ml_stream_full(&c.s));       /* the kernel's buffers are full */
  CHECK(ml_stream_pending(&c.s) > 65536);
  sent = ml_stream_sent(&c.s);
  CHECK_INT(ml_stream_write(&c.s, chunk, sizeof chunk), 0);
  i++;
  uv_run(loop, UV_RUN_NOWAIT);
  CHECK(ml_stream_sent(&c.s) == sent);     /* nothing more was taken */
  CHECK_INT(c.drains, 0);
  last_server->stop_after = 0;
  ml_stream_read_start(&last_server->s);   /* held plaintext comes first */
  CHECK_INT(run_until(&c.drains), 1);
  CHECK(ml_stream_pending(&c.s) <= 16384);
  CHECK(ml_stream_sent(&c.s) > sent + 65536);
  while (last_server->got.len < sizeof chunk * (size_t)i &&
         run_until(&last_server->reads))
    last_server->reads = 0;
  CHECK_INT(last_server->got.len, sizeof chunk * (size_t)i);
  close_peer(&c);
  ml_tls_free(t);
  CHECK_INT(teardown(), 0);
}

TEST(stream_deadline_on_the_clock) {
  peer c;
  uint64_t t0;
  CHECK(setup(NULL, NULL, M_HOLD) == 0);
  CHECK(connect_peer(&c, NULL, NULL, NULL) == 0);
  t0 = uv_now(loop);
  CHECK_INT(ml_stream_deadline(&c.s, 50), 0);
  CHECK_INT(run_until(&c.timeouts), 1);
  CHECK(uv_now(loop) - t0 >= 50);
  CHECK_INT(ml_stream_deadline(&c.s, 50), 0);
  CHECK_INT(ml_stream_deadline(&c.s, 0), 0);  /* stopped: never fires */
  close_peer(&c);
  CHECK_INT(c.timeouts, 1);
  CHECK_INT(teardown(), 0);
}

TEST(stream_tls_handshake_garbage_and_silence) {
  peer c;
  CHECK(setup("server.pem", "server.key", M_ECHO) == 0);
  CHECK(connect_peer(&c, NULL, NULL, NULL) == 0);
  CHECK_INT(run_until(&c.connected), 1);
  ml_stream_read_start(&c.s);
  CHECK_INT(ml_stream_write(&c.s, "\x16\x03\x01\x00\x05garbage!", 13), 0);
  run_until(&c.ended);               /* the server's alert, then its end */
  CHECK(last_server == NULL || last_server->ended == ML_STREAM_ETLS);
  close_peer(&c);
  CHECK_INT(teardown(), 0);
}
