/*
 * lib_http.c - core.http_request: one outbound exchange from a handler,
 * parked until client.c calls back.  URLs, redirects, bodies and the
 * response object are lua/moonlet/http.lua's.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <lauxlib.h>
#include "net/client.h"
#include "base/clock.h"
#include "vm/lib.h"
#include "base/util.h"

/* A generation's outbound connections: a part of it (gen.h), made with
 * its first exchange, closed with its state.  Exchanges still running
 * then go on; the client frees itself after them. */
typedef struct {
  ml_part part;
  ml_client *client;
} http_pool;

static void pool_close(ml_part *p) {
  ml_client_close(((http_pool *)p)->client);
  free(p);
}

static const ml_part_kind pool_kind = { "http client", NULL, pool_close };

/* g's client, made on first use; NULL when out of memory. */
static ml_client *client_of(ml_gen *g) {
  http_pool *pool = (http_pool *)ml_gen_part(g, &pool_kind);
  if (pool != NULL)
    return pool->client;
  if ((pool = malloc(sizeof *pool)) == NULL)
    return NULL;
  if ((pool->client = ml_client_new(g->loop)) == NULL) {
    free(pool);
    return NULL;
  }
  ml_gen_attach(g, &pool->part, &pool_kind);
  return pool->client;
}

/* The wait, in the exchange's own memory (ml_client_ud): it lives as
 * long as the exchange, so nothing here frees it. */
typedef struct {
  ml_wait w;
  ml_hreq *req;
} http_op;

const char *ml_lib_http_separator(const char *name, size_t len) {
  return len == 6 && strncasecmp(name, "cookie", 6) == 0 ? "; " : ", ";
}

/* A name up to 128 bytes is lower-cased on the C stack. */
void ml_lib_http_header(lua_State *L, const char *n, size_t nlen,
                        const char *v, size_t vlen) {
  char low[128], *name = low;
  luaL_Buffer b;
  size_t i;
  if (nlen > sizeof low)
    name = luaL_buffinitsize(L, &b, nlen);
  for (i = 0; i < nlen; i++)
    name[i] = (n[i] >= 'A' && n[i] <= 'Z') ? (char)(n[i] + 32) : n[i];
  if (name == low)
    lua_pushlstring(L, low, nlen);
  else
    luaL_pushresultsize(&b, nlen);
  lua_pushvalue(L, -1);
  if (lua_rawget(L, -3) == LUA_TSTRING) {    /* a repeat: join */
    lua_pushstring(L, ml_lib_http_separator(n, nlen));
    lua_pushlstring(L, v, vlen);
    lua_concat(L, 3);
  } else {
    lua_pop(L, 1);
    lua_pushlstring(L, v, vlen);
  }
  lua_rawset(L, -3);
}

/*
 * core.http_headers(block) -> the headers table of a response: names
 * lower-cased, repeats joined with ", ", the case-insensitive metatable.
 * 'block' is what core.http_request returned, "name\0value\0" pairs;
 * moonlet.http calls this on the first read of res.headers, so a caller
 * that never looks at them makes none of these strings.
 */
static int http_headers(lua_State *L) {
  size_t len, i, n = 0;
  const char *p = luaL_checklstring(L, 1, &len), *end = p + len;
  for (i = 0; i < len; i++)
    n += p[i] == '\0';
  lua_createtable(L, 0, (int)(n / 2));
  while (p < end) {
    size_t nlen = strlen(p), vlen;
    const char *v = p + nlen + 1;
    if (v >= end)
      break;                     /* a name without its value: not ours */
    vlen = strlen(v);
    ml_lib_http_header(L, p, nlen, v, vlen);
    p = v + vlen + 1;
  }
  luaL_setmetatable(L, ML_HEADERS_MT);
  return 1;
}

/* Resumes the caller with status, the headers' block and the body, or
 * nil and the reason. */
static void http_done(ml_hreq *r, const ml_hres *res, void *ud) {
  http_op *op = ud;
  ml_co *co = ml_sched_unpark(&op->w);
  lua_State *L;
  ML_UNUSED(r);
  if (co == NULL)
    return;
  L = co->L;
  if (res->err != NULL) {
    lua_pushnil(L);
    lua_pushstring(L, res->err);
  } else {
    lua_pushinteger(L, res->status);
    lua_pushlstring(L, res->headers, res->headers_len);
    lua_pushlstring(L, res->body, res->body_len);
  }
  ml_sched_resume(co, 3 - (res->err != NULL));
}

/* The coroutine was cancelled: abandon the exchange and its connection. */
static void http_cancel(ml_wait *w) {
  ml_client_cancel(((http_op *)w)->req);
}

/*
 * An https call's options from the table at i (true: the defaults):
 * verify (default on), ca_file, cert, key, server_name.  Their strings
 * stay in that table, on the caller's stack, while client.c copies what
 * it keeps.
 */
static void tls_options(lua_State *L, int i, ml_client_tls *t) {
  ml_tls_opts o;
  ml_lib_tls_opts(L, i, &o);
  memset(t, 0, sizeof *t);
  t->verify = o.verify;
  t->ca_file = o.ca_file;
  t->cert = o.cert;
  t->key = o.key;
  if (!lua_istable(L, i))
    return;
  lua_getfield(L, i, "server_name");
  t->server_name = lua_tostring(L, -1);
  lua_pop(L, 1);               /* the string stays in the table */
}

/*
 * core.http_request(host, port, request, timeout, head, idempotent,
 * max_body, tls, real_time) -> status, headers, body | nil, err.  'tls' is
 * nil for http, else true or moonlet.http's checked opts.tls table.  The
 * deadline follows the state's clock, virtual under moonlet.testing's
 * virtual time, unless 'real_time' (the test client's own requests).  'request' is the whole
 * request, head and body, as it goes on the wire; 'headers' is a block
 * for core.http_headers.  client.c writes 'request' from the string
 * itself: it stays on this coroutine's stack, below the yield, until the
 * exchange has ended or been cancelled (client.c then needs it no more:
 * what was not sent is closed, never sent again).
 */
static int http_request(lua_State *L) {
  ml_client *client;
  ml_hreq_opts o;
  ml_client_tls tls;
  lua_Number timeout;
  ml_co *co;
  ml_hreq *r;
  http_op *op;
  o.host = luaL_checkstring(L, 1);
  o.port = (int)luaL_checkinteger(L, 2);
  o.data = luaL_checklstring(L, 3, &o.len);
  timeout = luaL_checknumber(L, 4);
  o.head = lua_toboolean(L, 5);
  o.idempotent = lua_toboolean(L, 6);
  o.max_body = (size_t)luaL_optinteger(L, 7, 64 * 1024 * 1024);
  o.tls = NULL;
  if (!lua_isnoneornil(L, 8)) {
    tls_options(L, 8, &tls);
    o.tls = &tls;
  }
  luaL_argcheck(L, o.port > 0 && o.port < 65536, 2, "port out of range");
  luaL_argcheck(L, timeout >= 0 && timeout < 1e9, 4, "timeout out of range");
  co = ml_sched_current(L);
  if ((client = client_of(co->gen)) == NULL)
    return luaL_error(L, "not enough memory");
  o.timeout_ms = (uint64_t)(timeout * 1000 + 0.5);
  o.ud_size = sizeof *op;
  o.clock = co->gen->clock;     /* the server's, or a virtual one */
  if (lua_toboolean(L, 9) && ml_clock_real(o.clock) != NULL)
    o.clock = ml_clock_real(o.clock);
  if ((r = ml_client_request(client, &o, http_done, NULL)) == NULL)
    return luaL_error(L, "not enough memory");
  op = ml_client_ud(r);
  op->req = r;
  ml_sched_park(co, &op->w, http_cancel);
  return ml_sched_yield(L);
}

/* core.http_connects(): connections the pool has opened, for tests. */
static int http_connects(lua_State *L) {
  http_pool *pool = (http_pool *)ml_gen_part(ML_GEN(L), &pool_kind);
  lua_pushinteger(L, pool != NULL
                       ? (lua_Integer)ml_client_connects(pool->client) : 0);
  return 1;
}

void ml_lib_http_register(lua_State *L) {
  lua_pushcfunction(L, http_request);
  lua_setfield(L, -2, "http_request");
  lua_pushcfunction(L, http_connects);
  lua_setfield(L, -2, "http_connects");
  lua_pushcfunction(L, http_headers);
  lua_setfield(L, -2, "http_headers");
}
