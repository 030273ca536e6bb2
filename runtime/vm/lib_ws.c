/*
 * lib_ws.c - WebSocket for Lua (moonlet.WebSocket): whole messages both
 * ways once a handshake (lib_ws_shake.c, lib_ws_client.c) made one.
 * Pings are answered here, heartbeats sent, the closing handshake made;
 * receive, send (under back-pressure) and close are park/resume/cancel
 * waits with their deadlines on the state's clock.  Frames are
 * net/ws.c's; the bytes travel through a transport (the server
 * connection, net/conn.c, or a client's) that owns the WebSocket and
 * lets go of it with its 'detach' hook.
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
#include "net/ws_shake.h"
#include "vm/lib.h"
#include "vm/lib_ws.h"

#define WS_MT "moonlet.WebSocket"
#define SEND_HIGH (256 * 1024)   /* a sender waits above this ... */
#define SEND_LOW (64 * 1024)     /* ... until the output drains to this */
#define OUT_MAX (1024 * 1024)    /* pongs past this: stop reading */
#define INBOX_MAX 16             /* messages read ahead of receive */
#define CLOSE_WAIT_MS 5000       /* ws:close waits this long for a reply */

/* A message read ahead of ws:receive. */
struct ws_msg {
  struct ws_msg *next;
  ml_buf data;
  int op;
};

struct send_op {
  ml_wait w;
  ml_ws *ws;
  struct send_op *next;
};

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
struct ws_aux {
  ml_ws *ws;
  close_op *closer;             /* ws:close waiting for the reply */
  ml_ctimer beat;               /* ping_interval */
  ml_ctimer recv_timer;         /* receive's timeout */
  ml_drain conn_drain;          /* the upgraded connection's drain wait */
};

/* permessage-deflate's state: made when the handshake agrees on it. */
struct ws_pmd {
  ml_ws_pmd agreed;
  ml_ws_inflater inflater;
};

static const ws_io conn_io;     /* the server's transport, below */

/* The transport's operations: a server's connection, or a client's. */
static const ws_io *io(const ml_ws *ws) {
  return ws->server ? &conn_io : &ml_lib_ws_client_io;
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
    ml_lib_ws_free(ws);
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

void ml_lib_ws_free(ml_ws *ws) {
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

/* Asks the transport for ml_lib_ws_drained once the output is down to
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
void ml_lib_ws_read(ml_ws *ws, const char *d, size_t n) {
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
void ml_lib_ws_end(ml_ws *ws, int status) {
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
void ml_lib_ws_drained(ml_ws *ws) {
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
void ml_lib_ws_detach(ml_ws *ws) {
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
    ml_lib_ws_drained(container_of(d, ws_aux, conn_drain)->ws);
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
  ml_lib_ws_read(ud, data, len);
}

static void up_end(void *ud, int status) {
  ml_lib_ws_end(ud, status);
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
  ml_lib_ws_detach(ws);
}

const ml_conn_upgrade ml_lib_ws_conn_upgrade = {
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
void ml_lib_ws_push(lua_State *L, ml_ws *ws, const char *proto,
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
** Made by the handshakes, ended with the handler
** =======================================================
*/

/* A new WebSocket; NULL when out of memory. */
ml_ws *ml_lib_ws_new(const ml_ws_pmd *pmd, size_t max_message,
                     int server) {
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

/* The 101 is out: ping_interval's heartbeat; 0, or -1 (out of memory). */
int ml_lib_ws_start_beat(ml_ws *ws, ml_clock *clock, lua_Number every) {
  uint64_t ms = (uint64_t)(every * 1000 + 0.5);
  if (every <= 0)
    return 0;
  if (need_aux(ws) == NULL)
    return -1;
  return aux_start(&ws->aux->beat, clock, beat_fire, ms, ms) != 0 ? -1 : 0;
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
  lua_pushcfunction(L, ml_lib_ws_upgrade);
  lua_setfield(L, -2, "ws_upgrade");
  lua_pushcfunction(L, ml_lib_ws_connect);
  lua_setfield(L, -2, "ws_connect");
}
