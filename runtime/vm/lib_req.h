/*
 * lib_req.h - what lib_req.c (the request object, core.send) shares with
 * lib_stream.c (req:stream), beyond what lib.h tells every lib_*.c file.
 */
#ifndef ML_LIB_REQ_H
#define ML_LIB_REQ_H

#include <lua.h>
#include "base/util.h"
#include "net/conn.h"

#define REQ_MT "moonlet.Request"

/* The request metatable's array part: what req:name() and req.name find
 * beyond the fields answered here (moonlet.request's tables), and the
 * kinds of the header names handlers have sent (core.send's cache). */
enum { MT_METHODS = 1, MT_LAZY = 2, MT_NAMES = 3 };

/* What the handler's headers said that the framing must follow; the
 * caller's, on its stack. */
typedef struct {
  int has_ctype;
  int close;
} head_flags;

/*
 * The connection behind the request object at 1, or NULL once it is
 * finished.  The calling function must have the request metatable as
 * upvalue 1 (the check is then a pointer comparison).
 */
ml_conn *ml_lib_req_get_conn(lua_State *L);

/* Appends the headers table at idx to o, or returns why it cannot be
 * sent (pushed on L); 'names' is the index of the metatable's cache of
 * name kinds (MT_NAMES). */
const char *ml_lib_req_put_headers(lua_State *L, int idx, int names,
                                   ml_buf *o, head_flags *f);

#endif
