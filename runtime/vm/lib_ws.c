/*
 * lib_ws.c - WebSocket for Lua (moonlet.WebSocket): the upgrade a handler
 * makes with req:websocket(), then whole messages both ways.  Pings are
 * answered here, heartbeats sent, the closing handshake made; receive,
 * send (under back-pressure) and close are park/resume/cancel waits with
 * their deadlines on the state's clock.  Frames are net/ws.c's; the bytes
 * travel through a transport (the server connection, net/conn.c) that
 * owns the WebSocket and lets go of it with its 'detach' hook.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "base/http.h"
#include "base/log.h"
#include "net/conn.h"
#include "net/ws.h"
#include "net/ws_deflate.h"
#include "net/ws_client.h"
#include "net/ws_shake.h"
#include "vm/lib.h"

#define WS_MT "moonlet.WebSocket"
#define SEND_HIGH (256 * 1024)   /* a sender waits above this ... */
#define SEND_LOW (64 * 1024)     /* ... until the output drains to this */
#define OUT_MAX (1024 * 1024)    /* pongs past this: stop reading */
#define INBOX_MAX 16             /* messages read ahead of receive */
#define CLOSE_WAIT_MS 5000       /* ws:close waits this long for a reply */
#define MAX_MESSAGE (1024 * 1024) /* req:websocket's max_message default */

typedef struct ml_ws ml_ws;

/* A transport's operations; 't' is the transport. */
typedef struct {
  /* Sends a then b (either may be empty); 0, or < 0 when it cannot. */
  int (*write)(void *t, const void *a, size_t alen, const void *b,
               size_t blen);
  size_t (*pending)(void *t);
  /* ws_drained once pending() <= low; 0, or < 0 (out of memory). */
  int (*want_drain)(void *t, size_t low, ml_ws *ws);
  void (*reading)(void *t, int on);
  void (*end_output)(void *t);  /* a FIN after the queued output */
  void (*close)(void *t);       /* the connection is lost: close now */
} ws_io;

/* A message read ahead of ws:receive. */
typedef struct ws_msg {
  struct ws_msg *next;
  ml_buf data;
  int op;
} ws_msg;

typedef struct send_op {
  ml_wait w;
  ml_ws *ws;
  struct send_op *next;
} send_op;

typedef struct {
  ml_wait w;
  ml_ws *ws;
  ml_ctimer timer;
} close_op;

enum { WS_OPEN, WS_CLOSING, WS_CLOSED };

/*
 * What a WebSocket needs only for some uses: a heartbeat (ping_interval),
 * a receive with a timeout, a wait for the connection's output to drain,
 * a close that waits.
 * Made at the first of them and kept, so an idle WebSocket that uses none
 * holds none of it.  Owned by its WebSocket.
 */
typedef struct {
  ml_ws *ws;
  close_op *closer;             /* ws:close waiting for the reply */
  ml_ctimer beat;               /* ping_interval */
  ml_ctimer recv_timer;         /* receive's timeout */
  ml_drain conn_drain;          /* the upgraded connection's drain wait */
} ws_aux;

/* permessage-deflate's state: made when the handshake agrees on it. */
typedef struct {
  ml_ws_pmd agreed;
  ml_ws_inflater inflater;
} ws_pmd;

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

static void ws_free(ml_ws *ws);

static const ws_io conn_io, client_io;  /* the transports, below */

/* The transport's operations: a server's connection, or a client's. */
static const ws_io *io(const ml_ws *ws) {
  return ws->server ? &conn_io : &client_io;
}

/*
** {======================================================
** Lifetime: hold while in use, freed once detached and let go
** =======================================================
*/

static void hold(ml_ws *ws) {
  ws->busy++;
}

static void release(ml_ws *ws) {
  if (--ws->busy == 0 && ws->t == NULL && ws->ud == NULL)
    ws_free(ws);
}

/* Resumes co now, or on the loop's next turn from inside a coroutine
 * (no resume nests in another). */
static void wake(ml_co *co, int nargs) {
  if (co->gen->running != NULL)
    ml_sched_resume_soon(co, nargs);
  else
    ml_sched_resume(co, nargs);
}

static void push_closed(lua_State *L, ml_ws *ws) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  lua_pushinteger(L, ws != NULL ? ws->code : ML_WS_ABNORMAL);
  if (ws != NULL && ws->reason != NULL)
    lua_pushlstring(L, ws->reason, ws->reason_len);
  else
    lua_pushliteral(L, "");
}

/* Wakes every sender: true, or nil, "closed" (on the next turn). */
static void wake_senders(ml_ws *ws, int closed) {
  send_op *op = ws->senders, *next;
  ml_co *co;
  ws->senders = NULL;
  for (; op != NULL; op = next) {
    next = op->next;
    co = ml_sched_unpark(&op->w);
    free(op);
    if (co == NULL)
      continue;
    if (closed) {
      lua_pushnil(co->L);
      lua_pushliteral(co->L, "closed");
    } else {
      lua_pushboolean(co->L, 1);
    }
    ml_sched_resume_soon(co, closed ? 2 : 1);
  }
}

static void wake_closer(ml_ws *ws, int soon) {
  close_op *op = ws->aux != NULL ? ws->aux->closer : NULL;
  ml_co *co;
  if (op == NULL)
    return;
  ws->aux->closer = NULL;
  ml_clock_timer_stop(&op->timer);
  co = ml_sched_unpark(&op->w);
  free(op);
  if (co == NULL)
    return;
  lua_pushboolean(co->L, 1);
  if (soon)
    ml_sched_resume_soon(co, 1);
  else
    wake(co, 1);
}

static void ws_free(ml_ws *ws) {
  ws_msg *m;
  if (ws->ud != NULL)
    *ws->ud = NULL;
  while ((m = ws->inbox) != NULL) {
    ws->inbox = m->next;
    ml_buf_free(&m->data);
    free(m);
  }
  ml_ws_parser_free(&ws->parser);
  if (ws->pmd != NULL) {
    ml_ws_inflater_free(&ws->pmd->inflater);
    free(ws->pmd);
  }
  if (ws->aux != NULL) {        /* detached: the drain wait is stopped */
    ml_clock_timer_stop(&ws->aux->beat);
    ml_clock_timer_stop(&ws->aux->recv_timer);
    free(ws->aux);
  }
  free(ws->reason);
  free(ws);
}

/* The WebSocket's occasional parts, made on first use; NULL when out of
 * memory.  Its timers are put on a clock when started. */
static ws_aux *need_aux(ml_ws *ws) {
  if (ws->aux == NULL && (ws->aux = calloc(1, sizeof *ws->aux)) != NULL) {
    ws->aux->ws = ws;
    ml_clock_timer_init_on(NULL, &ws->aux->beat);
    ml_clock_timer_init_on(NULL, &ws->aux->recv_timer);
  }
  return ws->aux;
}

/* Starts one of aux's timers on 'clock' (a stopped timer's clock may
 * change); 0, or < 0 when out of memory. */
static int aux_start(ml_ctimer *t, ml_clock *clock, ml_ctimer_cb cb,
                     uint64_t ms, uint64_t repeat) {
  ml_clock_timer_stop(t);
  ml_clock_timer_init_on(clock, t);
  return ml_clock_timer_start(t, cb, ms, repeat);
}

static void stop_beat(ml_ws *ws) {
  if (ws->aux != NULL)
    ml_clock_timer_stop(&ws->aux->beat);
}

static void stop_recv_timer(ml_ws *ws) {
  if (ws->aux != NULL)
    ml_clock_timer_stop(&ws->aux->recv_timer);
}

/* }====================================================== */

/*
** {======================================================
** Frames out, and the closing handshake
** =======================================================
*/

/* A client's frame: masked with a fresh key (RFC 6455 5.3). */
static int put_masked(ml_ws *ws, int op, int rsv1, const void *data,
                      size_t len) {
  uint8_t key[4];
  ml_buf f = { 0 };
  int rc;
  if (ml_ws_mask_key(key) != 0 ||
      ml_ws_frame(&f, op, rsv1, data, len, key) != 0)
    return -1;
  rc = io(ws)->write(ws->t, f.data, f.len, NULL, 0);
  ml_buf_free(&f);
  return rc == 0 && ws->t != NULL ? 0 : -1;
}

/* One frame; 0, or -1 when the transport is gone or fails. */
static int put_frame(ml_ws *ws, int op, int rsv1, const void *data,
                     size_t len) {
  unsigned char h[ML_WS_MAX_HEAD];
  size_t hn;
  if (ws->t == NULL)
    return -1;
  if (!ws->server)
    return put_masked(ws, op, rsv1, data, len);
  hn = ml_ws_head(h, op, 1, rsv1, len, NULL);
  return io(ws)->write(ws->t, h, hn, data, len) == 0 && ws->t != NULL
           ? 0 : -1;
}

static void put_close(ml_ws *ws, int code, const char *reason, size_t len) {
  unsigned char pl[ML_WS_MAX_CONTROL];
  size_t n = code == ML_WS_NO_STATUS ? 0
           : ml_ws_close_payload(pl, code, reason, len);
  put_frame(ws, ML_WS_CLOSE, 0, pl, n);
}

/* Records what receive reports once closed. */
static void set_closed(ml_ws *ws, int code, const char *reason,
                       size_t len) {
  unsigned char pl[ML_WS_MAX_CONTROL];
  ws->state = WS_CLOSED;
  ws->code = (uint16_t)code;
  len = ml_ws_close_payload(pl, code, reason, len) - 2;
  free(ws->reason);
  ws->reason_len = 0;            /* no memory for it: an empty reason */
  if (len > 0 && (ws->reason = malloc(len)) != NULL) {
    memcpy(ws->reason, pl + 2, len);
    ws->reason_len = (uint8_t)len;
  }
  stop_beat(ws);
  if (ws->t != NULL)            /* the handshake is over: a FIN */
    io(ws)->end_output(ws->t);
}

/* We break off: a close frame with the code, then the FIN. */
static void fail(ml_ws *ws, int code, const char *why) {
  ml_log(MOONLET_LOG_DEBUG, "websocket: closing with %d: %s", code, why);
  if (ws->state == WS_OPEN)
    put_close(ws, code, why, strlen(why));
  set_closed(ws, code, why, strlen(why));
}

/* Starts the closing handshake: our close frame; the peer's answers. */
static void start_close(ml_ws *ws, int code, const char *reason,
                        size_t len) {
  if (ws->state != WS_OPEN)
    return;
  ws->state = WS_CLOSING;
  stop_beat(ws);
  put_close(ws, code, reason, len);
}

/* }====================================================== */

/*
** {======================================================
** Frames in
** =======================================================
*/

static int pop_message(lua_State *L, ml_ws *ws);

/* Wakes the receiver with the first message, or "closed"; now from a
 * loop callback, else on the next turn. */
static void feed_receiver(ml_ws *ws) {
  ml_co *co;
  if (ws->recv.co == NULL || (ws->inbox == NULL &&
                              ws->state != WS_CLOSED))
    return;
  stop_recv_timer(ws);
  co = ml_sched_unpark(&ws->recv);
  if (ws->inbox != NULL) {
    wake(co, pop_message(co->L, ws));
    return;
  }
  push_closed(co->L, ws);
  wake(co, 4);
}

static void update_reading(ml_ws *ws) {
  if (ws->t != NULL)
    io(ws)->reading(ws->t, !ws->inbox_full && !ws->out_full);
}

static void got_message(ml_ws *ws) {
  ws_msg *m, **last;
  if (ws->state != WS_OPEN)
    return;                     /* after our close: dropped */
  if ((m = malloc(sizeof *m)) == NULL) {
    fail(ws, ML_WS_INTERNAL, "out of memory");
    return;
  }
  ml_ws_parser_take(&ws->parser, &m->data);
  m->op = ws->parser.opcode;
  m->next = NULL;
  for (last = &ws->inbox; *last != NULL; last = &(*last)->next)
    ;                           /* at most INBOX_MAX */
  *last = m;
  if (++ws->ninbox >= INBOX_MAX && !ws->inbox_full) {
    ws->inbox_full = 1;
    update_reading(ws);
  }
}

static void got_close(ml_ws *ws) {
  size_t len;
  const char *reason = ml_ws_close_reason(&ws->parser, &len);
  int code = ws->parser.close_code;
  if (ws->state == WS_OPEN)     /* echo its code, as peers expect */
    put_close(ws, code, "", 0);
  set_closed(ws, code, reason, len);
  wake_closer(ws, 0);
}

static void got_control(ml_ws *ws) {
  ml_ws_parser *p = &ws->parser;
  if (p->opcode == ML_WS_PING && ws->state == WS_OPEN)
    put_frame(ws, ML_WS_PONG, 0, p->ctl, p->ctl_len);
  else if (p->opcode == ML_WS_CLOSE)
    got_close(ws);
}

/* Asks the transport for ws_drained once the output is down to
 * SEND_LOW (one ask for every waiter); 0, or -1 when out of memory. */
static int want_drain(ml_ws *ws) {
  if (ws->drain_wanted)
    return 0;
  if (io(ws)->want_drain(ws->t, SEND_LOW, ws) != 0)
    return -1;
  ws->drain_wanted = 1;
  return 0;
}

/* The peer's output falls behind ours (pongs it does not read). */
static void check_output(ml_ws *ws) {
  if (ws->t == NULL || io(ws)->pending(ws->t) <= OUT_MAX)
    return;
  ws->out_full = 1;
  update_reading(ws);
  if (want_drain(ws) != 0 && ws->t != NULL)
    io(ws)->close(ws->t);       /* no memory to wait: it would stall */
}

/* Bytes from the peer: frames until they run out or the end. */
static void ws_read(ml_ws *ws, const char *d, size_t n) {
  size_t used;
  ml_ws_result r;
  hold(ws);
  ws->awaiting_pong = 0;        /* it is alive */
  while (n > 0 && ws->state != WS_CLOSED && ws->t != NULL) {
    r = ml_ws_parse(&ws->parser, d, n, &used);
    d += used;
    n -= used;
    if (r == ML_WS_MESSAGE)
      got_message(ws);
    else if (r == ML_WS_CONTROL)
      got_control(ws);
    else if (r == ML_WS_ERROR)
      fail(ws, ws->parser.error_code, ws->parser.error);
  }
  check_output(ws);
  feed_receiver(ws);            /* last: it may end the request */
  release(ws);
}

/* The peer ended its side, or the socket failed. */
static void ws_end(ml_ws *ws, int status) {
  ML_UNUSED(status);
  hold(ws);
  if (ws->state == WS_OPEN) {   /* gone without a close: as a client */
    if (ws->t != NULL)          /* that left (the handler is cancelled) */
      io(ws)->close(ws->t);
  } else if (ws->state == WS_CLOSING) {
    set_closed(ws, ML_WS_ABNORMAL, "", 0);
    wake_closer(ws, 0);
    feed_receiver(ws);
  }
  if (!ws->server && ws->t != NULL && ws->state == WS_CLOSED)
    io(ws)->close(ws->t);       /* a client closes once the server has */
  release(ws);
}

/* The output drained: senders go on, reading too. */
static void ws_drained(ml_ws *ws) {
  hold(ws);
  ws->drain_wanted = 0;
  if (ws->out_full) {
    ws->out_full = 0;
    update_reading(ws);
  }
  wake_senders(ws, 0);
  release(ws);
}

/* The transport lets go: every wait ends with "closed" (a handler
 * parked here is cancelled by its connection right after). */
static void ws_detach(ml_ws *ws) {
  ws->t = NULL;
  if (ws->state != WS_CLOSED) {
    ws->state = WS_CLOSED;
    ws->code = ML_WS_ABNORMAL;
    ws->reason_len = 0;
  }
  stop_beat(ws);
  hold(ws);
  wake_senders(ws, 1);
  wake_closer(ws, 1);
  if (ws->recv.co != NULL) {
    ml_co *co = ml_sched_unpark(&ws->recv);
    stop_recv_timer(ws);
    push_closed(co->L, ws);
    ml_sched_resume_soon(co, 4);
  }
  release(ws);                  /* frees it unless a call holds it */
}

/* ping_interval: a ping, unless the last one is still unanswered. */
static void beat_fire(ml_ctimer *t) {
  ml_ws *ws = container_of(t, ws_aux, beat)->ws;
  hold(ws);
  if (ws->awaiting_pong) {
    ml_log(MOONLET_LOG_DEBUG, "websocket: no answer to a ping: closing");
    stop_beat(ws);
    if (ws->t != NULL)
      io(ws)->close(ws->t);
  } else if (ws->state == WS_OPEN) {
    ws->awaiting_pong = 1;
    put_frame(ws, ML_WS_PING, 0, "", 0);
  }
  release(ws);
}

/* }====================================================== */

/*
** {======================================================
** The server's transport: the upgraded connection
** =======================================================
*/

static int conn_write(void *t, const void *a, size_t alen, const void *b,
                      size_t blen) {
  ml_conn *c = t;
  ml_buf *o = ml_conn_out(c);
  if (ml_conn_closing(c))
    return UV_EPIPE;
  if (ml_buf_reserve(o, alen + blen) != 0)
    return UV_ENOMEM;
  memcpy(o->data + o->len, a, alen);
  if (blen > 0)
    memcpy(o->data + o->len + alen, b, blen);
  o->len += alen + blen;
  ml_conn_flush(c);               /* may close it: the caller checks */
  if (!ml_conn_closing(c) && o->len == 0)
    ml_buf_free(o);               /* an idle socket keeps no buffer, and
                                     a large message's goes at once */
  return 0;
}

static size_t conn_pending(void *t) {
  return ml_conn_pending(t);
}

/* The output drained.  A close detaches us first, which stops the wait,
 * so UV_ECANCELED does not come here. */
static void conn_drained(ml_drain *d, int status) {
  if (status == 0)
    ws_drained(container_of(d, ws_aux, conn_drain)->ws);
}

static int conn_want_drain(void *t, size_t low, ml_ws *ws) {
  if (need_aux(ws) == NULL)
    return UV_ENOMEM;
  ml_conn_drain_wait(t, &ws->aux->conn_drain, low, conn_drained);
  return 0;
}

static void conn_reading(void *t, int on) {
  ml_conn_reading(t, on);
}

static void conn_end_output(void *t) {
  ml_conn_end_output(t);
}

static void conn_close(void *t) {
  ml_conn_close(t);
}

static const ws_io conn_io = {
  conn_write, conn_pending, conn_want_drain, conn_reading, conn_end_output,
  conn_close
};

static void up_read(void *ud, const char *data, size_t len) {
  ws_read(ud, data, len);
}

static void up_end(void *ud, int status) {
  ws_end(ud, status);
}

/* A graceful stop: 1001, and the handler ends when the peer answers. */
static void up_stop(void *ud) {
  ml_ws *ws = ud;
  hold(ws);
  start_close(ws, ML_WS_GOING_AWAY, "server stopping", 15);
  release(ws);
}

static void up_detach(void *ud) {
  ml_ws *ws = ud;
  if (ws->aux != NULL)          /* a no-op if not waiting */
    ml_conn_drain_stop(&ws->aux->conn_drain);
  ws_detach(ws);
}

static const ml_conn_upgrade conn_upgrade = {
  up_read, up_end, up_stop, up_detach
};

/* }====================================================== */

/*
** {======================================================
** The Lua object
** =======================================================
*/

static const char ws_mt_key = 0;
static const char deflater_key = 0;

/*
 * The WebSocket at 1, or NULL once it is gone.  Every send and receive
 * asks, so its metatable is found by address: luaL_checkudata finds it
 * by name, through Lua's cache of C strings, where a miss (two literals
 * in one slot) costs a hash and a lookup each time.
 */
static ml_ws *check_ws(lua_State *L) {
  ml_ws **ud = lua_touserdata(L, 1);
  int ok;
  if (ud == NULL || !lua_getmetatable(L, 1))
    luaL_typeerror(L, 1, WS_MT);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ws_mt_key);
  ok = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  if (!ok)
    luaL_typeerror(L, 1, WS_MT);
  return *ud;
}

static int return_closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* Pushes a new Lua object for ws, with its subprotocol. */
static void push_ws(lua_State *L, ml_ws *ws, const char *proto,
                    size_t plen) {
  ml_ws **ud = lua_newuserdatauv(L, sizeof *ud, proto != NULL);
  *ud = ws;
  ws->ud = ud;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ws_mt_key);
  lua_setmetatable(L, -2);
  if (proto != NULL) {
    lua_pushlstring(L, proto, plen);
    lua_setiuservalue(L, -2, 1);
  }
}

static int deflater_gc(lua_State *L) {
  ml_ws_deflater **d = lua_touserdata(L, 1);
  ml_ws_deflater_free(*d);
  *d = NULL;
  return 0;
}

/* The state's compressor, made on first use; NULL when out of memory.
 * It lives in the registry and goes with the state. */
static ml_ws_deflater *deflater(lua_State *L) {
  ml_ws_deflater **d;
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &deflater_key) == LUA_TUSERDATA) {
    d = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return *d;
  }
  lua_pop(L, 1);
  d = lua_newuserdatauv(L, sizeof *d, 0);
  if ((*d = ml_ws_deflater_new()) == NULL) {
    lua_pop(L, 1);
    return NULL;
  }
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, deflater_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &deflater_key);
  return *d;
}

static void send_op_cancel(ml_wait *w) {
  send_op *op = (send_op *)w, **p;
  for (p = &op->ws->senders; *p != NULL; p = &(*p)->next)
    if (*p == op) {
      *p = op->next;
      break;
    }
  free(op);
}

/* Parks the sender until the output drains (or the socket goes); the
 * senders wake in the order they came. */
static int wait_drain(lua_State *L, ml_ws *ws) {
  ml_co *co = ml_sched_current(L);
  send_op *op = calloc(1, sizeof *op), **last;
  if (op == NULL || want_drain(ws) != 0) {  /* it calls back later */
    free(op);
    return luaL_error(L, "not enough memory");
  }
  op->ws = ws;
  for (last = &ws->senders; *last != NULL; last = &(*last)->next)
    ;
  *last = op;
  ml_sched_park(co, &op->w, send_op_cancel);
  return ml_sched_yield(L);
}

/* The message as it goes out: compressed when agreed and worth it. */
static int send_message(lua_State *L, ml_ws *ws, int op, const char *data,
                        size_t len) {
  ml_buf z = { 0 };
  ml_ws_deflater *d;
  int rsv1 = 0, rc;
  if (ws->pmd != NULL && len >= ML_WS_DEFLATE_MIN &&
      (d = deflater(L)) != NULL &&
      ml_ws_deflate(d, ws->server ? ws->pmd->agreed.server_bits
                                  : ws->pmd->agreed.client_bits, data, len,
                    &z) == 1) {
    rsv1 = 1;
    data = z.data;
    len = z.len;
  }
  rc = put_frame(ws, op, rsv1, data, len);
  ml_buf_free(&z);
  return rc;
}

/*
 * ws:send(data [, "text"|"binary"]) -> true, or nil, "closed".  The
 * message is queued whole at once, so messages leave in call order;
 * above SEND_HIGH bytes queued the caller waits for the output to drain.
 */
static int ws_send(lua_State *L) {
  ml_ws *ws = check_ws(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  static const char *const kinds[] = { "text", "binary", NULL };
  int op = luaL_checkoption(L, 3, "text", kinds) == 0 ? ML_WS_TEXT
                                                      : ML_WS_BINARY;
  uint32_t st = 0;
  int failed;
  if (op == ML_WS_TEXT &&
      (ml_ws_utf8(&st, (const unsigned char *)data, len) != 0 || st != 0))
    return luaL_argerror(L, 2, "text must be UTF-8 (send it as "
                               "\"binary\")");
  if (ws == NULL || ws->state != WS_OPEN || ws->t == NULL)
    return return_closed(L);
  hold(ws);
  failed = send_message(L, ws, op, data, len) != 0;
  if (!failed && io(ws)->pending(ws->t) > SEND_HIGH) {
    release(ws);                /* still attached: not freed */
    return wait_drain(L, ws);
  }
  release(ws);
  if (failed)
    return return_closed(L);
  lua_pushboolean(L, 1);
  return 1;
}

/* ws:ping([data]) -> true, or nil, "closed". */
static int ws_ping(lua_State *L) {
  ml_ws *ws = check_ws(L);
  size_t len;
  const char *data = luaL_optlstring(L, 2, "", &len);
  int failed;
  luaL_argcheck(L, len <= ML_WS_MAX_CONTROL, 2, "at most 125 bytes");
  if (ws == NULL || ws->state != WS_OPEN || ws->t == NULL)
    return return_closed(L);
  hold(ws);
  failed = put_frame(ws, ML_WS_PING, 0, data, len) != 0;
  release(ws);
  if (failed)
    return return_closed(L);
  lua_pushboolean(L, 1);
  return 1;
}

static void recv_done(ml_ctimer *t) {
  ml_ws *ws = container_of(t, ws_aux, recv_timer)->ws;
  ml_co *co = ml_sched_unpark(&ws->recv);
  if (co == NULL)
    return;
  lua_pushnil(co->L);
  lua_pushliteral(co->L, "timeout");
  ml_sched_resume(co, 2);
}

static void recv_cancel(ml_wait *w) {
  stop_recv_timer(container_of(w, ml_ws, recv));
}

/* Pops the first message onto L's stack. */
static int pop_message(lua_State *L, ml_ws *ws) {
  ws_msg *m = ws->inbox;
  ws->inbox = m->next;
  ws->ninbox--;
  lua_pushlstring(L, m->data.data ? m->data.data : "", m->data.len);
  if (m->op == ML_WS_TEXT)
    lua_pushliteral(L, "text");
  else
    lua_pushliteral(L, "binary");
  ml_buf_free(&m->data);
  free(m);
  if (ws->inbox_full && ws->ninbox <= INBOX_MAX / 2) {
    ws->inbox_full = 0;
    update_reading(ws);
  }
  return 2;
}

/*
 * ws:receive([timeout]) -> message, "text"|"binary"; nil, "closed",
 * code, reason; or nil, "timeout".  One coroutine receives at a time.
 */
static int ws_receive(lua_State *L) {
  ml_ws *ws = check_ws(L);
  lua_Number timeout = luaL_optnumber(L, 2, -1);
  ml_co *co;
  luaL_argcheck(L, timeout < 1e9, 2, "timeout out of range");
  if (ws != NULL && ws->inbox != NULL)
    return pop_message(L, ws);
  if (ws == NULL || ws->state == WS_CLOSED) {
    push_closed(L, ws);
    return 4;
  }
  if (ws->recv.co != NULL)
    return luaL_error(L, "another coroutine is receiving on this "
                         "WebSocket");
  co = ml_sched_current(L);
  if (timeout >= 0 && (need_aux(ws) == NULL ||
                       aux_start(&ws->aux->recv_timer, co->gen->clock,
                                 recv_done,
                                 (uint64_t)(timeout * 1000 + 0.5), 0) != 0))
    return luaL_error(L, "not enough memory");
  ml_sched_park(co, &ws->recv, recv_cancel);
  return ml_sched_yield(L);
}

static void close_done(ml_ctimer *t) {
  close_op *op = container_of(t, close_op, timer);
  ml_ws *ws = op->ws;
  ml_co *co = ml_sched_unpark(&op->w);
  ws->aux->closer = NULL;
  free(op);
  hold(ws);
  if (ws->state != WS_CLOSED) {  /* no answer: the end all the same */
    set_closed(ws, ML_WS_ABNORMAL, "", 0);
    feed_receiver(ws);
  }
  release(ws);
  if (co == NULL)
    return;
  lua_pushboolean(co->L, 1);
  ml_sched_resume(co, 1);
}

static void close_cancel(ml_wait *w) {
  close_op *op = (close_op *)w;
  ml_clock_timer_stop(&op->timer);
  op->ws->aux->closer = NULL;
  free(op);
}

/*
 * ws:close([code [, reason]]) -> true once the peer's close frame came
 * (or 5 s passed), after which the connection ends.
 */
static int ws_close(lua_State *L) {
  ml_ws *ws = check_ws(L);
  lua_Integer code = luaL_optinteger(L, 2, ML_WS_NORMAL);
  size_t len;
  const char *reason = luaL_optlstring(L, 3, "", &len);
  uint32_t st = 0;
  close_op *op;
  ml_co *co;
  luaL_argcheck(L, code == ML_WS_NORMAL || (code >= 3000 && code <= 4999) ||
                (code >= 1001 && code <= 1014 && ml_ws_close_code_ok(
                (int)code)), 2, "not a close code to send");
  luaL_argcheck(L, ml_ws_utf8(&st, (const unsigned char *)reason, len) ==
                0 && st == 0, 3, "the reason must be UTF-8");
  if (ws == NULL || ws->state != WS_OPEN ||
      (ws->aux != NULL && ws->aux->closer != NULL)) {
    lua_pushboolean(L, 1);      /* closed, or closing: nothing to do */
    return 1;
  }
  co = ml_sched_current(L);
  if (need_aux(ws) == NULL || (op = calloc(1, sizeof *op)) == NULL)
    return luaL_error(L, "not enough memory");
  op->ws = ws;
  ml_clock_timer_init_on(co->gen->clock, &op->timer);
  if (ml_clock_timer_start(&op->timer, close_done, CLOSE_WAIT_MS, 0) != 0) {
    free(op);
    return luaL_error(L, "not enough memory");
  }
  hold(ws);
  start_close(ws, (int)code, reason, len);
  if (ws->t == NULL || ws->state == WS_CLOSED) {
    ml_clock_timer_stop(&op->timer);
    free(op);
    release(ws);
    lua_pushboolean(L, 1);
    return 1;
  }
  ws->aux->closer = op;
  ml_sched_park(co, &op->w, close_cancel);
  release(ws);
  return ml_sched_yield(L);
}

/* ws.protocol, or a method. */
static int ws_index(lua_State *L) {
  size_t n;
  const char *k = lua_tolstring(L, 2, &n);
  if (k != NULL && n == 8 && memcmp(k, "protocol", 8) == 0) {
    luaL_checkudata(L, 1, WS_MT);
    lua_getiuservalue(L, 1, 1);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, lua_upvalueindex(1));
  return 1;
}

/* The Lua object goes: a server's WebSocket lives on with its
 * connection; a client's closes; either is freed once both are gone. */
static int ws_gc(lua_State *L) {
  ml_ws **ud = lua_touserdata(L, 1);
  ml_ws *ws = *ud;
  if (ws != NULL) {
    ws->ud = NULL;
    *ud = NULL;
    hold(ws);
    if (!ws->server && ws->t != NULL)  /* a client's socket goes too */
      io(ws)->close(ws->t);
    release(ws);
  }
  return 0;
}

static int ws_tostring(lua_State *L) {
  ml_ws *ws = check_ws(L);
  lua_pushstring(L, ws == NULL ? "moonlet.WebSocket (closed)"
                 : ws->state == WS_OPEN ? "moonlet.WebSocket (open)"
                 : "moonlet.WebSocket (closing)");
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** The server's handshake
** =======================================================
*/

/* The value of header 'name' on its i-th line from 'from', or NULL. */
static const char *header_from(ml_conn *c, const char *name, int *from,
                               size_t *len) {
  ml_req *r = ml_conn_req(c);
  size_t nlen;
  for (; *from < r->nhdrs; (*from)++) {
    const char *n = ml_conn_header_name(c, *from, &nlen);
    if (ml_strieq(n, nlen, name))
      return ml_conn_header_value(c, (*from)++, len);
  }
  return NULL;
}

/* Whether any line of header 'name' lists the token. */
static int header_has(ml_conn *c, const char *name, const char *token) {
  int i = 0;
  size_t len;
  const char *v;
  while ((v = header_from(c, name, &i, &len)) != NULL)
    if (ml_ws_list_has(v, len, token))
      return 1;
  return 0;
}

/* The one line of header 'name', or NULL (none, or several). */
static const char *header_one(ml_conn *c, const char *name, size_t *len) {
  int i = 0;
  size_t l2;
  const char *v = header_from(c, name, &i, len);
  return v != NULL && header_from(c, name, &i, &l2) == NULL ? v : NULL;
}

/* The client's first offer that the table at idx holds, or NULL. */
static const char *choose_protocol(lua_State *L, int idx, ml_conn *c,
                                   size_t *plen) {
  int i = 0;
  size_t len;
  const char *v, *p, *t;
  if (lua_type(L, idx) != LUA_TTABLE)
    return NULL;
  while ((v = header_from(c, "sec-websocket-protocol", &i, &len)) != NULL)
    for (p = v; (t = ml_ws_list_next(&p, v + len, plen)) != NULL;) {
      lua_Integer j, n = (lua_Integer)lua_rawlen(L, idx);
      for (j = 1; j <= n; j++) {
        size_t ol;
        const char *o;
        lua_rawgeti(L, idx, j);
        o = lua_tolstring(L, -1, &ol);
        lua_pop(L, 1);          /* the table keeps the string */
        if (o != NULL && ol == *plen && memcmp(o, t, ol) == 0)
          return t;
      }
    }
  return NULL;
}

/* The extension answer, when the client offers permessage-deflate. */
static void choose_deflate(ml_conn *c, ml_ws_pmd *pmd,
                           char resp[ML_WS_PMD_RESPONSE]) {
  int i = 0;
  size_t len;
  const char *v;
  resp[0] = '\0';
  while ((v = header_from(c, "sec-websocket-extensions", &i, &len)) != NULL)
    if (ml_ws_pmd_accept(v, len, 15, pmd, resp))
      return;
}

/*
 * Why the request cannot become a WebSocket (400 or 426 and a message),
 * or 0.
 */
static int check_handshake(ml_conn *c, const char **why) {
  ml_req *r = ml_conn_req(c);
  size_t len;
  const char *v;
  if (!header_has(c, "upgrade", "websocket") ||
      !header_has(c, "connection", "upgrade")) {
    *why = "a WebSocket handshake was expected";
    return 400;
  }
  if (r->method != HTTP_GET || r->minor < 1) {
    *why = "a WebSocket handshake is a GET in HTTP/1.1";
    return 400;
  }
  v = header_one(c, "sec-websocket-version", &len);
  if (v == NULL || !ml_strieq(v, len, "13")) {
    *why = "WebSocket version 13 is required";
    return 426;
  }
  v = header_one(c, "sec-websocket-key", &len);
  if (v == NULL || !ml_ws_key_ok(v, len)) {
    *why = "Sec-WebSocket-Key must be base64 of 16 bytes";
    return 400;
  }
  return 0;
}

/* The 101 response into the connection's output; 0 or -1 (memory). */
static int put_101(ml_conn *c, const char *proto, size_t plen,
                   const char *ext) {
  char accept[ML_WS_ACCEPT_LEN + 1];
  size_t klen;
  const char *key = header_one(c, "sec-websocket-key", &klen);
  ml_buf *o = ml_conn_out(c);
  size_t mark = o->len;
  ml_ws_accept(key, klen, accept);
  if (ML_BUF_LIT(o, "HTTP/1.1 101 Switching Protocols\r\n"
                    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: ") == 0 &&
      ml_buf_append(o, accept, ML_WS_ACCEPT_LEN) == 0 &&
      (proto == NULL ||
       (ML_BUF_LIT(o, "\r\nSec-WebSocket-Protocol: ") == 0 &&
        ml_buf_append(o, proto, plen) == 0)) &&
      (ext[0] == '\0' ||
       (ML_BUF_LIT(o, "\r\nSec-WebSocket-Extensions: ") == 0 &&
        ml_buf_append(o, ext, strlen(ext)) == 0)) &&
      ML_BUF_LIT(o, "\r\n\r\n") == 0)
    return 0;
  o->len = mark;
  return -1;
}

/* A new WebSocket; NULL when out of memory. */
static ml_ws *ws_new(const ml_ws_pmd *pmd, size_t max_message, int server) {
  ml_ws *ws = calloc(1, sizeof *ws);
  if (ws == NULL)
    return NULL;
  if (pmd->on && (ws->pmd = malloc(sizeof *ws->pmd)) == NULL) {
    free(ws);
    return NULL;
  }
  ws->server = server != 0;
  if (ws->pmd != NULL) {
    ws->pmd->agreed = *pmd;
    ml_ws_inflater_init(&ws->pmd->inflater, pmd, server);
  }
  ml_ws_parser_init(&ws->parser, server, max_message,
                    ws->pmd != NULL ? &ws->pmd->inflater : NULL);
  ws->state = WS_OPEN;
  ws->code = ML_WS_NO_STATUS;
  return ws;
}

/* What req:websocket's options ask for. */
typedef struct {
  lua_Integer max_message;
  lua_Number ping_interval;
  int deflate;
} up_opts;

/* The list of subprotocols in the options at 2, checked, is pushed (nil
 * when none). */
static void read_protocols(lua_State *L) {
  lua_Integer i;
  if (lua_getfield(L, 2, "protocols") == LUA_TNIL)
    return;
  if (!lua_istable(L, -1))
    luaL_error(L, "req:websocket: protocols must be a list of strings");
  for (i = 1; lua_rawgeti(L, -1, i) != LUA_TNIL; i++) {
    if (lua_type(L, -1) != LUA_TSTRING)
      luaL_error(L, "req:websocket: protocols must be a list of strings");
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* req:websocket's options, the table at 2 (or none), are read into o and
 * the subprotocols left at 3.  A bad one raises at the caller's line. */
static void read_opts(lua_State *L, up_opts *o) {
  int t = lua_type(L, 2);
  o->max_message = MAX_MESSAGE;
  o->ping_interval = 0;
  o->deflate = 1;
  lua_settop(L, 2);
  if (t != LUA_TNIL && t != LUA_TNONE && t != LUA_TTABLE)
    luaL_error(L, "req:websocket expects an options table");
  if (t != LUA_TTABLE) {
    lua_pushnil(L);
    return;
  }
  read_protocols(L);
  if (lua_getfield(L, 2, "max_message") != LUA_TNIL &&
      (!lua_isinteger(L, -1) || (o->max_message = lua_tointeger(L, -1)) <= 0))
    luaL_error(L, "req:websocket: max_message must be a positive integer");
  if (lua_getfield(L, 2, "ping_interval") != LUA_TNIL &&
      (lua_type(L, -1) != LUA_TNUMBER ||
       !((o->ping_interval = lua_tonumber(L, -1)) >= 0 &&
         o->ping_interval < 1e6)))
    luaL_error(L, "req:websocket: ping_interval must be seconds >= 0");
  lua_getfield(L, 2, "deflate");
  o->deflate = !lua_isboolean(L, -1) || lua_toboolean(L, -1);
  lua_settop(L, 3);
}

/* The request is not a WebSocket handshake: moonlet.abort(status, why),
 * with Sec-WebSocket-Version: 13 for a 426. */
static int refuse(lua_State *L, int status, const char *why) {
  ml_lib_push_abort(L, status, why);
  if (status == 426) {
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "13");
    lua_setfield(L, -2, "Sec-WebSocket-Version");
    lua_setfield(L, -2, "headers");
  }
  return lua_error(L);
}

/* The 101 is out: ping_interval's heartbeat; 0, or -1 (out of memory). */
static int start_beat(ml_ws *ws, ml_clock *clock, lua_Number every) {
  uint64_t ms = (uint64_t)(every * 1000 + 0.5);
  if (every <= 0)
    return 0;
  if (need_aux(ws) == NULL)
    return -1;
  return aux_start(&ws->aux->beat, clock, beat_fire, ms, ms) != 0 ? -1 : 0;
}

/*
 * req:websocket([{protocols =, max_message =, ping_interval =, deflate
 * =}]) -> the WebSocket, having answered 101.  A request that is not a
 * handshake we take ends the handler with 400 (426 for another
 * version).  In C, not Lua: a thread keeps a CallInfo for every call
 * level it has reached, so a handler that waits in ws:receive costs
 * least when nothing it called went deeper.
 */
static int lib_ws_upgrade(lua_State *L) {
  ml_conn *c = ml_lib_req_conn(L, 1);
  const char *why = NULL, *proto;
  char ext[ML_WS_PMD_RESPONSE];
  ml_ws_pmd pmd;
  up_opts o;
  size_t plen = 0;
  int status;
  ml_req *r;
  ml_ws *ws;
  read_opts(L, &o);
  if (c == NULL)
    return luaL_error(L, "the request is finished");
  r = ml_conn_req(c);
  if (r->responded || r->streaming || ml_conn_upgraded(c) != NULL)
    return luaL_error(L, "the response was already sent");
  if ((status = check_handshake(c, &why)) != 0)
    return refuse(L, status, why);
  memset(&pmd, 0, sizeof pmd);
  ext[0] = '\0';
  if (o.deflate)
    choose_deflate(c, &pmd, ext);
  proto = choose_protocol(L, 3, c, &plen);
  if ((ws = ws_new(&pmd, (size_t)o.max_message, 1)) == NULL ||
      put_101(c, proto, plen, ext) != 0) {
    if (ws != NULL)
      ws_free(ws);
    return luaL_error(L, "not enough memory");
  }
  push_ws(L, ws, proto, plen);
  ws->t = c;
  ml_conn_flush(c);
  if (!ml_conn_closing(c) && ml_conn_out(c)->len == 0)
    ml_buf_free(ml_conn_out(c));
  if (!ml_conn_closing(c) &&
      start_beat(ws, ml_lib_req_gen(L, 1)->clock, o.ping_interval) != 0)
    ml_conn_close(c);             /* no memory for the heartbeat asked */
  if (ml_conn_closing(c))
    ws_detach(ws);                /* gone already: it reads as closed */
  else
    ml_conn_upgrade_to(c, &conn_upgrade, ws);
  return 1;
}

/*
 * The handler of an upgraded request ended (lib_req.c's core.send):
 * 1000, or 1011 when it failed (status 500 and up), then the
 * connection ends.
 */
int ml_lib_ws_finish(lua_State *L, struct ml_conn *c, int status) {
  ml_ws *ws = ml_conn_upgraded(c);
  hold(ws);
  if (ws->state == WS_OPEN)
    start_close(ws, status >= 500 ? ML_WS_INTERNAL : ML_WS_NORMAL, "", 0);
  if (ws->t != NULL)
    io(ws)->end_output(ws->t);
  release(ws);
  ml_conn_responded(c, 101, 0, 1);
  lua_pushboolean(L, 1);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** The client: moonlet.websocket.connect
** =======================================================
*/

/*
 * A client's connection: the handshake's wait, then the WebSocket's
 * transport.  Owned by its ml_wscl, freed with it ('closed').
 */
typedef struct {
  ml_wait w;                    /* connect's wait */
  ml_wscl *cl;
  ml_ws *ws;                    /* after the handshake */
  ml_gen *gen;
  size_t max_message;
  char accept[ML_WS_ACCEPT_LEN + 1];
  int offered_deflate;
  char protocols[];             /* what was offered, "a, b" */
} ws_client;

static int cl_write(void *t, const void *a, size_t alen, const void *b,
                    size_t blen) {
  return ml_wscl_write(((ws_client *)t)->cl, a, alen, b, blen);
}

static size_t cl_pending(void *t) {
  return ml_wscl_pending(((ws_client *)t)->cl);
}

static int cl_want_drain(void *t, size_t low, ml_ws *ws) {
  ML_UNUSED(ws);
  ml_wscl_want_drain(((ws_client *)t)->cl, low);
  return 0;
}

static void cl_reading(void *t, int on) {
  ml_wscl_reading(((ws_client *)t)->cl, on);
}

static void cl_end_output(void *t) {
  ml_wscl_end_output(((ws_client *)t)->cl);
}

static void cl_close(void *t) {
  ml_wscl_close(((ws_client *)t)->cl);
}

static const ws_io client_io = {
  cl_write, cl_pending, cl_want_drain, cl_reading, cl_end_output, cl_close
};

/* The value of a response header, or NULL. */
static const char *head_value(const ml_wscl_head *h, const char *name,
                              size_t *len) {
  const char *p = h->headers;
  int i;
  for (i = 0; i < h->nheaders; i++) {
    size_t nl = strlen(p);
    const char *v = p + nl + 1;
    *len = strlen(v);
    if (ml_strieq(p, nl, name))
      return v;
    p = v + *len + 1;
  }
  return NULL;
}

/* Whether the 101 is the answer to our handshake; fills *pmd. */
static const char *check_answer(ws_client *cl, const ml_wscl_head *h,
                                ml_ws_pmd *pmd, const char **proto,
                                size_t *plen) {
  size_t len;
  const char *v;
  memset(pmd, 0, sizeof *pmd);
  if (h->status != 101)
    return "bad response";
  if ((v = head_value(h, "upgrade", &len)) == NULL ||
      !ml_ws_list_has(v, len, "websocket") ||
      (v = head_value(h, "connection", &len)) == NULL ||
      !ml_ws_list_has(v, len, "upgrade") ||
      (v = head_value(h, "sec-websocket-accept", &len)) == NULL ||
      len != ML_WS_ACCEPT_LEN || memcmp(v, cl->accept, len) != 0)
    return "bad response";
  *proto = head_value(h, "sec-websocket-protocol", plen);
  if (*proto != NULL && !ml_ws_list_has(cl->protocols,
                                        strlen(cl->protocols), *proto))
    return "bad response";
  v = head_value(h, "sec-websocket-extensions", &len);
  if (v != NULL && (!cl->offered_deflate ||
                    ml_ws_pmd_answer(v, len, pmd) != 0))
    return "bad response";
  return NULL;
}

static void cl_ready(ml_wscl *c, const char *err, const ml_wscl_head *h) {
  ws_client *cl = ml_wscl_ud(c);
  ml_co *co = ml_sched_unpark(&cl->w);
  const char *proto = NULL;
  size_t plen = 0;
  ml_ws_pmd pmd;
  if (co == NULL) {             /* cancelled: the socket is closing */
    ml_wscl_close(c);
    return;
  }
  if (err == NULL && (err = check_answer(cl, h, &pmd, &proto, &plen)) ==
      NULL && (cl->ws = ws_new(&pmd, cl->max_message, 0)) == NULL)
    err = "not enough memory";
  if (err != NULL) {
    ml_wscl_close(c);
    lua_pushnil(co->L);
    lua_pushstring(co->L, err);
    ml_sched_resume(co, 2);
    return;
  }
  cl->ws->t = cl;
  push_ws(co->L, cl->ws, proto, plen);
  ml_sched_resume(co, 1);
}

static void cl_read(ml_wscl *c, const char *data, size_t len) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ws_read(cl->ws, data, len);
}

static void cl_end(ml_wscl *c, int status) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ws_end(cl->ws, status);
}

static void cl_drain(ml_wscl *c) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ws_drained(cl->ws);
}

static void cl_closed(ml_wscl *c) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ws_detach(cl->ws);
  free(cl);
}

static const ml_wscl_cbs client_cbs = {
  cl_ready, cl_read, cl_end, cl_drain, cl_closed
};

static int tls_gc(lua_State *L) {
  ml_tls **t = lua_touserdata(L, 1);
  if (*t != NULL)
    ml_tls_free(*t);              /* streams made with it keep theirs */
  *t = NULL;
  return 0;
}

static const char tls_key = 0;

/*
 * The client TLS context for the options table at idx (verify, ca_file,
 * cert, key), made once per set of options and kept in the registry
 * with the state.  NULL with the reason pushed ("tls: ...").
 */
static ml_tls *tls_context(lua_State *L, int idx) {
  ml_tls_opts o;
  ml_tls **t;
  char err[256];
  ml_lib_tls_opts(L, idx, &o);
  o.alpn = "http/1.1";            /* the handshake is an HTTP/1.1 GET */
  lua_pushfstring(L, "%d|%s|%s|%s", o.verify, o.ca_file ? o.ca_file : "",
                  o.cert ? o.cert : "", o.key ? o.key : "");
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &tls_key) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &tls_key);
  }
  lua_pushvalue(L, -2);
  if (lua_rawget(L, -2) == LUA_TUSERDATA)
    return *(ml_tls **)lua_touserdata(L, -1);  /* on the stack, anchored */
  lua_pop(L, 1);
  t = lua_newuserdatauv(L, sizeof *t, 0);
  if ((*t = ml_tls_new(&o, err, sizeof err)) == NULL) {
    lua_pushstring(L, err);
    return NULL;
  }
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, tls_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_pushvalue(L, -3);           /* contexts[key] = t */
  lua_pushvalue(L, -2);
  lua_rawset(L, -4);
  return *t;
}

/* The clock a generation's waits use: virtual in tests that ask. */
static ml_clock *gen_clock(ml_gen *g) {
  return g->clock;
}

/* The handler was cancelled mid-handshake: the socket closes. */
static void connect_cancel(ml_wait *w) {
  ml_wscl_close(((ws_client *)w)->cl);
}

/*
 * core.ws_connect(host, port, head, protocols, timeout, max_message,
 * deflate, tls) (yields) -> a WebSocket, or nil and why.  'head' is the
 * request up to its last header; the key and the end are added here.
 * 'tls', a table of TLS options, makes it wss://.
 */
static int lib_ws_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1), *head, *protos;
  lua_Integer port = luaL_checkinteger(L, 2);
  size_t hlen, plen;
  lua_Number timeout = luaL_checknumber(L, 5);
  lua_Integer max = luaL_checkinteger(L, 6);
  int deflate = lua_toboolean(L, 7);
  char key[ML_WS_KEY_LEN + 1];
  ml_tls *tls = NULL;
  ml_co *co;
  ws_client *cl;
  luaL_Buffer b;
  head = luaL_checklstring(L, 3, &hlen);
  protos = luaL_optlstring(L, 4, "", &plen);
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port out of range");
  luaL_argcheck(L, timeout > 0 && timeout < 1e6, 5, "timeout out of range");
  luaL_argcheck(L, max > 0, 6, "max_message must be positive");
  co = ml_sched_current(L);
  lua_settop(L, 8);
  if (lua_istable(L, 8) && (tls = tls_context(L, 8)) == NULL) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;                     /* nil, "tls: ..." */
  }
  if (ml_ws_new_key(key) != 0)
    return luaL_error(L, "no random bytes for the key");
  luaL_buffinit(L, &b);
  luaL_addlstring(&b, head, hlen);
  luaL_addstring(&b, "Sec-WebSocket-Key: ");
  luaL_addstring(&b, key);
  if (plen > 0) {
    luaL_addstring(&b, "\r\nSec-WebSocket-Protocol: ");
    luaL_addlstring(&b, protos, plen);
  }
  if (deflate) {
    luaL_addstring(&b, "\r\nSec-WebSocket-Extensions: ");
    luaL_addstring(&b, ml_ws_pmd_offer);
  }
  luaL_addstring(&b, "\r\n\r\n");
  luaL_pushresult(&b);
  if ((cl = calloc(1, sizeof *cl + plen + 1)) == NULL)
    return luaL_error(L, "not enough memory");
  memcpy(cl->protocols, protos, plen);
  cl->gen = co->gen;
  cl->max_message = (size_t)max;
  cl->offered_deflate = deflate;
  ml_ws_accept(key, ML_WS_KEY_LEN, cl->accept);
  head = lua_tolstring(L, -1, &hlen);
  cl->cl = ml_wscl_open(co->gen->loop, gen_clock(co->gen), tls, host,
                        (int)port, head, hlen,
                        (uint64_t)(timeout * 1000 + 0.5), &client_cbs, cl);
  if (cl->cl == NULL) {
    free(cl);
    return luaL_error(L, "not enough memory");
  }
  ml_sched_park(co, &cl->w, connect_cancel);
  return ml_sched_yield(L);
}

/* }====================================================== */

static const luaL_Reg ws_methods[] = {
  {"send", ws_send},
  {"receive", ws_receive},
  {"ping", ws_ping},
  {"close", ws_close},
  {NULL, NULL}
};

void ml_lib_ws_register(lua_State *L) {
  luaL_newmetatable(L, WS_MT);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ws_mt_key);
  luaL_newlib(L, ws_methods);
  lua_pushcclosure(L, ws_index, 1);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, ws_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, ws_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pop(L, 1);
  lua_pushcfunction(L, lib_ws_upgrade);
  lua_setfield(L, -2, "ws_upgrade");
  lua_pushcfunction(L, lib_ws_connect);
  lua_setfield(L, -2, "ws_connect");
}
