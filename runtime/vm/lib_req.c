/*
 * lib_req.c - the request object handlers receive, and core.send, which
 * writes a response head and body in one buffer.  Fields are read from C
 * on first use and cached; what is cheaper to write in Lua (query, form,
 * cookies, json) comes from the tables moonlet.request registers.
 * Streamed responses (req:stream) are lib_stream.c's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/conn.h"
#include "net/realip.h"
#include "base/http.h"
#include "base/log.h"
#include "vm/lib.h"
#include "vm/lib_json.h"
#include "vm/lib_req.h"
#include "vm/lib_stream.h"

/*
 * A request object's userdata: the coroutine serving its request, whose
 * 'data' is the connection; NULL once the request is finished (its
 * handler ended, or its client left), when methods answer so.  The
 * connection's request points back to it ('data') while it is served.
 * One pointer: the object stays 64 bytes of the Lua state's.
 */
typedef struct {
  ml_co *co;
} req_ud;

static ml_conn *ud_conn(const req_ud *ud) {
  return ud->co != NULL ? ud->co->data : NULL;
}

/*
 * The connection behind a request object, or NULL once it is finished.
 * Every function here has the request metatable as upvalue 1, so the
 * check is a pointer comparison; luaL_checkudata, with its registry
 * lookup by name, only words the error.
 */
ml_conn *ml_lib_req_get_conn(lua_State *L) {
  req_ud *ud = lua_touserdata(L, 1);
  int ok = ud != NULL && lua_getmetatable(L, 1);
  if (ok) {
    ok = lua_rawequal(L, -1, lua_upvalueindex(1));
    lua_pop(L, 1);
  }
  if (!ok)
    ud = luaL_checkudata(L, 1, REQ_MT);
  return ud_conn(ud);
}

ml_conn *ml_lib_req_conn(lua_State *L, int idx) {
  return ud_conn(luaL_checkudata(L, idx, REQ_MT));
}

ml_gen *ml_lib_req_gen(lua_State *L, int idx) {
  req_ud *ud = luaL_checkudata(L, idx, REQ_MT);
  return ud->co != NULL ? ud->co->gen : NULL;
}

static ml_conn *need_conn(lua_State *L) {
  ml_conn *c = ml_lib_req_get_conn(L);
  if (c == NULL)
    luaL_error(L, "the request is finished (its response was sent or "
                  "its client left)");
  return c;
}

/*
** {======================================================
** The request object and dispatch's arguments
** =======================================================
*/

/*
 * Pushes a piece of the routed path.  When the path held %2F, parse.c
 * kept %2F and %25 encoded so that no segment split on them: turn them
 * back into '/' and '%'.
 */
static void push_text(lua_State *L, ml_conn *c, const char *s, size_t n) {
  luaL_Buffer b;
  size_t i;
  if (!ml_conn_req(c)->enc_slash) {
    lua_pushlstring(L, s, n);
    return;
  }
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    if (s[i] == '%' && i + 2 < n) {   /* only %2F and %25 are left */
      luaL_addchar(&b, s[i + 2] == 'F' ? '/' : '%');
      i += 2;
    } else {
      luaL_addchar(&b, s[i]);
    }
  }
  luaL_pushresult(&b);
}

/* A route parameter's converted value. */
static void push_param(lua_State *L, ml_conn *c, const ml_param *p) {
  if (p->conv == ML_CONV_INT)
    lua_pushinteger(L, (lua_Integer)p->i);
  else if (p->conv == ML_CONV_FLOAT)
    lua_pushnumber(L, p->d);
  else
    push_text(L, c, p->s, p->len);
}

/* Pushes dispatch's arguments after the request: the route id and its
 * converted values, or 0, a status and its extra header value. */
static int push_route(lua_State *L, ml_conn *c, const ml_match *m) {
  char allow[256];
  int i;
  switch (m->kind) {
  case ML_MATCH_FOUND:
    lua_pushinteger(L, m->route);
    for (i = 0; i < m->nparams; i++)
      push_param(L, c, &m->params[i]);
    return 1 + m->nparams;
  case ML_MATCH_REDIRECT_SLASH: {   /* the URL as sent, with a '/' */
    size_t n, p = 0;
    const char *u = ml_conn_url(c, &n);
    while (p < n && u[p] != '?' && u[p] != '#')
      p++;
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 308);
    lua_pushlstring(L, u, p);
    lua_pushliteral(L, "/");
    lua_pushlstring(L, u + p, n - p);
    lua_concat(L, 3);
    return 3;
  }
  case ML_MATCH_BAD_METHOD:
  case ML_MATCH_OPTIONS:
    lua_pushinteger(L, 0);
    lua_pushinteger(L, m->kind == ML_MATCH_OPTIONS ? 200 : 405);
    lua_pushlstring(L, allow, ml_router_format_allow(m->allow, allow,
                                                     sizeof allow));
    return 3;
  default:
    lua_pushinteger(L, 0);
    lua_pushinteger(L, 404);
    return 2;
  }
}

static const char req_mt_key = 0;   /* the metatable, by address */

/* Pushes a new request object for c's request, served by co (whose
 * 'data' is c), then dispatch's route arguments for the match m; returns
 * how many values. */
static int push_request(lua_State *L, ml_conn *c, ml_co *co,
                        const ml_match *m) {
  req_ud *ud = lua_newuserdatauv(L, sizeof *ud, 1);
  ud->co = co;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &req_mt_key);
  lua_setmetatable(L, -2);
  ml_conn_req(c)->data = ud;
  return 1 + push_route(L, c, m);
}

/* The request is over for Lua: its object answers "finished". */
static void detach(ml_conn *c) {
  ml_req *r = ml_conn_req(c);
  req_ud *ud = r->data;
  r->data = NULL;
  ud->co = NULL;
}

/* The coroutine serving the request returned, raised or was cancelled;
 * after an abort its connection is no longer ours to tell. */
static void request_done(ml_co *co, int how) {
  ml_conn *c = co->data;
  ML_UNUSED(how);
  if (c == NULL)
    return;
  detach(c);
  ml_conn_served(c);
}

/* Appends s (n bytes) to buf (size bytes), NUL-terminated: signal-safe. */
static size_t put(char *buf, size_t size, size_t at, const char *s,
                  size_t n) {
  if (n > size - 1 - at)
    n = size - 1 - at;
  memcpy(buf + at, s, n);
  buf[at + n] = '\0';
  return at + n;
}

/* "GET /x": what a request's coroutine is busy with, for the watchdog
 * (async-signal-safe: it runs in a signal handler). */
static void describe_request(const ml_co *co, char *buf, size_t size) {
  ml_conn *c = co->data;
  const char *m, *url;
  size_t n = 0, len;
  buf[0] = '\0';
  if (c == NULL || ml_conn_req(c) == NULL)
    return;
  m = llhttp_method_name((llhttp_method_t)ml_conn_req(c)->method);
  url = ml_conn_url(c, &len);
  n = put(buf, size, n, m, strlen(m));
  n = put(buf, size, n, " ", 1);
  put(buf, size, n, url, len);
}

/* How the error log names a request whose handler failed; after an
 * abort its connection is gone. */
static void name_request(const ml_co *co, char *buf, size_t size) {
  if (co->data != NULL)
    ml_conn_describe(co->data, buf, size);
  else
    snprintf(buf, size, "a request");
}

static const ml_job request_job = {
  .what = "request", .done = request_done, .describe = describe_request,
  .name = name_request, .request = 1
};

/*
 * The match lives on the stack: req.params, if ever read, matches again.
 * The coroutine runs at once, and may have ended when this returns.
 */
int ml_lib_req_serve(ml_gen *g, ml_conn *c) {
  ml_req *r = ml_conn_req(c);
  const char *path;
  size_t len;
  ml_match m;
  ml_co *co;
  int n;
  path = ml_conn_path(c, &len);
  if (r->url_len == 1 && r->text[r->url_off] == '*')
    ml_router_match_server(g->router, &m);  /* OPTIONS *, parse.c saw */
  else
    ml_router_match(g->router, r->method, path, len, &m);
  if ((co = ml_sched_acquire(g, &request_job, c)) == NULL)
    return UV_ENOMEM;
  lua_rawgeti(co->L, LUA_REGISTRYINDEX, g->dispatch_ref);
  n = push_request(co->L, c, co, &m);
  ml_sched_resume(co, n);
  return 0;
}

void ml_lib_req_abort(ml_conn *c) {
  req_ud *ud = ml_conn_req(c)->data;
  ml_co *co;
  if (ud == NULL)
    return;
  co = ud->co;
  detach(c);
  co->data = NULL;                /* request_done: nothing to tell */
  ml_log(MOONLET_LOG_DEBUG, "client gone: cancelled its request");
  ml_sched_cancel(co);
}

/* }====================================================== */
/* The request's cache table (user value 1), made on first use. */
static void push_cache(lua_State *L) {
  if (lua_getiuservalue(L, 1, 1) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setiuservalue(L, 1, 1);
  }
}

/* Caches the value on top under key k and leaves it on top. */
static int cache(lua_State *L, const char *k) {
  push_cache(L);
  lua_pushvalue(L, -2);
  lua_setfield(L, -2, k);
  lua_pop(L, 1);
  return 1;
}

/* The path part of the URL as received, and the query after '?'. */
static void split_url(ml_conn *c, const char **path, size_t *plen,
                      const char **query, size_t *qlen) {
  size_t n, i;
  const char *u = ml_conn_url(c, &n);
  for (i = 0; i < n && u[i] != '?' && u[i] != '#'; i++)
    ;
  *path = u;
  *plen = i;
  *query = u + i;
  *qlen = 0;
  if (i < n && u[i] == '?') {
    size_t j;
    for (j = i + 1; j < n && u[j] != '#'; j++)
      ;
    *query = u + i + 1;
    *qlen = j - i - 1;
  }
}

/* req.headers: lower-cased names, repeats joined (ml_lib_http_header). */
static int push_headers(lua_State *L, ml_conn *c) {
  ml_req *r = ml_conn_req(c);
  int i;
  lua_createtable(L, 0, r->nhdrs);
  for (i = 0; i < r->nhdrs; i++) {
    size_t nlen, vlen;
    const char *n = ml_conn_header_name(c, i, &nlen);
    const char *v = ml_conn_header_value(c, i, &vlen);
    ml_lib_http_header(L, n, nlen, v, vlen);
  }
  luaL_setmetatable(L, ML_HEADERS_MT);
  return 1;
}

/* req.params: the route's converted values by name.  Dispatch got them
 * as arguments; the match is not kept, so it is made again here. */
static int push_params(lua_State *L, ml_conn *c) {
  ml_req *r = ml_conn_req(c);
  const char *path;
  size_t len;
  ml_match m;
  int i;
  path = ml_conn_path(c, &len);
  if (ml_router_match(ML_GEN(L)->router, r->method, path, len, &m) !=
      ML_MATCH_FOUND) {
    lua_newtable(L);
    return 1;
  }
  lua_createtable(L, 0, m.nparams);
  for (i = 0; i < m.nparams; i++) {
    push_param(L, c, &m.params[i]);
    lua_setfield(L, -2, m.params[i].name);
  }
  return 1;
}

/* req.tls: what the TLS session negotiated, or nil on plain TCP. */
static void push_tls(lua_State *L, ml_conn *c) {
  ml_stream_tls_info t;
  if (!ml_conn_tls(c, &t)) {
    lua_pushnil(L);
    return;
  }
  lua_createtable(L, 0, 4);
  lua_pushstring(L, t.version);
  lua_setfield(L, -2, "version");
  lua_pushstring(L, t.cipher);
  lua_setfield(L, -2, "cipher");
  lua_pushstring(L, t.sni);          /* nil when none was sent */
  lua_setfield(L, -2, "sni");
  if (t.alpn != NULL)
    lua_pushlstring(L, t.alpn, t.alpn_len);
  else
    lua_pushnil(L);
  lua_setfield(L, -2, "alpn");
}

/* The fields answered from C; 0 when k is not one of them. */
static int core_field(lua_State *L, const char *k, size_t klen) {
  ml_conn *c;
  const char *p, *q;
  size_t plen, qlen;
  char buf[64];
  ml_req *r;
#define IS(lit) (klen == sizeof(lit) - 1 && memcmp(k, lit, klen) == 0)
  if (!(IS("method") || IS("path") || IS("raw_path") ||
        IS("query_string") || IS("version") || IS("remote_addr") ||
        IS("id") || IS("scheme") || IS("tls") ||
        IS("body") || IS("headers") || IS("params") || IS("ctx")))
    return 0;
  if (IS("ctx")) {
    lua_newtable(L);
    return cache(L, "ctx");
  }
  c = need_conn(L);
  r = ml_conn_req(c);
  if (IS("method")) {
    lua_pushstring(L, llhttp_method_name((llhttp_method_t)r->method));
  } else if (IS("path")) {
    p = ml_conn_path(c, &plen);
    push_text(L, c, p, plen);
  } else if (IS("raw_path") || IS("query_string")) {
    split_url(c, &p, &plen, &q, &qlen);
    if (IS("raw_path"))
      lua_pushlstring(L, p, plen);
    else
      lua_pushlstring(L, q, qlen);
  } else if (IS("version")) {
    lua_pushstring(L, r->minor == 0 ? "1.0" : "1.1");
  } else if (IS("remote_addr") || IS("scheme")) {
    int https;
    ml_realip(c, buf, sizeof buf, &https);   /* proxies: realip.c */
    if (IS("scheme"))
      lua_pushstring(L, https ? "https" : "http");
    else
      lua_pushstring(L, buf);
  } else if (IS("id")) {              /* as the logs write it */
    ml_log_request_id(r->id, buf);
    lua_pushstring(L, buf);
  } else if (IS("tls")) {
    push_tls(L, c);
    return cache(L, "tls");
  } else if (IS("body")) {
    size_t blen;
    const char *body = ml_conn_body(c, &blen);
    lua_pushlstring(L, body, blen);
    return cache(L, "body");
  } else if (IS("headers")) {
    push_headers(L, c);
    return cache(L, "headers");
  } else {
    push_params(L, c);
    return cache(L, "params");
  }
#undef IS
  return 1;
}

/*
 * req.key: a cached or user-set value, a field from C, a method, or a
 * lazy field computed by moonlet.request (and cached).
 */
static int req_index(lua_State *L) {
  size_t klen;
  const char *k;
  if (lua_getiuservalue(L, 1, 1) == LUA_TTABLE) {
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL)
      return 1;
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  if ((k = lua_tolstring(L, 2, &klen)) == NULL || lua_type(L, 2) !=
      LUA_TSTRING)
    return 0;
  if (core_field(L, k, klen))
    return 1;
  lua_rawgeti(L, lua_upvalueindex(1), MT_METHODS);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) != LUA_TNIL)
    return 1;
  lua_rawgeti(L, lua_upvalueindex(1), MT_LAZY);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) == LUA_TNIL)
    return 1;                          /* no such field: nil */
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  return cache(L, k);
}

/* req.key = value: kept with the request (fields of the app's own). */
static int req_newindex(lua_State *L) {
  push_cache(L);
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3);
  return 0;
}

/* req:header(name): case-insensitive, repeats joined with ", ". */
static int req_header(lua_State *L) {
  ml_conn *c = need_conn(L);
  ml_req *r = ml_conn_req(c);
  size_t len, nlen, vlen;
  const char *name = luaL_checklstring(L, 2, &len);
  int i, found = 0;
  for (i = 0; i < r->nhdrs; i++) {
    const char *n = ml_conn_header_name(c, i, &nlen), *v;
    if (nlen != len || strncasecmp(n, name, len) != 0)
      continue;
    v = ml_conn_header_value(c, i, &vlen);
    if (found++) {
      lua_pushstring(L, ml_lib_http_separator(n, nlen));
      lua_pushlstring(L, v, vlen);
      lua_concat(L, 3);
    } else {
      lua_pushlstring(L, v, vlen);
    }
  }
  if (!found)
    lua_pushnil(L);
  return 1;
}

static int req_tostring(lua_State *L) {
  ml_conn *c = ml_lib_req_get_conn(L);
  size_t n;
  const char *u;
  if (c == NULL) {
    lua_pushliteral(L, "moonlet.Request (finished)");
    return 1;
  }
  u = ml_conn_url(c, &n);
  lua_pushfstring(L, "moonlet.Request: %s ",
                  llhttp_method_name((llhttp_method_t)ml_conn_req(c)->method));
  lua_pushlstring(L, u, n);
  lua_concat(L, 2);
  return 1;
}

/*
** {======================================================
** core.send: the response head and body in one buffer
** =======================================================
*/

/* The header names core.send looks at, told apart by their length
 * first: one comparison for most names. */
enum { H_OTHER, H_DROP, H_CONNECTION, H_CTYPE };

static int header_kind(const char *n, size_t nlen) {
  switch (nlen) {
  case 4:
    return ml_strieq(n, nlen, "date") ? H_DROP : H_OTHER;
  case 10:
    return ml_strieq(n, nlen, "connection") ? H_CONNECTION : H_OTHER;
  case 12:
    return ml_strieq(n, nlen, "content-type") ? H_CTYPE : H_OTHER;
  case 14:
    return ml_strieq(n, nlen, "content-length") ? H_DROP : H_OTHER;
  case 17:
    return ml_strieq(n, nlen, "transfer-encoding") ? H_DROP : H_OTHER;
  default:
    return H_OTHER;
  }
}

#define NAMES_MAX 256            /* header names the cache anchors */
#define NAME_SLOTS 32            /* ... and finds by address */

/*
 * The kinds of the header names handlers have sent, a userdata of the
 * request metatable's (one per Lua state).  Names a handler sends are
 * few and the same again and again, mostly constants of its code, so a
 * name is known by the address of its Lua string's bytes: no hashing,
 * no compare.  That is sound because every name in 'name' is anchored
 * in the user value's table (bounded by NAMES_MAX): a string alive there
 * is the only string at its address.
 */
typedef struct {
  const char *name[NAME_SLOTS];
  signed char kind[NAME_SLOTS];
  int anchored;                  /* names in the user value's table */
} name_cache;

static size_t name_slot(const char *n) {
  uintptr_t a = (uintptr_t)n;
  return (size_t)((a >> 4 ^ a >> 9) & (NAME_SLOTS - 1));
}

/*
 * What the header name at 'key' (n, nlen) is: a kind, or -1 when it is
 * not a valid name.  'names' is the cache's index.
 */
static int name_kind(lua_State *L, int names, name_cache *nc, int key,
                     const char *n, size_t nlen) {
  size_t slot = name_slot(n);
  int kind, known;
  if (nc->name[slot] == n)
    return nc->kind[slot];
  kind = ml_http_name_ok(n, nlen) ? header_kind(n, nlen) : -1;
  lua_getiuservalue(L, names, 1);
  lua_pushvalue(L, key);
  known = lua_rawget(L, -2) != LUA_TNIL;
  lua_pop(L, 1);
  if (!known && nc->anchored < NAMES_MAX) {
    lua_pushvalue(L, key);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    nc->anchored++;
    known = 1;
  }
  lua_pop(L, 1);
  if (known) {
    nc->name[slot] = n;
    nc->kind[slot] = (signed char)kind;
  }
  return kind;
}

/*
 * Appends one header line of the given kind, or returns a message saying
 * why it cannot be sent.  Framing headers are ours: Content-Length,
 * Transfer-Encoding and Date are dropped, "Connection: close" closes
 * after the response.
 */
static const char *put_header(ml_buf *o, int kind, const char *n,
                              size_t nlen, const char *v, size_t vlen,
                              head_flags *f) {
  char *p;
  if (kind < 0)
    return "invalid header name";
  if (!ml_http_value_ok(v, vlen))
    return "header value contains CR, LF or NUL";
  switch (kind) {
  case H_DROP:
    return NULL;
  case H_CONNECTION:
    if (ml_strieq(v, vlen, "close"))
      f->close = 1;
    return NULL;
  case H_CTYPE:
    f->has_ctype = 1;
    break;
  }
  if (ml_buf_reserve(o, nlen + vlen + 4) != 0)
    return "not enough memory";
  p = o->data + o->len;
  memcpy(p, n, nlen);
  memcpy(p + nlen, ": ", 2);
  memcpy(p + nlen + 2, v, vlen);
  memcpy(p + nlen + 2 + vlen, "\r\n", 2);
  o->len += nlen + vlen + 4;
  return NULL;
}

/* The headers table at idx: names to a string, number or list of them;
 * 'names' is the cache of name kinds. */
const char *ml_lib_req_put_headers(lua_State *L, int idx, int names,
                                   ml_buf *o, head_flags *f) {
  name_cache *nc = lua_touserdata(L, names);
  const char *err = NULL;
  size_t nlen, vlen;
  lua_pushnil(L);
  while (err == NULL && lua_next(L, idx) != 0) {
    int key = lua_gettop(L) - 1, vt = lua_type(L, -1), kind = -1;
    const char *n = lua_type(L, key) == LUA_TSTRING
                      ? lua_tolstring(L, key, &nlen) : NULL;
    if (n != NULL)
      kind = name_kind(L, names, nc, key, n, nlen);
    if (n == NULL) {
      err = "header names must be strings";
    } else if (vt == LUA_TSTRING) {     /* the common case: no copy */
      const char *v = lua_tolstring(L, -1, &vlen);
      err = put_header(o, kind, n, nlen, v, vlen, f);
    } else if (vt == LUA_TTABLE) {
      lua_Integer i, len = (lua_Integer)lua_rawlen(L, -1);
      for (i = 1; err == NULL && i <= len; i++) {
        lua_rawgeti(L, -1, i);
        if (lua_type(L, -1) == LUA_TSTRING ||
            lua_type(L, -1) == LUA_TNUMBER) {
          const char *v = lua_tolstring(L, -1, &vlen);
          err = put_header(o, kind, n, nlen, v, vlen, f);
        } else
          err = "header values must be strings or numbers";
        lua_pop(L, 1);
      }
    } else if (vt == LUA_TNUMBER) {
      const char *v;
      lua_pushvalue(L, -1);   /* tolstring must not convert the value */
      v = lua_tolstring(L, -1, &vlen);
      err = put_header(o, kind, n, nlen, v, vlen, f);
      lua_pop(L, 1);
    } else {
      err = "header values must be strings, numbers or lists of them";
    }
    if (err != NULL) {
      lua_pushfstring(L, "%s: '%s'", err, n ? n : "?");
      return lua_tostring(L, -1);
    }
    lua_pop(L, 1);
  }
  return NULL;
}

/* What a response is made of.  The body is a string, or a table to
 * send as JSON when 'json' is set (encoded straight into the output). */
typedef struct {
  int status;
  int hidx;               /* the headers table's index, or 0 */
  int names;              /* the cache of header names' index */
  int json;               /* the body is the value at 'json' */
  const char *body;
  size_t blen;
  const char *ctype;      /* Content-Type unless the headers have one */
  size_t ctlen;
} reply;

/* The response's framing after the handler's headers, as 'put_framing'
 * writes it. */
typedef struct {
  const char *ctype;      /* Content-Type to add, or NULL */
  size_t ctlen;
  int has_length;         /* Content-Length (not for 204 and 304) */
  int known;              /* ... and the body's length is 'blen' */
  size_t blen;
  int close;              /* Connection: close */
  int keep_alive_10;      /* Connection: keep-alive, for HTTP/1.0 */
} framing;

#define LENGTH_WIDTH 20         /* the digits of any size_t */

/*
 * Appends Content-Type, Content-Length and Connection as 'fr' says and
 * the blank line: one reservation, then copies.  When the body's length
 * is not known yet (JSON, encoded after the head), room is left for its
 * digits at *at, for 'put_length'.  0, or -1 when out of memory (nothing
 * appended).
 */
static int put_framing(ml_buf *o, const framing *fr, size_t *at) {
  char *p;
  if (ml_buf_reserve(o, sizeof "Content-Type: \r\n" + fr->ctlen +
                        sizeof "Content-Length: \r\n" + LENGTH_WIDTH +
                        sizeof "Connection: keep-alive\r\n\r\n") != 0)
    return -1;
  p = o->data + o->len;
#define PUT(s, n) (memcpy(p, (s), (n)), p += (n))
#define PUT_LIT(s) PUT("" s "", sizeof(s) - 1)
  if (fr->ctype != NULL) {
    PUT_LIT("Content-Type: ");
    PUT(fr->ctype, fr->ctlen);
    PUT_LIT("\r\n");
  }
  if (fr->has_length) {
    PUT_LIT("Content-Length: ");
    *at = (size_t)(p - o->data);
    if (fr->known)
      p = ml_http_put_size(p, fr->blen);
    else
      p += LENGTH_WIDTH;
    PUT_LIT("\r\n");
  }
  if (fr->close)
    PUT_LIT("Connection: close\r\n");
  else if (fr->keep_alive_10)
    PUT_LIT("Connection: keep-alive\r\n");
  PUT_LIT("\r\n");
#undef PUT_LIT
#undef PUT
  o->len = (size_t)(p - o->data);
  return 0;
}

/* Writes the body's length where 'put_framing' left room for it and
 * closes the gap under what follows (the rest of the head, the body). */
static void put_length(ml_buf *o, size_t at, size_t blen) {
  char *p = o->data + at;
  char *q = ml_http_put_size(p, blen);
  size_t gap = LENGTH_WIDTH - (size_t)(q - p);
  memmove(q, p + LENGTH_WIDTH, o->len - at - LENGTH_WIDTH);
  o->len -= gap;
}

enum { SENT_OK = 0, SENT_BAD = 1, SENT_NOMEM = -1 };

/*
 * Appends the whole response for rp to c's output and tells conn.c.
 * SENT_OK; SENT_BAD when the headers cannot be sent (the reason pushed
 * on L) or a JSON body cannot be encoded (nothing pushed); SENT_NOMEM.
 * On failure nothing of it is left in the output.  A HEAD request, a 204
 * and a 304 get the head only.
 */
static int respond(lua_State *L, ml_conn *c, const reply *rp) {
  ml_req *r = ml_conn_req(c);
  ml_buf *o = ml_conn_out(c);
  size_t mark = o->len, at = 0, end, blen = rp->blen;
  int bodyless = rp->status == 204 || rp->status == 304;
  int sent = !bodyless && r->method != HTTP_HEAD;
  head_flags f = { 0, 0 };
  framing fr;
  f.close = !ml_conn_keep_alive(c);
  if (ml_http_status_line(o, rp->status) != 0)
    goto no_memory;
  if (rp->hidx != 0 &&
      ml_lib_req_put_headers(L, rp->hidx, rp->names, o, &f) != NULL) {
    o->len = mark;                /* nothing of it is sent */
    return SENT_BAD;
  }
  fr.ctype = !bodyless && !f.has_ctype ? rp->ctype : NULL;
  fr.ctlen = fr.ctype != NULL ? rp->ctlen : 0;
  fr.has_length = !bodyless;
  fr.known = !rp->json;
  fr.blen = blen;
  fr.close = f.close;
  fr.keep_alive_10 = r->minor == 0;
  if (put_framing(o, &fr, &at) != 0)
    goto no_memory;
  end = o->len;
  if (rp->json) {                 /* its length is known once encoded */
    if (ml_json_encode_append(L, rp->json, o) != 0) {
      o->len = mark;
      return SENT_BAD;
    }
    blen = o->len - end;
    if (!sent)
      o->len = end;
    if (fr.has_length)
      put_length(o, at, blen);
  } else if (sent && ml_buf_append(o, rp->body, blen) != 0) {
    goto no_memory;
  }
  ml_conn_responded(c, rp->status, sent ? blen : 0, f.close);
  return SENT_OK;
no_memory:
  o->len = mark;
  return SENT_NOMEM;
}

/*
 * core.send(req, status, body, headers, default_content_type) -> true, or
 * nil and why (nil, "closed" when the client has gone).  Appends the whole
 * response to the connection's output; the connection writes it once the
 * handler's coroutine has ended.  A HEAD request gets the head only.
 */
static int req_send(lua_State *L) {
  ml_conn *c = ml_lib_req_get_conn(L);
  lua_Integer status = luaL_checkinteger(L, 2);
  reply rp;
  ml_req *r;
  rp.body = luaL_optlstring(L, 3, "", &rp.blen);
  rp.ctype = luaL_optlstring(L, 5, "text/html; charset=utf-8", &rp.ctlen);
  rp.hidx = lua_isnoneornil(L, 4) ? 0 : 4;
  rp.json = 0;
  luaL_argcheck(L, status >= 200 && status <= 999, 2,
                "status must be from 200 to 999");
  if (rp.hidx != 0)
    luaL_checktype(L, 4, LUA_TTABLE);
  if (c == NULL)
    return ml_lib_fail(L, "closed");
  if (ml_conn_upgraded(c) != NULL)
    return ml_lib_ws_finish(L, c, (int)status);
  r = ml_conn_req(c);
  if (r->streaming)
    return ml_lib_stream_end(L, c, (int)status);
  if (r->responded)
    return luaL_error(L, "the response was already sent");
  rp.status = (int)status;
  lua_rawgeti(L, lua_upvalueindex(1), MT_NAMES);
  rp.names = lua_gettop(L);
  switch (respond(L, c, &rp)) {
  case SENT_OK:
    lua_pushboolean(L, 1);
    return 1;
  case SENT_BAD:
    return ml_lib_fail(L, lua_tostring(L, -1));
  default:
    return luaL_error(L, "not enough memory");
  }
}

/*
 * What most handlers return, answered without moonlet.app's Lua: a
 * string, or a table without a metatable (as JSON), then an optional
 * status from 200 to 999 and an optional headers table, at idx..idx+2.
 * The request object is at 1.  1 when the response is sent (or its
 * client has gone); 0 when the values are anything else, the response
 * is not an ordinary one (streamed, upgraded, sent), or it cannot be
 * sent (a bad header, a value JSON cannot hold): moonlet.app's dispatch
 * then makes it, or words the error, as it always has.
 */
int ml_lib_req_answer(lua_State *L, int idx) {
  req_ud *ud = lua_touserdata(L, 1);
  ml_conn *c = ud_conn(ud);
  int ta = lua_type(L, idx), tb = lua_type(L, idx + 1);
  int tc = lua_type(L, idx + 2), top = lua_gettop(L), rc;
  lua_Integer status = 200;
  ml_req *r;
  reply rp;
  if (ta == LUA_TSTRING) {
    rp.body = lua_tolstring(L, idx, &rp.blen);
    rp.json = 0;
    rp.ctype = "text/html; charset=utf-8";
    rp.ctlen = sizeof "text/html; charset=utf-8" - 1;
  } else if (ta == LUA_TTABLE && !lua_getmetatable(L, idx)) {
    rp.body = NULL;
    rp.blen = 0;
    rp.json = idx;
    rp.ctype = "application/json";
    rp.ctlen = sizeof "application/json" - 1;
  } else {
    lua_settop(L, top);
    return 0;
  }
  if (tb != LUA_TNIL && (!lua_isinteger(L, idx + 1) ||
      (status = lua_tointeger(L, idx + 1)) < 200 || status > 999))
    return 0;
  if (tc != LUA_TNIL && tc != LUA_TTABLE)
    return 0;
  if (c == NULL)
    return 1;                     /* the client left: nothing to send */
  r = ml_conn_req(c);
  if (ml_conn_upgraded(c) != NULL || r->streaming || r->responded)
    return 0;
  rp.status = (int)status;
  rp.hidx = 0;
  rp.names = 0;
  if (tc == LUA_TTABLE) {         /* the names' cache only for headers */
    rp.hidx = idx + 2;
    lua_getmetatable(L, 1);
    lua_rawgeti(L, -1, MT_NAMES);
    rp.names = lua_gettop(L);
  }
  rc = respond(L, c, &rp);
  lua_settop(L, top);
  return rc == SENT_OK;
}

/* }====================================================== */

/* core.set_request_class(methods, lazy, headers_mt), called once by
 * moonlet.request. */
static int req_set_class(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_pushvalue(L, 1);
  lua_rawseti(L, lua_upvalueindex(1), MT_METHODS);
  lua_pushvalue(L, 2);
  lua_rawseti(L, lua_upvalueindex(1), MT_LAZY);
  lua_pushvalue(L, 3);
  lua_setfield(L, LUA_REGISTRYINDEX, ML_HEADERS_MT);
  return 0;
}

static const luaL_Reg req_meta[] = {
  {"__index", req_index},
  {"__newindex", req_newindex},
  {"__tostring", req_tostring},
  {NULL, NULL}
};

static const luaL_Reg req_core[] = {
  {"send", req_send},
  {"req_header", req_header},
  {"set_request_class", req_set_class},
  {NULL, NULL}
};

/* Registers the metatable, then adds core's request functions to the
 * table on top; all of them get the metatable as upvalue 1. */
void ml_lib_req_register(lua_State *L) {
  luaL_newmetatable(L, REQ_MT);
  lua_pushvalue(L, -1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &req_mt_key);
  memset(lua_newuserdatauv(L, sizeof(name_cache), 1), 0,
         sizeof(name_cache));
  lua_newtable(L);
  lua_setiuservalue(L, -2, 1);
  lua_rawseti(L, -2, MT_NAMES);
  lua_pushvalue(L, -1);
  luaL_setfuncs(L, req_meta, 1);
  luaL_setfuncs(L, req_core, 1);   /* pops the metatable */
}
