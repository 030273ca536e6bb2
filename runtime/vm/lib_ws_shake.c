/*
 * lib_ws_shake.c - req:websocket(): the server's side of the opening
 * handshake.  It checks the request, picks the subprotocol and
 * permessage-deflate, answers 101 and hands the connection to a new
 * WebSocket (lib_ws.c), which does the rest.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/conn.h"
#include "net/ws.h"
#include "net/ws_deflate.h"
#include "net/ws_shake.h"
#include "vm/lib.h"
#include "vm/lib_ws.h"

#define MAX_MESSAGE (1024 * 1024) /* req:websocket's max_message default */

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

/*
 * req:websocket([{protocols =, max_message =, ping_interval =, deflate
 * =}]) -> the WebSocket, having answered 101.  A request that is not a
 * handshake we take ends the handler with 400 (426 for another
 * version).  In C, not Lua: a thread keeps a CallInfo for every call
 * level it has reached, so a handler that waits in ws:receive costs
 * least when nothing it called went deeper.
 */
int ml_lib_ws_upgrade(lua_State *L) {
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
  if ((ws = ml_lib_ws_new(&pmd, (size_t)o.max_message, 1)) == NULL ||
      put_101(c, proto, plen, ext) != 0) {
    if (ws != NULL)
      ml_lib_ws_free(ws);
    return luaL_error(L, "not enough memory");
  }
  ml_lib_ws_push(L, ws, proto, plen);
  ws->t = c;
  ml_conn_flush(c);
  if (!ml_conn_closing(c) && ml_conn_out(c)->len == 0)
    ml_buf_free(ml_conn_out(c));
  if (!ml_conn_closing(c) &&
      ml_lib_ws_start_beat(ws, ml_lib_req_gen(L, 1)->clock,
                           o.ping_interval) != 0)
    ml_conn_close(c);             /* no memory for the heartbeat asked */
  if (ml_conn_closing(c))
    ml_lib_ws_detach(ws);                /* gone already: it reads as closed */
  else
    ml_conn_upgrade_to(c, &ml_lib_ws_conn_upgrade, ws);
  return 1;
}

