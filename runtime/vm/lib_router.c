/*
 * lib_router.c - the router as Lua sees it: moonlet.app compiles its
 * routes into one with core.router() and r:add(); the server then matches
 * requests against it in C.  r:match() is for tests and tools.
 */
#include <string.h>
#include <lauxlib.h>
#include <llhttp.h>
#include "vm/lib.h"

#define ROUTER_MT "moonlet.Router"

typedef struct { int num; const char *name; } method_name;

static const method_name methods[] = {
#define XX(num, name, string) { num, #string },
  HTTP_ALL_METHOD_MAP(XX)
#undef XX
  { -1, NULL }
};

/* llhttp's number for a method name, or -1. */
static int method_number(const char *name) {
  const method_name *m;
  for (m = methods; m->name != NULL; m++)
    if (strcmp(m->name, name) == 0)
      return m->num;
  return -1;
}

ml_router *ml_lib_router_get(lua_State *L, int idx) {
  ml_router **ud = luaL_testudata(L, idx, ROUTER_MT);
  return ud != NULL ? *ud : NULL;
}

static ml_router *check_router(lua_State *L) {
  ml_router *r = ml_lib_router_get(L, 1);
  luaL_argcheck(L, r != NULL, 1, "router expected");
  return r;
}

static int router_new(lua_State *L) {
  ml_router **ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, ROUTER_MT);
  if ((*ud = ml_router_new()) == NULL)
    return luaL_error(L, "not enough memory");
  return 1;
}

/* r:add(pattern, {"GET", ...}, id) -> true, or nil and the reason. */
static int router_add(lua_State *L) {
  ml_router *r = check_router(L);
  const char *pattern = luaL_checkstring(L, 2);
  lua_Integer id = luaL_checkinteger(L, 4);
  uint64_t mask = 0;
  char err[256];
  lua_Integer i, n;
  luaL_checktype(L, 3, LUA_TTABLE);
  n = luaL_len(L, 3);
  for (i = 1; i <= n; i++) {
    int num;
    lua_geti(L, 3, i);
    num = lua_isstring(L, -1) ? method_number(lua_tostring(L, -1)) : -1;
    if (num < 0) {
      const char *name = luaL_tolstring(L, -1, NULL);
      lua_pushnil(L);
      lua_pushfstring(L, "unknown HTTP method '%s'", name);
      return 2;              /* nil and the reason, not the name first */
    }
    mask |= 1ULL << num;
    lua_pop(L, 1);
  }
  if (ml_router_add(r, pattern, mask, (int)id, err, sizeof err) != 0) {
    return ml_lib_fail(L, err);
  }
  lua_pushboolean(L, 1);
  return 1;
}

/* r:match(method, path) -> kind, route id or allow, params table. */
static int router_match(lua_State *L) {
  static const char *const kinds[] = { "found", "not_found", "bad_method",
                                       "redirect_slash", "options" };
  ml_router *r = check_router(L);
  int method = method_number(luaL_checkstring(L, 2));
  size_t len;
  const char *path = luaL_checklstring(L, 3, &len);
  ml_match m;
  char allow[256];
  int i;
  luaL_argcheck(L, method >= 0, 2, "unknown HTTP method");
  ml_router_match(r, method, path, len, &m);
  lua_pushstring(L, kinds[m.kind]);
  if (m.kind == ML_MATCH_FOUND)
    lua_pushinteger(L, m.route);
  else
    lua_pushlstring(L, allow, ml_router_format_allow(m.allow, allow,
                                                     sizeof allow));
  lua_createtable(L, 0, m.nparams);
  for (i = 0; i < m.nparams; i++) {
    if (m.params[i].conv == ML_CONV_INT)
      lua_pushinteger(L, (lua_Integer)m.params[i].i);
    else if (m.params[i].conv == ML_CONV_FLOAT)
      lua_pushnumber(L, m.params[i].d);
    else
      lua_pushlstring(L, m.params[i].s, m.params[i].len);
    lua_setfield(L, -2, m.params[i].name);
  }
  return 3;
}

static int router_gc(lua_State *L) {
  ml_router **ud = luaL_checkudata(L, 1, ROUTER_MT);
  ml_router_free(*ud);
  *ud = NULL;
  return 0;
}

static const luaL_Reg router_methods[] = {
  {"add", router_add},
  {"match", router_match},
  {NULL, NULL}
};

void ml_lib_router_register(lua_State *L) {
  luaL_newmetatable(L, ROUTER_MT);
  luaL_newlib(L, router_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, router_gc);
  lua_setfield(L, -2, "__gc");
  lua_pop(L, 1);
  lua_pushcfunction(L, router_new);
  lua_setfield(L, -2, "router");
}
