/*
 * stream.h - one TCP connection with an optional TLS session: what every
 * connection of the runtime sits on (the server's, the outbound HTTP
 * client's, WebSocket, Redis and TCP clients).  Plaintext goes up through
 * the owner's callbacks; writes queue with back-pressure; deadlines are
 * entries on a clock's heap.  No Lua, no HTTP.
 *
 * The owner embeds an ml_stream in its own struct (container_of gets it
 * back in the callbacks), calls ml_stream_init, then ml_stream_connect
 * (a client) or ml_stream_accept (a server), and ml_stream_close once;
 * it frees its struct in the 'closed' callback, never before.
 *
 * TLS is OpenSSL's over memory: the ciphertext libuv reads is handed to
 * the SSL object from memory, and what it writes goes to the stream's
 * queue, never through a socket descriptor (SSL_set_fd would race libuv
 * for it).  Reads flush the queue too: TLS 1.3 tickets, KeyUpdate and
 * alerts leave after reads.
 */
#ifndef ML_STREAM_H
#define ML_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include <openssl/ssl.h>
#include "base/clock.h"
#include "base/util.h"
#include "net/tls_ctx.h"

/* Stream errors, beside libuv's UV_E* (a range libuv does not use). */
#define ML_STREAM_ETLS   (-20101)  /* TLS failed; ml_stream_strerror says
                                      why ("tls: <reason>") */
#define ML_STREAM_ETRUNC (-20102)  /* the TLS peer closed the socket
                                      without close_notify: what came may
                                      be cut short */
#define ML_STREAM_EPLAIN (-20103)  /* a server's TLS port got clear text;
                                      its plain_reply went back */

typedef struct ml_stream ml_stream;

/*
 * The owner's callbacks; any may be NULL but 'alloc', 'read' and
 * 'closed'.  They run from loop callbacks only, never from inside an
 * ml_stream_* call (a write error is that call's result), except one:
 * a stream made without a clock delivers plaintext a stop held back from
 * inside ml_stream_read_start.
 */
typedef struct {
  /* Where libuv reads into: the owner's buffer, valid for one callback.
   * A TLS stream reads ciphertext into its second half and hands the
   * plaintext up from its first. */
  void (*alloc)(ml_stream *s, uv_buf_t *buf);
  /* Plaintext arrived; 'data' is valid during the call only. */
  void (*read)(ml_stream *s, const char *data, size_t len);
  /* The peer is done: UV_EOF (a clean end: FIN, or close_notify with
   * TLS), ML_STREAM_ETRUNC, ML_STREAM_ETLS, ML_STREAM_EPLAIN or a libuv
   * error.  No more reads follow; the owner closes. */
  void (*end)(ml_stream *s, int status);
  /* ml_stream_connect finished: connected and, with TLS, the handshake
   * done and verified (0), or why not (ML_STREAM_ETLS, UV_E*).  A server
   * stream's handshake ends with status 0 here too. */
  void (*connected)(ml_stream *s, int status);
  /* The pending output fell to the low-water mark (ml_stream_want_drain,
   * or after it had passed the high-water mark). */
  void (*drain)(ml_stream *s);
  /* The deadline of ml_stream_deadline came. */
  void (*timeout)(ml_stream *s);
  /* A client's TLS session to resume later (a TLS 1.3 ticket may arrive
   * after the handshake); the callee owns it (SSL_SESSION_free). */
  void (*session)(ml_stream *s, SSL_SESSION *sess);
  /* The socket is closed: the owner may free its struct now. */
  void (*closed)(ml_stream *s);
} ml_stream_cbs;

/*
 * Owned by the struct it is embedded in; its fields are stream.c's.
 * Output goes to 'q'; when the socket cannot take it all, 'q' goes with
 * the one uv_write in flight ('wr'), and a new 'q' gathers.  The libuv
 * requests (connect, write, FIN) are allocated while they are in flight
 * only, so an idle stream is its handle and little more.
 */
struct ml_stream {
  uv_tcp_t tcp;
  const ml_stream_cbs *cb;
  ml_ctimer deadline;         /* ml_stream_deadline's; on the stream's
                                 clock (its 'clock': deadlines and
                                 deferred reads; NULL: neither).  An owner
                                 that never calls ml_stream_deadline may
                                 run it itself, with its own callback */
  SSL *ssl;                   /* NULL: plain TCP */
  struct ml_stream_tls *x;    /* the rest of a TLS stream's state (its
                                 input, errors, deferred reads): only
                                 those carry it */
  ml_buf q;                   /* output not yet handed to libuv */
  struct ml_stream_write *wr; /* the uv_write in flight, or NULL */
  uint32_t low, high;         /* water marks for 'drain' */
  uint64_t out_total;         /* bytes ever queued or written (ciphertext
                                 with TLS): less the pending ones, what
                                 the socket took */
  unsigned closing : 1;
  unsigned reading : 1;       /* the owner wants reads */
  unsigned ended : 1;         /* 'end' was called */
  unsigned connecting : 1;    /* before 'connected' */
  unsigned connecting_tcp : 1;  /* uv_tcp_connect in flight */
  unsigned handshaking : 1;
  unsigned server : 1;
  unsigned sniffed : 1;       /* a server's first byte was looked at */
  unsigned want_drain : 1;
  unsigned shutdown : 1;      /* FIN after the queued output */
  unsigned fatal : 1;         /* TLS failed: no close_notify */
  unsigned shut_sent : 1;
  unsigned tls_done : 1;      /* the handshake finished */
  unsigned notify_sent : 1;   /* our close_notify is queued */
  unsigned uv_reading : 1;    /* libuv reads the socket */
  unsigned discard : 1;       /* clear text on a TLS port: reading to
                                 the end, answered */
};

/*
** Streams
*/

/* Puts s's handle on 'loop'; 'clock' may be NULL (no deadlines).  The
 * water marks start at 16 KiB and 64 KiB. 0 or a negative error. */
int ml_stream_init(uv_loop_t *loop, ml_stream *s, const ml_stream_cbs *cb,
                   ml_clock *clock);

/*
 * Connects to addr, then with 'tls' (a client context) makes the
 * handshake, sending SNI for 'name' (not for an address) and checking
 * the certificate against it, a host name or an IP address; 'sess', when
 * not NULL, is offered for resumption.  'connected' says how it went; the
 * owner then calls ml_stream_read_start.  0 or a negative error (then no
 * callback follows but 'closed' after ml_stream_close).
 */
int ml_stream_connect(ml_stream *s, const struct sockaddr *addr,
                      ml_tls *tls, const char *name, SSL_SESSION *sess);

/* Accepts from 'listener'; with 'tls' (a server context) the handshake
 * runs as bytes arrive once reading starts.  0 or a negative error. */
int ml_stream_accept(ml_stream *s, uv_stream_t *listener, ml_tls *tls);

/* Reads go on / stop; a stop takes effect at once, even in the middle of
 * a read's plaintext, which is kept for the next start.  0 or an error. */
int ml_stream_read_start(ml_stream *s);
void ml_stream_read_stop(ml_stream *s);

/*
 * Sends len bytes (TLS encrypts them): what the socket does not take at
 * once is copied to the queue.  0, or a negative error (closing, out of
 * memory).  Before a handshake has finished the bytes wait for it.
 */
int ml_stream_write(ml_stream *s, const char *data, size_t len);

/* Bytes queued or being written and not yet taken by the socket
 * (ciphertext with TLS). */
size_t ml_stream_pending(ml_stream *s);

/* How many bytes the socket has taken since the stream began (ciphertext
 * with TLS): what grows while a peer reads, whatever is added meanwhile. */
uint64_t ml_stream_sent(ml_stream *s);

/* The high-water mark: a writer should wait for 'drain' past it. */
int ml_stream_full(ml_stream *s);

/* Sets the water marks. */
void ml_stream_set_water(ml_stream *s, size_t low, size_t high);

/* 'drain' once the pending output is 'low' or fewer bytes; nothing is
 * called from here, so the caller checks ml_stream_pending first. */
void ml_stream_want_drain(ml_stream *s, size_t low);

/* After the queued output: close_notify (TLS) and a FIN; reads go on. */
void ml_stream_shutdown(ml_stream *s);

/* Calls 'timeout' in 'ms' on the stream's clock; 0 stops it. 0, or
 * UV_ENOMEM. */
int ml_stream_deadline(ml_stream *s, uint64_t ms);

/* Closes now (a TLS stream that finished its handshake sends
 * close_notify first, if the socket takes it); 'closed' follows.
 * Idempotent. */
void ml_stream_close(ml_stream *s);

/* Makes the BIO every TLS stream reads and writes through, once per
 * process (tls_ctx.c, before a context is handed out); 0 or -1. */
int ml_stream_bio_init(void);

/* Frees the buffers an idle stream does not need. */
void ml_stream_trim(ml_stream *s);

/* The socket's descriptor for sendfile, or -1 (TLS: the bytes must go
 * through OpenSSL; or not open). */
int ml_stream_fd(ml_stream *s);

/* Whether the stream speaks TLS. */
int ml_stream_is_tls(ml_stream *s);

/* Whether its handshake resumed a session. */
int ml_stream_resumed(ml_stream *s);

/* What the TLS session is: each field NULL when unknown or plain. */
typedef struct {
  const char *version, *cipher, *sni, *alpn;
  size_t alpn_len;
} ml_stream_tls_info;
void ml_stream_info(ml_stream *s, ml_stream_tls_info *info);

/* The short message for a status an 'end' or 'connected' callback got:
 * "tls: <reason>" for ML_STREAM_ETLS (with OpenSSL's verify reason),
 * "closed" for ML_STREAM_ETRUNC and UV_EOF, else libuv's. */
const char *ml_stream_strerror(ml_stream *s, int status, char *buf,
                               size_t len);

#endif
