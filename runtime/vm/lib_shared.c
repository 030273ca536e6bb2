/*
 * lib_shared.c - moonlet.shared as Lua sees it: get, set, add, incr,
 * delete and keys over the server's store (shared.c), which outlives every
 * Lua state.  Each function also works as a method of the table it is in
 * (moonlet.shared:get(key)), as OpenResty users write it.
 */
#include <math.h>
#include <string.h>
#include <lauxlib.h>
#include "vm/lib.h"
#include "base/shared.h"

#define MAX_KEY 65535

/* The store's clock: monotonic milliseconds, independent of the loop's
 * cached time, so a TTL counts from the call itself. */
static uint64_t now_ms(void) {
  return uv_hrtime() / 1000000;
}

/*
 * The index of the first real argument: 2 in the method form, where the
 * shared table itself (upvalue 1) comes first.  luaL_argerror then counts
 * arguments as the caller wrote them.
 */
static int base(lua_State *L) {
  return lua_rawequal(L, 1, lua_upvalueindex(1)) ? 2 : 1;
}

static ml_shared *store(lua_State *L) {
  ml_gen *g = ML_GEN(L);
  if (g == NULL || g->host->shared == NULL)
    luaL_error(L, "moonlet.shared is not available in this Lua state");
  return g->host->shared;
}

static const char *check_key(lua_State *L, int i, size_t *len) {
  const char *k = luaL_checklstring(L, i, len);
  luaL_argcheck(L, *len > 0, i, "empty key");
  luaL_argcheck(L, *len <= MAX_KEY, i, "key longer than 65535 bytes");
  return k;
}

/* Reads the value at i; anything but a string, number or boolean raises. */
static void check_value(lua_State *L, int i, ml_shared_value *v) {
  memset(v, 0, sizeof *v);
  v->type = ML_SHARED_BOOLEAN;
  switch (lua_type(L, i)) {
  case LUA_TSTRING:
    v->type = ML_SHARED_STRING;
    v->s = lua_tolstring(L, i, &v->len);
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, i)) {
      v->type = ML_SHARED_INTEGER;
      v->i = (long long)lua_tointeger(L, i);
    } else {
      v->type = ML_SHARED_NUMBER;
      v->n = (double)lua_tonumber(L, i);
    }
    break;
  case LUA_TBOOLEAN:
    v->b = lua_toboolean(L, i);
    break;
  default:
    luaL_argerror(L, i, lua_pushfstring(L, "a string, number or boolean "
                  "expected, got %s", luaL_typename(L, i)));
  }
}

static void check_number(lua_State *L, int i, ml_shared_value *v) {
  luaL_checknumber(L, i);
  check_value(L, i, v);
}

/* A TTL in seconds, as milliseconds; none, nil or 0: it never expires. */
static uint64_t check_ttl(lua_State *L, int i) {
  lua_Number t = luaL_optnumber(L, i, 0);
  luaL_argcheck(L, t >= 0 && t < 1e9, i, "ttl must be 0 (none) or a "
                "number of seconds");
  if (t == 0)
    return 0;
  return (uint64_t)ceil(t * 1000);   /* at least 1 ms: 0 means never */
}

static void push_value(lua_State *L, const ml_shared_value *v) {
  switch (v->type) {
  case ML_SHARED_STRING: lua_pushlstring(L, v->s, v->len); break;
  case ML_SHARED_INTEGER: lua_pushinteger(L, (lua_Integer)v->i); break;
  case ML_SHARED_NUMBER: lua_pushnumber(L, (lua_Number)v->n); break;
  default: lua_pushboolean(L, v->b); break;
  }
}

/* shared.get(key) -> value or nil */
static int shared_get(lua_State *L) {
  int b = base(L);
  size_t klen;
  const char *k = check_key(L, b, &klen);
  ml_shared_value v;
  if (ml_shared_get(store(L), k, klen, now_ms(), &v))
    push_value(L, &v);
  else
    lua_pushnil(L);
  return 1;
}

/* set and add: store the value; add only when the key is absent. */
static int put(lua_State *L, int only_new) {
  int b = base(L);
  size_t klen;
  const char *k = check_key(L, b, &klen);
  ml_shared_value v;
  uint64_t ttl;
  int rc;
  check_value(L, b + 1, &v);
  ttl = check_ttl(L, b + 2);
  rc = ml_shared_set(store(L), k, klen, &v, ttl, now_ms(), only_new);
  if (rc == UV_EEXIST)
    return ml_lib_fail(L, "exists");
  if (rc != 0)
    return luaL_error(L, "not enough memory");
  lua_pushboolean(L, 1);
  return 1;
}

/* shared.set(key, value [, ttl]) -> true */
static int shared_set(lua_State *L) {
  return put(L, 0);
}

/* shared.add(key, value [, ttl]) -> true, or nil, "exists" */
static int shared_add(lua_State *L) {
  return put(L, 1);
}

/* shared.incr(key, n [, init]) -> the new value, or nil and
 * "not found" / "not a number" */
static int shared_incr(lua_State *L) {
  int b = base(L);
  size_t klen;
  const char *k = check_key(L, b, &klen);
  ml_shared_value by, init, out;
  int rc, has_init = !lua_isnoneornil(L, b + 2);
  check_number(L, b + 1, &by);
  if (has_init)
    check_number(L, b + 2, &init);
  rc = ml_shared_incr(store(L), k, klen, &by, has_init ? &init : NULL,
                      now_ms(), &out);
  if (rc == UV_ENOENT)
    return ml_lib_fail(L, "not found");
  if (rc == UV_EINVAL)
    return ml_lib_fail(L, "not a number");
  if (rc != 0)
    return luaL_error(L, "not enough memory");
  push_value(L, &out);
  return 1;
}

/* shared.delete(key) -> true */
static int shared_delete(lua_State *L) {
  int b = base(L);
  size_t klen;
  const char *k = check_key(L, b, &klen);
  ml_shared_delete(store(L), k, klen, now_ms());
  lua_pushboolean(L, 1);
  return 1;
}

static void push_key(const char *key, size_t klen, void *ud) {
  lua_State *L = ud;
  lua_pushlstring(L, key, klen);
  lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
}

/* shared.keys() -> a list of the live keys, sorted */
static int shared_keys(lua_State *L) {
  ml_shared *sh = store(L);
  lua_createtable(L, (int)ml_shared_count(sh), 0);
  if (ml_shared_keys(sh, now_ms(), push_key, L) != 0)
    return luaL_error(L, "not enough memory");
  return 1;
}

static const luaL_Reg shared_funcs[] = {
  {"get", shared_get},
  {"set", shared_set},
  {"add", shared_add},
  {"incr", shared_incr},
  {"delete", shared_delete},
  {"keys", shared_keys},
  {NULL, NULL}
};

void ml_lib_shared_register(lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -1);            /* each function knows its table */
  luaL_setfuncs(L, shared_funcs, 1);
  lua_setfield(L, -2, "shared");
}
