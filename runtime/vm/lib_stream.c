/*
 * lib_stream.c - streamed responses, req:stream and req:sse's C side:
 * core.stream_start sends the head at once, core.stream_write the body
 * piece by piece (chunked on HTTP/1.1), waiting while a slow reader
 * leaves too much queued; core.send ends the stream (ml_lib_stream_end).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/conn.h"
#include "base/http.h"
#include "vm/lib.h"
#include "vm/lib_req.h"
#include "vm/lib_stream.h"

#define STREAM_HIGH (256 * 1024)   /* a writer waits above this ... */
#define STREAM_LOW (64 * 1024)     /* ... until the output drains to this */

/* A writer waiting for the output to drain: one wait like any other. */
typedef struct {
  ml_wait w;
  ml_drain drain;
} stream_wait;

/* The handler returned (or failed): the last chunk, or an abort. */
int ml_lib_stream_end(lua_State *L, ml_conn *c, int status) {
  ml_req *r = ml_conn_req(c);
  if (status >= 500) {              /* failed mid-body: the client must */
    ml_conn_close(c);               /* not take it for a whole one */
    lua_pushboolean(L, 1);
    return 1;
  }
  if (r->chunked && r->method != HTTP_HEAD)
    ML_BUF_LIT(ml_conn_out(c), "0\r\n\r\n");
  ml_conn_stream_idle(c, 0);
  ml_conn_responded(c, r->status, r->bytes,
                    !r->chunked || !ml_conn_keep_alive(c));
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * core.stream_start(req, status, headers, content_type, ping_seconds):
 * sends the head at once.  HTTP/1.1 gets a chunked body; HTTP/1.0 one
 * that ends when the connection closes.  With ping_seconds, an idle
 * stream gets a comment line that often (server-sent events).
 */
static int req_stream_start(lua_State *L) {
  ml_conn *c = ml_lib_req_get_conn(L);
  lua_Integer status = luaL_checkinteger(L, 2);
  const char *ctype = luaL_optstring(L, 4, "text/html; charset=utf-8"), *err;
  lua_Number ping = luaL_optnumber(L, 5, 0);
  head_flags f = { 0, 0 };
  ml_req *r;
  ml_buf *o;
  size_t mark;
  luaL_argcheck(L, status >= 200 && status <= 999 && status != 204 &&
                status != 304, 2, "status must be from 200 to 999, "
                "with a body");
  if (!lua_isnoneornil(L, 3))
    luaL_checktype(L, 3, LUA_TTABLE);
  luaL_argcheck(L, ping >= 0 && ping < 1e6, 5, "interval out of range");
  if (c == NULL || ml_conn_closing(c)) {
    return ml_lib_fail(L, "closed");
  }
  r = ml_conn_req(c);
  if (r->responded || r->streaming)
    return luaL_error(L, "the response was already sent");
  o = ml_conn_out(c);
  mark = o->len;
  f.close = !ml_conn_keep_alive(c) || r->minor == 0;
  ml_http_status_line(o, (int)status);
  lua_rawgeti(L, lua_upvalueindex(1), MT_NAMES);
  if (!lua_isnoneornil(L, 3) &&
      (err = ml_lib_req_put_headers(L, 3, lua_gettop(L), o, &f)) != NULL) {
    o->len = mark;
    return luaL_error(L, "%s", err);
  }
  if (!f.has_ctype) {
    ML_BUF_LIT(o, "Content-Type: ");
    ml_buf_append(o, ctype, strlen(ctype));
    ML_BUF_LIT(o, "\r\n");
  }
  r->chunked = !f.close;
  if (r->chunked && r->method != HTTP_HEAD)
    ML_BUF_LIT(o, "Transfer-Encoding: chunked\r\n");
  if (f.close)
    ML_BUF_LIT(o, "Connection: close\r\n");
  ML_BUF_LIT(o, "\r\n");
  r->streaming = 1;
  r->status = (int)status;
  r->bytes = 0;
  ml_conn_flush(c);
  if (ping > 0 && !ml_conn_closing(c))
    ml_conn_stream_idle(c, (uint64_t)(ping * 1000 + 0.5));
  lua_pushboolean(L, 1);
  return 1;
}

/*
 * The output drained (0): the write returns true, on the loop's next
 * turn.  Or the connection closed (UV_ECANCELED) under a writer that is
 * not the coroutine serving the request (that one was cancelled, which
 * stopped its wait): the write returns nil, "closed", also next turn.
 */
static void stream_drained(ml_drain *d, int status) {
  stream_wait *op = container_of(d, stream_wait, drain);
  ml_co *co = ml_sched_unpark(&op->w);
  free(op);
  if (co == NULL)
    return;
  if (status == 0) {
    lua_pushboolean(co->L, 1);
    ml_sched_resume_soon(co, 1);
  } else {
    lua_pushnil(co->L);
    lua_pushliteral(co->L, "closed");
    ml_sched_resume_soon(co, 2);
  }
}

/* Cancelled (its client left, or a timeout): stop waiting; no resume. */
static void stream_wait_cancel(ml_wait *w) {
  stream_wait *op = (stream_wait *)w;
  ml_conn_drain_stop(&op->drain);
  free(op);
}

/*
 * core.stream_write(req, data) -> true, or nil and "closed" once the
 * client has gone.  Waits (yields) while more than STREAM_HIGH bytes are
 * queued, so a slow reader never makes the server buffer without bound.
 */
static int req_stream_write(lua_State *L) {
  ml_conn *c = ml_lib_req_get_conn(L);
  size_t len;
  const char *data = luaL_checklstring(L, 2, &len);
  ml_req *r;
  ml_buf *o;
  stream_wait *op;
  ml_co *co;
  char size[24];
  if (c == NULL || ml_conn_closing(c)) {
    return ml_lib_fail(L, "closed");
  }
  r = ml_conn_req(c);
  if (!r->streaming || r->responded)
    return luaL_error(L, "the stream is not open (req:stream() starts it; "
                         "it ends when the handler returns)");
  lua_pushboolean(L, 1);
  if (len == 0 || r->method == HTTP_HEAD)
    return 1;
  o = ml_conn_out(c);
  if (r->chunked) {
    int n = snprintf(size, sizeof size, "%zx\r\n", len);
    ml_buf_append(o, size, (size_t)n);
  }
  if (ml_buf_append(o, data, len) != 0)
    return luaL_error(L, "not enough memory");
  if (r->chunked)
    ML_BUF_LIT(o, "\r\n");
  r->bytes += len;
  ml_conn_flush(c);
  if (ml_conn_closing(c)) {
    return ml_lib_fail(L, "closed");
  }
  if (r->stream_ping_ms > 0)
    ml_conn_stream_idle(c, r->stream_ping_ms);
  if (ml_conn_pending(c) <= STREAM_HIGH)
    return 1;
  co = ml_sched_current(L);
  if ((op = calloc(1, sizeof *op)) == NULL)
    return luaL_error(L, "not enough memory");
  ml_conn_drain_wait(c, &op->drain, STREAM_LOW, stream_drained);
  ml_sched_park(co, &op->w, stream_wait_cancel);
  return ml_sched_yield(L);
}

static const luaL_Reg stream_core[] = {
  {"stream_start", req_stream_start},
  {"stream_write", req_stream_write},
  {NULL, NULL}
};

/* Adds the stream functions to the table on top; like lib_req.c's, they
 * get the request metatable (registered by ml_lib_req_register) as
 * upvalue 1. */
void ml_lib_stream_register(lua_State *L) {
  luaL_getmetatable(L, REQ_MT);
  luaL_setfuncs(L, stream_core, 1);   /* pops the metatable */
}
