/*
 * lib_ws.h - what the WebSocket's files share: the object and its
 * transports (lib_ws.c), the server's handshake (lib_ws_shake.c) and the
 * client's (lib_ws_client.c).
 */
#ifndef ML_LIB_WS_H
#define ML_LIB_WS_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>
#include "base/clock.h"
#include "net/conn.h"
#include "net/ws.h"
#include "vm/lib.h"

typedef struct ml_ws ml_ws;
typedef struct ws_msg ws_msg;   /* lib_ws.c's parts of a WebSocket */
typedef struct send_op send_op;
typedef struct ws_aux ws_aux;
typedef struct ws_pmd ws_pmd;

/* A transport's operations; 't' is the transport. */
typedef struct {
  /* Sends a then b (either may be empty); 0, or < 0 when it cannot. */
  int (*write)(void *t, const void *a, size_t alen, const void *b,
               size_t blen);
  size_t (*pending)(void *t);
  /* ml_lib_ws_drained once pending() <= low; 0, or < 0 (out of memory). */
  int (*want_drain)(void *t, size_t low, ml_ws *ws);
  void (*reading)(void *t, int on);
  void (*end_output)(void *t);  /* a FIN after the queued output */
  void (*close)(void *t);       /* the connection is lost: close now */
} ws_io;

/*
 * A WebSocket, held by its transport until 'detach', by its Lua object
 * until collected, and by the calls in progress that use it; freed when
 * the last lets go.  Once detached, what was read stays readable.
 */
struct ml_ws {
  void *t;                      /* the transport (the server's connection
                                   or a client's); NULL once detached */
  ml_ws **ud;                   /* the Lua object's pointer, or NULL */
  ml_ws_parser parser;
  ws_pmd *pmd;                  /* permessage-deflate, or NULL: none */
  ws_aux *aux;                  /* or NULL: none needed yet */
  ws_msg *inbox;                /* read ahead of receive, oldest first */
  ml_wait recv;                 /* the receiving coroutine: recv.co */
  send_op *senders;             /* waiting for the output to drain */
  char *reason;                 /* what receive reports once closed, */
  int busy;                     /* calls in progress that use it */
  uint16_t code;                /* with the code (NULL: "") */
  uint8_t state;
  uint8_t reason_len;
  uint8_t ninbox;               /* messages in the inbox */
  unsigned server : 1;
  unsigned awaiting_pong : 1;   /* a heartbeat went out unanswered */
  unsigned inbox_full : 1;      /* reading stopped: receive lags */
  unsigned out_full : 1;        /* reading stopped: the peer lags */
  unsigned drain_wanted : 1;
};

/* A new WebSocket, server's or client's, open; NULL when out of memory.
 * Its transport holds it until ml_lib_ws_detach. */
ml_ws *ml_lib_ws_new(const ml_ws_pmd *pmd, size_t max_message, int server);

/* Frees ws and what it holds (lib_ws.c lets go of it normally; the
 * handshake frees one that never got its transport). */
void ml_lib_ws_free(ml_ws *ws);

/* Pushes a new Lua object for ws, with its subprotocol. */
void ml_lib_ws_push(lua_State *L, ml_ws *ws, const char *proto,
                    size_t plen);

/* The 101 is out: ping_interval's heartbeat; 0, or -1 (out of memory). */
int ml_lib_ws_start_beat(ml_ws *ws, ml_clock *clock, lua_Number every);

/* What a transport tells its WebSocket: bytes from the peer, the peer's
 * end (or a failure), the output drained, and the transport letting go:
 * every wait ends with "closed". */
void ml_lib_ws_read(ml_ws *ws, const char *d, size_t n);
void ml_lib_ws_end(ml_ws *ws, int status);
void ml_lib_ws_drained(ml_ws *ws);
void ml_lib_ws_detach(ml_ws *ws);

/* The server's transport: the upgraded connection's hooks (lib_ws.c). */
extern const ml_conn_upgrade ml_lib_ws_conn_upgrade;

/* The client's transport's operations (lib_ws_client.c). */
extern const ws_io ml_lib_ws_client_io;

/* core.ws_upgrade: req:websocket (lib_ws_shake.c). */
int ml_lib_ws_upgrade(lua_State *L);

/* core.ws_connect: moonlet.websocket.connect (lib_ws_client.c). */
int ml_lib_ws_connect(lua_State *L);

#endif
