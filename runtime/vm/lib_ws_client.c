/*
 * lib_ws_client.c - moonlet.websocket.connect: the client's opening
 * handshake (over TLS for wss://), then the client connection as the
 * WebSocket's transport.  Frames, messages and closing are lib_ws.c's;
 * the socket is net/ws_client.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/ws.h"
#include "net/ws_deflate.h"
#include "net/ws_client.h"
#include "net/ws_shake.h"
#include "vm/lib.h"
#include "vm/lib_ws.h"

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

const ws_io ml_lib_ws_client_io = {
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
      NULL && (cl->ws = ml_lib_ws_new(&pmd, cl->max_message, 0)) == NULL)
    err = "not enough memory";
  if (err != NULL) {
    ml_wscl_close(c);
    lua_pushnil(co->L);
    lua_pushstring(co->L, err);
    ml_sched_resume(co, 2);
    return;
  }
  cl->ws->t = cl;
  ml_lib_ws_push(co->L, cl->ws, proto, plen);
  ml_sched_resume(co, 1);
}

static void cl_read(ml_wscl *c, const char *data, size_t len) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ml_lib_ws_read(cl->ws, data, len);
}

static void cl_end(ml_wscl *c, int status) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ml_lib_ws_end(cl->ws, status);
}

static void cl_drain(ml_wscl *c) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ml_lib_ws_drained(cl->ws);
}

static void cl_closed(ml_wscl *c) {
  ws_client *cl = ml_wscl_ud(c);
  if (cl->ws != NULL)
    ml_lib_ws_detach(cl->ws);
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
int ml_lib_ws_connect(lua_State *L) {
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

