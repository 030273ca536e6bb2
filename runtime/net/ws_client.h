/*
 * ws_client.h - a client's upgraded connection on the stream layer (TCP,
 * or TLS for wss://): name lookup off the loop, connect, the handshake
 * request written, the response head read with llhttp; then the bytes
 * after it go to the owner, who speaks the new protocol (WebSocket,
 * lib_ws_client.c) over ml_wscl_write.  No Lua.
 */
#ifndef ML_WS_CLIENT_H
#define ML_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "base/clock.h"
#include "net/stream.h"

typedef struct ml_wscl ml_wscl;

/* The response head, valid during the 'ready' callback only. */
typedef struct {
  int status;
  const char *headers;     /* nheaders pairs "name\0value\0" */
  int nheaders;
} ml_wscl_head;

/* The owner's callbacks; they run from loop callbacks only. */
typedef struct {
  /* The response head came (err NULL; 'head' set), or the connection
   * could not be made: err is "timeout", "connection refused",
   * "dns: <reason>", "closed", "bad response", "tls: <reason>" or
   * "connect: <reason>".
   * After a failure only 'closed' follows. */
  void (*ready)(ml_wscl *c, const char *err, const ml_wscl_head *head);
  /* Bytes after the head; valid during the call. */
  void (*read)(ml_wscl *c, const char *data, size_t len);
  /* The server ended its side, or the socket failed. */
  void (*end)(ml_wscl *c, int status);
  /* The pending output fell to the mark ml_wscl_want_drain set. */
  void (*drain)(ml_wscl *c);
  /* The socket is closed: the owner may let go of it. */
  void (*closed)(ml_wscl *c);
} ml_wscl_cbs;

/*
 * Starts: 'request' (the whole handshake request) is copied; with 'tls'
 * (a client context) the stream speaks TLS to 'host' (SNI, and the name
 * the certificate must hold).  The connect, TLS and the handshake must
 * end within timeout_ms on 'clock'.  NULL when out of memory (no
 * callback follows).
 */
ml_wscl *ml_wscl_open(uv_loop_t *loop, ml_clock *clock, ml_tls *tls,
                      const char *host, int port, const char *request,
                      size_t len, uint64_t timeout_ms,
                      const ml_wscl_cbs *cb, void *ud);

/* The owner's pointer. */
void *ml_wscl_ud(ml_wscl *c);

/* Sends a then b; 0, or a negative error once closing. */
int ml_wscl_write(ml_wscl *c, const void *a, size_t alen, const void *b,
                  size_t blen);

/* Bytes queued or being written. */
size_t ml_wscl_pending(ml_wscl *c);

/* 'drain' once pending is 'low' or fewer. */
void ml_wscl_want_drain(ml_wscl *c, size_t low);

/* Reads stop (0) or go on (1). */
void ml_wscl_reading(ml_wscl *c, int on);

/* A FIN after the queued output. */
void ml_wscl_end_output(ml_wscl *c);

/* Closes now (idempotent); 'closed' follows from the loop. */
void ml_wscl_close(ml_wscl *c);

#endif
