/*
 * lib_stream.h - req:stream and req:sse's C side (lib_stream.c): a
 * response head now, its body piece by piece.
 */
#ifndef ML_LIB_STREAM_H
#define ML_LIB_STREAM_H

#include <lua.h>
#include "net/conn.h"

/* The handler of a streamed request returned (or failed, status from 500
 * on): writes the last chunk, or closes the connection so the client does
 * not take the body for a whole one; pushes true and returns 1 (core.send
 * in lib_req.c ends a stream with this). */
int ml_lib_stream_end(lua_State *L, ml_conn *c, int status);

/* Adds core.stream_start and core.stream_write to the table on top, with
 * the request metatable as their upvalue: call after
 * ml_lib_req_register. */
void ml_lib_stream_register(lua_State *L);

#endif
