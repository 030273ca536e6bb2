/*
 * tcp.h - one outbound connection for moonlet.tcp's cosockets, on the
 * stream (TCP, or TLS with a client context): the name looked up off the
 * loop, bytes read into a buffer the owner takes from, writes that report
 * when the kernel has them all.  Pure C: what Lua sees and the keep-alive
 * pools are lib_tcp.c's.
 */
#ifndef ML_TCP_H
#define ML_TCP_H

#include <stddef.h>
#include <uv.h>

typedef struct ml_tcp ml_tcp;
struct ml_tls;

typedef struct {
  /* Connected (err NULL), or why not: "connection refused", "timeout",
   * "dns: <reason>", "connect: <reason>", "tls: <reason>". */
  void (*connected)(ml_tcp *t, const char *err, void *ud);
  /* Bytes were added to the buffer, or the peer ended (ml_tcp_ended). */
  void (*data)(ml_tcp *t, void *ud);
  /* Every byte written so far is the kernel's (err NULL), or the write
   * failed ("closed"). */
  void (*written)(ml_tcp *t, const char *err, void *ud);
} ml_tcp_cbs;

/*
 * Starts connecting; with 'tls' (a client context the caller keeps
 * alive) the handshake follows, checking the certificate against 'name'
 * (NULL: host), which SNI sends too.  Callbacks come from loop callbacks
 * only.  NULL, with the short reason in 'err', when it fails at once.
 */
ml_tcp *ml_tcp_connect(uv_loop_t *loop, const char *host, int port,
                       struct ml_tls *tls, const char *name,
                       const ml_tcp_cbs *cb, void *ud, char *err,
                       size_t errlen);

/* Why it ended, when ml_tcp_ended says it did with an error: "tls: ...",
 * "closed". */
const char *ml_tcp_error(ml_tcp *t);

/* A new owner for the callbacks (the keep-alive pool, then a socket). */
void ml_tcp_set_owner(ml_tcp *t, const ml_tcp_cbs *cb, void *ud);

/* Writes n bytes: 0 when the kernel took them all now, 1 when the rest
 * is queued ('written' follows), -1 when the connection is gone. */
int ml_tcp_write(ml_tcp *t, const char *p, size_t n);

/* Whether a write is still queued. */
int ml_tcp_writing(ml_tcp *t);

/* Reads on (1) or off (0): a reader turns them on while it waits, so an
 * unread socket does not fill memory. */
void ml_tcp_read(ml_tcp *t, int on);

/* The bytes read and not yet taken. */
const char *ml_tcp_data(ml_tcp *t, size_t *len);

/* Takes n bytes from the front of the buffer. */
void ml_tcp_consume(ml_tcp *t, size_t n);

/* 0 while open; UV_EOF once the peer has ended, or a libuv error. */
int ml_tcp_ended(ml_tcp *t);

/* Keeps the loop alive for it (1) or not (0: idle in a pool). */
void ml_tcp_ref(ml_tcp *t, int on);

/* Closes; no callback follows.  Idempotent. */
void ml_tcp_close(ml_tcp *t);

#endif
