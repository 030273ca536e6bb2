/*
 * lib_pg_rows.c - PostgreSQL results as Lua values for moonlet.pg: each
 * column's type mapped to a Lua type (integers, floats, booleans, JSON
 * through moonlet.json's decode, NULL as moonlet.null, text otherwise),
 * the rows with .columns, .affected and .command, and errors as nil,
 * "SEVERITY: message", SQLSTATE.  The queries that get these results
 * are lib_pg.c's.
 */
#include <stdlib.h>
#include <lauxlib.h>
#include <libpq-fe.h>
#include "vm/lib_pg_rows.h"
#include "base/util.h"

/* Registry key of moonlet.json's decode (core.pg_setup). */
static char decode_key;

/* core.pg_setup's decoder, the function at idx, kept for JSON columns. */
void ml_lib_pg_rows_set_decoder(lua_State *L, int idx) {
  lua_pushvalue(L, idx);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &decode_key);
}

enum { T_STR, T_INT, T_FLOAT, T_BOOL, T_JSON };

static int type_of(Oid oid) {
  switch (oid) {
  case 20: case 21: case 23:
    return T_INT;
  case 700: case 701:
    return T_FLOAT;
  case 16:
    return T_BOOL;
  case 114: case 3802:
    return T_JSON;
  default:
    return T_STR;
  }
}

/* Pushes one field's value, 'kind' from type_of. */
static void push_value(lua_State *L, const PGresult *r, int row, int col,
                       int kind) {
  const char *v;
  long long x;
  int len;
  if (PQgetisnull(r, row, col)) {
    lua_pushlightuserdata(L, NULL);      /* moonlet.null */
    return;
  }
  v = PQgetvalue(r, row, col);
  if (kind == T_INT && ml_parse_int(v, &x) == 0) {
    lua_pushinteger(L, (lua_Integer)x);  /* PostgreSQL's usual digits */
    return;
  }
  len = PQgetlength(r, row, col);
  switch (kind) {
  case T_INT:
    if (lua_stringtonumber(L, v) == 0)
      lua_pushlstring(L, v, (size_t)len);
    return;
  case T_FLOAT:
    lua_pushnumber(L, strtod(v, NULL));  /* NaN, Infinity too */
    return;
  case T_BOOL:
    lua_pushboolean(L, v[0] == 't');
    return;
  case T_JSON:
    lua_rawgetp(L, LUA_REGISTRYINDEX, &decode_key);
    lua_pushlstring(L, v, (size_t)len);
    lua_call(L, 1, 1);                   /* json.decode: nil if not JSON */
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, v, (size_t)len);
    }
    return;
  default:
    lua_pushlstring(L, v, (size_t)len);
  }
}

/* Pushes the rows of a successful result: a list of tables keyed by
 * column name, with .columns, .affected and .command. */
static void push_rows(lua_State *L, const PGresult *r) {
  int nrows = PQntuples(r), ncols = PQnfields(r), i, j, names, kinds[64];
  const char *tuples = PQcmdTuples((PGresult *)r);
  luaL_checkstack(L, ncols + 8, "too many columns");
  lua_createtable(L, nrows, 3);
  lua_createtable(L, ncols, 0);
  names = lua_gettop(L) + 1;
  for (j = 0; j < ncols; j++) {
    lua_pushstring(L, PQfname(r, j));
    lua_pushvalue(L, -1);
    lua_rawseti(L, names - 1, j + 1);
    if (j < 64)
      kinds[j] = type_of(PQftype(r, j));
  }
  for (i = 0; i < nrows; i++) {
    lua_createtable(L, 0, ncols);
    for (j = 0; j < ncols; j++) {
      lua_pushvalue(L, names + j);
      push_value(L, r, i, j, j < 64 ? kinds[j] : type_of(PQftype(r, j)));
      lua_rawset(L, -3);
    }
    lua_rawseti(L, names - 2, i + 1);
  }
  lua_settop(L, names - 1);
  lua_setfield(L, -2, "columns");
  if (tuples[0] != '\0') {
    lua_pushinteger(L, strtoll(tuples, NULL, 10));
    lua_setfield(L, -2, "affected");
  }
  lua_pushstring(L, PQcmdStatus((PGresult *)r));
  lua_setfield(L, -2, "command");
}

/* Pushes nil, "ERROR: message", SQLSTATE for an error result. */
static int push_error(lua_State *L, const PGresult *r) {
  const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char *code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  lua_pushnil(L);
  if (msg != NULL)
    lua_pushfstring(L, "%s: %s", sev != NULL ? sev : "ERROR", msg);
  else
    lua_pushfstring(L, "ERROR: %s", PQresultErrorMessage(r));
  if (code != NULL)
    lua_pushstring(L, code);
  else
    lua_pushnil(L);
  return 3;
}

/*
 * Pushes what a query returns for result r on L: rows, or nil, err,
 * code.  Runs in protected mode (a json decode may raise, memory may
 * run out): its argument, r, as a light userdata.
 */
int ml_lib_pg_rows_push(lua_State *L) {
  const PGresult *r = lua_touserdata(L, 1);
  lua_settop(L, 0);
  switch (PQresultStatus(r)) {
  case PGRES_TUPLES_OK:
  case PGRES_COMMAND_OK:
  case PGRES_EMPTY_QUERY:
  case PGRES_SINGLE_TUPLE:
    push_rows(L, r);
    return 1;
  default:
    return push_error(L, r);
  }
}
