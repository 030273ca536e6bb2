/*
 * lib_tls.c - reads the TLS options a Lua program gives an outbound
 * client (moonlet.http, moonlet.ws, moonlet.redis, moonlet.tcp) into the
 * stream's ml_tls_opts.  Making and keeping contexts is each client's.
 */
#include <string.h>
#include <lauxlib.h>
#include "vm/lib.h"

void ml_lib_tls_opts(lua_State *L, int idx, ml_tls_opts *o) {
  memset(o, 0, sizeof *o);
  o->verify = 1;
  if (!lua_istable(L, idx))
    return;
  lua_getfield(L, idx, "verify");
  o->verify = lua_isnil(L, -1) || lua_toboolean(L, -1);
  lua_getfield(L, idx, "ca_file");
  o->ca_file = lua_tostring(L, -1);
  lua_getfield(L, idx, "cert");
  o->cert = lua_tostring(L, -1);
  lua_getfield(L, idx, "key");
  o->key = lua_tostring(L, -1);
  lua_pop(L, 4);                     /* the table keeps the strings */
}
