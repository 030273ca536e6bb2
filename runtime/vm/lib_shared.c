/*
 * lib_shared.c - moonlet.shared as Lua sees it: get, set, add, incr,
 * delete and keys over the host's store (shared.c), which it gives each
 * generation (gen.h's ml_host) and which outlives every one.  Each
 * function also works as a method of the table it is in
 * (moonlet.shared:get(key)), as OpenResty users write it.
 */
#include <math.h>
#include <string.h>
#include <lauxlib.h>
#include "vm/lib.h"
#include "base/log.h"
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

/* A failure of the store itself, not of the call: raises. */
static int fail_store(lua_State *L, int rc) {
  if (rc == UV_ENOMEM)
    return luaL_error(L, "not enough memory");
  return luaL_error(L, "moonlet.shared: %s", uv_strerror(rc));
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
  int rc = ml_shared_get(store(L), k, klen, now_ms(), &v);
  if (rc < 0)
    return fail_store(L, rc);
  if (rc == 1)
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
  if (rc == UV_ENOSPC)
    return ml_lib_fail(L, "no memory");
  if (rc != 0)
    return fail_store(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* shared.set(key, value [, ttl]) -> true, or nil, "no memory" when
 * evicting old keys made no room */
static int shared_set(lua_State *L) {
  return put(L, 0);
}

/* shared.add(key, value [, ttl]) -> true, or nil and "exists" / "no
 * memory" (add never evicts) */
static int shared_add(lua_State *L) {
  return put(L, 1);
}

/* shared.incr(key, n [, init]) -> the new value, or nil and
 * "not found" / "not a number" / "no memory" (incr never evicts) */
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
  if (rc == UV_ENOSPC)
    return ml_lib_fail(L, "no memory");
  if (rc != 0)
    return fail_store(L, rc);
  push_value(L, &out);
  return 1;
}

/* shared.delete(key) -> true */
static int shared_delete(lua_State *L) {
  int b = base(L);
  size_t klen;
  const char *k = check_key(L, b, &klen);
  int rc = ml_shared_delete(store(L), k, klen, now_ms());
  if (rc < 0)
    return fail_store(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}

/* shared.keys([max]) -> a sorted list of at most max live keys (1024
 * when not given; 0: all of them, however long that holds the lock) */
static int shared_keys(lua_State *L) {
  int b = base(L);
  lua_Integer max = luaL_optinteger(L, b, ML_SHARED_KEYS_DEFAULT);
  const ml_shared_key *keys;
  size_t n, i;
  int rc;
  luaL_argcheck(L, max >= 0, b, "max must be 0 (all) or a count");
  if ((rc = ml_shared_keys(store(L), now_ms(), (size_t)max, &keys, &n)) != 0)
    return fail_store(L, rc);
  lua_createtable(L, n < 1024 ? (int)n : 1024, 0);
  for (i = 0; i < n; i++) {
    lua_pushlstring(L, keys[i].key, keys[i].klen);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v) {
  lua_pushinteger(L, (lua_Integer)v);
  lua_setfield(L, -2, k);
}

/* shared.stats() -> {size=, capacity=, used=, count=, evictions=,
 * recoveries=}: bytes of the store, of which entries may use, use now;
 * entries; keys evicted; rebuilds after a process died holding the lock */
static int shared_stats(lua_State *L) {
  ml_shared_stats st;
  int rc = ml_shared_stat(store(L), &st);
  if (rc != 0)
    return fail_store(L, rc);
  lua_createtable(L, 0, 6);
  set_int(L, "size", st.size);
  set_int(L, "capacity", st.capacity);
  set_int(L, "used", st.used);
  set_int(L, "count", st.count);
  set_int(L, "evictions", st.evictions);
  set_int(L, "recoveries", st.recoveries);
  return 1;
}

/*
 * core.shared_size(bytes): the app's shared_size option, which moonlet.app
 * passes on as soon as it sees it.  It sizes the store when the store is
 * first used; later, a different size is logged and waits for a restart.
 */
static int shared_size(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  size_t actual = 0;
  int rc;
  luaL_argcheck(L, n >= (lua_Integer)ML_SHARED_MIN_SIZE, 1,
                "shared_size must be at least 65536 bytes");
  rc = ml_shared_want_size(store(L), (size_t)n, &actual);
  if (rc == UV_EBUSY)
    ml_log(MOONLET_LOG_WARN, "moonlet.shared is %zu bytes already: "
           "shared_size = %lld takes effect when the server restarts",
           actual, (long long)n);
  return 0;
}

static const luaL_Reg shared_funcs[] = {
  {"get", shared_get},
  {"set", shared_set},
  {"add", shared_add},
  {"incr", shared_incr},
  {"delete", shared_delete},
  {"keys", shared_keys},
  {"stats", shared_stats},
  {NULL, NULL}
};

void ml_lib_shared_register(lua_State *L) {
  lua_newtable(L);
  lua_pushvalue(L, -1);            /* each function knows its table */
  luaL_setfuncs(L, shared_funcs, 1);
  lua_setfield(L, -2, "shared");
  lua_pushcfunction(L, shared_size);
  lua_setfield(L, -2, "shared_size");
}
