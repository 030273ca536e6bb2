/*
 * lib_json.c - the C half of moonlet.json: the encoder (integers exact,
 * floats that read back the same, no "\/", strings checked for UTF-8,
 * arrays marked by a metatable, errors that name the failing path), the
 * pass that turns the decoder's integral floats back into integers, and
 * the text that logs give an error value.  Decoding itself is
 * lua-cjson's (lua/moonlet/json.lua).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "vm/lib.h"
#include "vm/lib_json.h"
#include "base/util.h"

#define MAX_DEPTH 1000        /* lua-cjson's limit too */
#define SPARSE_SAFE 10        /* a list with holes up to here is a list */
#define PATH_MAX_LEN 100      /* the part of a failing path we report */

/* The output and the first error, owned by one json_encode call; never
 * a Lua object, so nothing here can raise while the buffer is live. */
typedef struct {
  char *p;
  size_t len, cap;
  const char *err;            /* NULL until something fails */
  char errbuf[96];
  char path[PATH_MAX_LEN + 1];  /* built innermost first, on unwinding */
  int cut;                      /* outer steps left out of 'path' */
} jenc;

static int grow(jenc *e, size_t more) {
  size_t cap = e->cap ? e->cap : 256;
  char *p;
  while (cap - e->len < more) {
    if (cap > ((size_t)-1) / 2)
      return -1;
    cap *= 2;
  }
  if (cap == e->cap)
    return 0;
  if ((p = realloc(e->p, cap)) == NULL)
    return -1;
  e->p = p;
  e->cap = cap;
  return 0;
}

static int put(jenc *e, const char *s, size_t n) {
  if (e->cap - e->len < n && grow(e, n) != 0) {
    e->err = "not enough memory";
    return -1;
  }
  memcpy(e->p + e->len, s, n);
  e->len += n;
  return 0;
}

static int fail(jenc *e, const char *msg) {
  e->err = msg;
  return -1;
}

/* Prepends one path step ("[3]" or ".name") while an error unwinds. */
static void path_step(jenc *e, lua_State *L, int key) {
  char step[48];
  size_t have = strlen(e->path), n;
  if (lua_isinteger(L, key))
    snprintf(step, sizeof step, "[%lld]", (long long)lua_tointeger(L, key));
  else if (lua_type(L, key) == LUA_TSTRING)
    snprintf(step, sizeof step, ".%.40s", lua_tostring(L, key));
  else
    snprintf(step, sizeof step, "[%s]", luaL_typename(L, key));
  n = strlen(step);
  if (have + n > PATH_MAX_LEN) {
    e->cut = 1;
    return;
  }
  memmove(e->path + n, e->path, have + 1);
  memcpy(e->path, step, n);
}

/*
** {======================================================
** Strings and numbers
** =======================================================
*/

/* Length of the UTF-8 sequence at s (at most n bytes) if it is valid:
 * shortest form, no surrogate, at most U+10FFFF; 0 otherwise. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned c = s[0];
  size_t len, i;
  unsigned long cp;
  if (c < 0xC2 || c > 0xF4)
    return 0;
  len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (len > n)
    return 0;
  cp = c & (0x3F >> (len - 1));
  for (i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80)
      return 0;
    cp = (cp << 6) | (s[i] & 0x3F);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
      cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return 0;
  return len;
}

int ml_json_utf8_valid(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, k;
  while (i < n) {
    if (u[i] < 0x80) {
      i++;
    } else if ((k = utf8_seq(u + i, n - i)) == 0) {
      return 0;
    } else {
      i += k;
    }
  }
  return 1;
}

static int put_escape(jenc *e, unsigned char c) {
  static const char hex[] = "0123456789abcdef";
  char esc[6] = { '\\', 'u', '0', '0', 0, 0 };
  const char *two = NULL;
  switch (c) {
  case '"': two = "\\\""; break;
  case '\\': two = "\\\\"; break;
  case '\n': two = "\\n"; break;
  case '\r': two = "\\r"; break;
  case '\t': two = "\\t"; break;
  case '\b': two = "\\b"; break;
  case '\f': two = "\\f"; break;
  default: break;
  }
  if (two != NULL)
    return put(e, two, 2);
  esc[4] = hex[c >> 4];
  esc[5] = hex[c & 15];
  return put(e, esc, 6);
}

/* The bytes a JSON string holds as they are: printable ASCII but '"'
 * and '\\'.  A table, so the common scan is one load per byte. */
static const unsigned char plain_byte[256] = {
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

/* A quoted string with nothing to escape: one reservation, one copy.
 * 1 when done, 0 when s needs put_string's slower walk, -1 when out of
 * memory. */
static int put_plain_string(jenc *e, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i;
  for (i = 0; i < n; i++)
    if (!plain_byte[u[i]])
      return 0;
  if (e->cap - e->len < n + 2 && grow(e, n + 2) != 0) {
    e->err = "not enough memory";
    return -1;
  }
  e->p[e->len] = '"';
  memcpy(e->p + e->len + 1, s, n);
  e->p[e->len + 1 + n] = '"';
  e->len += n + 2;
  return 1;
}

/* A quoted string; runs of plain bytes are copied at once. */
static int put_string(jenc *e, const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i = 0, run = 0, k;
  int rc = put_plain_string(e, s, n);
  if (rc != 0)
    return rc < 0 ? -1 : 0;
  if (put(e, "\"", 1) != 0)
    return -1;
  while (i < n) {
    unsigned char c = u[i];
    if (plain_byte[c]) {
      i++;
      continue;
    }
    if (c >= 0x80) {
      if ((k = utf8_seq(u + i, n - i)) == 0)
        return fail(e, "a string that is not UTF-8");
      i += k;
      continue;
    }
    if (put(e, s + run, i - run) != 0 || put_escape(e, c) != 0)
      return -1;
    run = ++i;
  }
  if (put(e, s + run, n - run) != 0)
    return -1;
  return put(e, "\"", 1);
}

/* The shortest of %.15g .. %.17g that reads back as the same double. */
static int format_float(char *buf, size_t size, double d) {
  int prec, n = 0;
  for (prec = 15; prec <= 17; prec++) {
    n = snprintf(buf, size, "%.*g", prec, d);
    if (strtod(buf, NULL) == d)
      break;
  }
  return n;
}

static int put_number(jenc *e, lua_State *L, int idx) {
  char buf[40];
  int n;
  if (lua_isinteger(L, idx)) {
    n = ml_fmt_int(buf, (long long)lua_tointeger(L, idx));
  } else {
    double d = (double)lua_tonumber(L, idx);
    if (isnan(d) || isinf(d))
      return fail(e, "a number JSON cannot hold (NaN or infinity)");
    n = format_float(buf, sizeof buf, d);
  }
  return put(e, buf, (size_t)n);
}

/* }====================================================== */

/*
** {======================================================
** Tables
** =======================================================
*/

static int encode(jenc *e, lua_State *L, int idx, int depth);

/* "array", "object" or NULL: what the table's metatable says it is. */
static const char *marked_as(lua_State *L, int idx) {
  const char *kind = NULL;
  if (!lua_getmetatable(L, idx))
    return NULL;
  if (lua_getfield(L, -1, "__jsontype") == LUA_TSTRING)
    kind = lua_tostring(L, -1);   /* kept alive by the metatable */
  lua_pop(L, 2);
  return kind;
}

/* How the table at idx is written: returns its list length (0 .. max
 * index) when every key is a positive integer and holes are few, -1
 * when it is an object, -2 for a list too sparse to write. */
static lua_Integer list_length(lua_State *L, int idx) {
  lua_Integer max = 0, count = 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    lua_pop(L, 1);
    if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
      lua_pop(L, 1);
      return -1;
    }
    if (lua_tointeger(L, -1) > max)
      max = lua_tointeger(L, -1);
    count++;
  }
  if (count == 0)
    return -1;             /* {} is an object unless marked */
  if (max > SPARSE_SAFE && max > 2 * count)
    return -2;
  return max;
}

static int encode_list(jenc *e, lua_State *L, int idx, lua_Integer n,
                       int depth) {
  lua_Integer i;
  if (put(e, "[", 1) != 0)
    return -1;
  for (i = 1; i <= n; i++) {
    if (i > 1 && put(e, ",", 1) != 0)
      return -1;
    lua_rawgeti(L, idx, i);
    if (encode(e, L, lua_gettop(L), depth + 1) != 0) {
      lua_pushinteger(L, i);
      path_step(e, L, -1);
      return -1;
    }
    lua_pop(L, 1);
  }
  return put(e, "]", 1);
}

/* A key: strings as they are, numbers as strings (JSON's keys are). */
static int put_key(jenc *e, lua_State *L, int key) {
  char buf[40];
  size_t n;
  if (lua_type(L, key) == LUA_TSTRING) {
    const char *s = lua_tolstring(L, key, &n);
    return put_string(e, s, n);
  }
  if (lua_type(L, key) != LUA_TNUMBER) {
    snprintf(e->errbuf, sizeof e->errbuf, "a key that is a %s",
             luaL_typename(L, key));
    e->err = e->errbuf;
    return -1;
  }
  if (lua_isinteger(L, key))
    ml_fmt_int(buf, (long long)lua_tointeger(L, key));
  else
    format_float(buf, sizeof buf, (double)lua_tonumber(L, key));
  return put_string(e, buf, strlen(buf));
}

static int encode_object(jenc *e, lua_State *L, int idx, int depth) {
  int first = 1;
  if (put(e, "{", 1) != 0)
    return -1;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    int key = lua_gettop(L) - 1;
    if ((!first && put(e, ",", 1) != 0) || put_key(e, L, key) != 0 ||
        put(e, ":", 1) != 0 || encode(e, L, key + 1, depth + 1) != 0) {
      path_step(e, L, key);
      return -1;
    }
    first = 0;
    lua_pop(L, 1);
  }
  return put(e, "}", 1);
}

static int encode_table(jenc *e, lua_State *L, int idx, int depth) {
  const char *kind = marked_as(L, idx);
  lua_Integer n;
  if (kind != NULL && strcmp(kind, "array") == 0)
    return encode_list(e, L, idx, (lua_Integer)lua_rawlen(L, idx), depth);
  if (kind != NULL && strcmp(kind, "object") == 0)
    return encode_object(e, L, idx, depth);
  n = list_length(L, idx);
  if (n == -2)
    return fail(e, "a list with too many holes (mark it with "
                "__jsontype = \"object\" to send an object)");
  return n >= 0 ? encode_list(e, L, idx, n, depth)
                : encode_object(e, L, idx, depth);
}

/* Appends the value at idx; 0, or -1 with e->err and e->path set.  The
 * stack is as it was on success. */
static int encode(jenc *e, lua_State *L, int idx, int depth) {
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return put(e, "null", 4);
  case LUA_TBOOLEAN:
    return lua_toboolean(L, idx) ? put(e, "true", 4) : put(e, "false", 5);
  case LUA_TNUMBER:
    return put_number(e, L, idx);
  case LUA_TSTRING: {
    size_t n;
    const char *s = lua_tolstring(L, idx, &n);
    return put_string(e, s, n);
  }
  case LUA_TLIGHTUSERDATA:
    if (lua_touserdata(L, idx) == NULL)   /* moonlet.null */
      return put(e, "null", 4);
    break;
  case LUA_TTABLE:
    if (depth >= MAX_DEPTH || !lua_checkstack(L, 4))
      return fail(e, "tables nested too deep (a table that holds "
                  "itself?)");
    return encode_table(e, L, idx, depth);
  default:
    break;
  }
  snprintf(e->errbuf, sizeof e->errbuf, "a %s", luaL_typename(L, idx));
  e->err = e->errbuf;
  return -1;
}

/* }====================================================== */

/* An encoder writing after len bytes of p (cap bytes, malloc'd, or NULL
 * and 0); the error fields are only read once something failed. */
static void jenc_init(jenc *e, char *p, size_t len, size_t cap) {
  e->p = p;
  e->len = len;
  e->cap = cap;
  e->err = NULL;
  e->path[0] = '\0';
  e->cut = 0;
}

/* Appends the JSON text of the value at idx to b: 0, or -1 with b's
 * contents as they were (its buffer may have moved) and nothing pushed.
 * No Lua string is made: responses are encoded straight into their
 * connection's output (lib_req.c). */
int ml_json_encode_append(lua_State *L, int idx, ml_buf *b) {
  jenc e;
  int rc, top = lua_gettop(L);
  jenc_init(&e, b->data, b->len, b->cap);
  rc = encode(&e, L, lua_absindex(L, idx), 0);
  lua_settop(L, top);
  b->data = e.p;
  b->cap = e.cap;
  if (rc == 0)
    b->len = e.len;
  return rc;
}

/* Encodes the value at idx into a new string on the stack; 0, or -1
 * with the message ("cannot encode a function at .a[2]") pushed. */
int ml_json_encode(lua_State *L, int idx) {
  jenc e;
  int rc, top = lua_gettop(L);
  jenc_init(&e, NULL, 0, 0);
  idx = lua_absindex(L, idx);
  rc = encode(&e, L, idx, 0);
  lua_settop(L, top);            /* a failure leaves its frames' values */
  if (rc == 0)
    lua_pushlstring(L, e.p, e.len);
  free(e.p);
  if (rc == 0)
    return 0;
  if (strcmp(e.err, "not enough memory") == 0)
    lua_pushstring(L, e.err);
  else
    lua_pushfstring(L, "cannot encode %s%s%s%s", e.err,
                    e.path[0] ? " at " : "", e.cut ? "..." : "", e.path);
  return -1;
}

/* json_encode(v) -> the JSON text; raises "json.encode: cannot ...". */
static int json_encode(lua_State *L) {
  luaL_checkany(L, 1);
  lua_settop(L, 1);
  if (ml_json_encode(L, 1) != 0) {
    luaL_where(L, 1);
    lua_pushliteral(L, "json.encode: ");
    lua_rotate(L, -3, 1);
    lua_concat(L, 3);
    return lua_error(L);
  }
  return 1;
}

/* The integer a decoded number stands for, when it is whole and at most
 * 2^53 in magnitude (beyond, a double no longer holds every integer). */
static int whole(lua_Number d) {
  return d == floor(d) && fabs(d) <= 9007199254740992.0;
}

/* Replaces, in the table at idx and the tables in it, every whole float
 * by its integer: lua-cjson decodes "3" as 3.0.  -1 if a number
 * overflowed to infinity ("1e400"), which JSON cannot mean. */
static int to_integers(lua_State *L, int idx, int depth) {
  int rc = 0;
  if (depth > MAX_DEPTH || !lua_checkstack(L, 3))
    return 0;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {
    if (lua_type(L, -1) == LUA_TTABLE) {
      rc |= to_integers(L, lua_gettop(L), depth + 1);
    } else if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
      lua_Number d = lua_tonumber(L, -1);
      if (isinf(d))
        rc = -1;
      if (whole(d)) {
        lua_pushvalue(L, -2);
        lua_pushinteger(L, (lua_Integer)d);
        lua_rawset(L, idx);        /* an existing key: next() stays valid */
      }
    }
    lua_pop(L, 1);
  }
  return rc;
}

/* json_integers(v) -> v with whole numbers as integers, or nil and
 * "number out of range". */
static int json_integers(lua_State *L) {
  int rc = 0;
  lua_settop(L, 1);
  if (lua_type(L, 1) == LUA_TTABLE) {
    rc = to_integers(L, 1, 0);
  } else if (lua_type(L, 1) == LUA_TNUMBER && !lua_isinteger(L, 1)) {
    lua_Number d = lua_tonumber(L, 1);
    rc = isinf(d) ? -1 : 0;
    if (whole(d))
      lua_pushinteger(L, (lua_Integer)d);
  }
  if (rc == 0)
    return 1;
  lua_pushnil(L);
  lua_pushliteral(L, "invalid JSON: a number out of range");
  return 2;
}

static int json_utf8(lua_State *L) {
  size_t n;
  const char *s = luaL_checklstring(L, 1, &n);
  lua_pushboolean(L, ml_json_utf8_valid(s, n));
  return 1;
}

const char *ml_json_describe(lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) == LUA_TTABLE && !luaL_getmetafield(L, idx,
                                                           "__tostring")) {
    if (ml_json_encode(L, idx) == 0)
      return lua_tostring(L, -1);
    lua_pop(L, 1);
  } else if (lua_type(L, idx) == LUA_TTABLE) {
    lua_pop(L, 1);             /* the __tostring field */
  }
  return luaL_tolstring(L, idx, NULL);
}

static int json_describe(lua_State *L) {
  luaL_checkany(L, 1);
  ml_json_describe(L, 1);
  return 1;
}

static const luaL_Reg json_funcs[] = {
  {"json_encode", json_encode},
  {"json_integers", json_integers},
  {"json_utf8", json_utf8},
  {"describe", json_describe},
  {NULL, NULL}
};

void ml_lib_json_register(lua_State *L) {
  luaL_setfuncs(L, json_funcs, 0);
}
