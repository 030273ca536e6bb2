/*
 * lib_pg_rows.h - PostgreSQL results as Lua values (lib_pg_rows.c), for
 * lib_pg.c's queries.
 */
#ifndef ML_LIB_PG_ROWS_H
#define ML_LIB_PG_ROWS_H

#include <lua.h>

/* Keeps the function at idx as the decoder of json and jsonb columns
 * (moonlet.json's decode, from core.pg_setup). */
void ml_lib_pg_rows_set_decoder(lua_State *L, int idx);

/* Pushes what a query returns for the PGresult given as a light
 * userdata at 1: its rows, or nil, "SEVERITY: message", SQLSTATE.  A
 * lua_CFunction, to be run in protected mode. */
int ml_lib_pg_rows_push(lua_State *L);

#endif
