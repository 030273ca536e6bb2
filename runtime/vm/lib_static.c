/*
 * lib_static.c - core.static_send, app:static's files as Lua sees them:
 * the handler waits (one ml_wait) while net/static.c sends the file.
 * Finding the file and the wire are static.c's; routes and 404 pages
 * are moonlet.app's.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/conn.h"
#include "net/static.h"
#include "vm/lib.h"

/* A handler waiting while its file is sent. */
typedef struct {
  ml_wait w;
  ml_static_transfer *s;
} static_wait;

static int fail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/*
 * The body is out: the wait returns true.  The send failed: nil,
 * "closed", on the next turn; the handler serving the request is
 * cancelled before that, by its connection's close.
 */
static void static_done(ml_static_transfer *s, int status, void *ud) {
  static_wait *op = ud;
  ml_co *co = ml_sched_unpark(&op->w);
  ML_UNUSED(s);
  free(op);
  if (co == NULL)
    return;
  if (status == 0) {
    lua_pushboolean(co->L, 1);
    ml_sched_resume(co, 1);               /* last: it may end the conn */
  } else {
    lua_pushnil(co->L);
    lua_pushliteral(co->L, "closed");
    ml_sched_resume_soon(co, 2);
  }
}

/* The client left: the send stops at once; no resume. */
static void static_cancel(ml_wait *w) {
  static_wait *op = (static_wait *)w;
  ml_static_cancel(op->s);
  free(op);
}

/*
 * core.static_send(req, root, path, slash) (yields) -> true once the
 * response is sent (200, 206, 304 or 416), or nil and "not found",
 * "redirect" (a directory asked for without its slash) or "closed".
 * 'path' is the part of the request's path under the prefix, decoded;
 * 'slash' says the request's path ended with '/'.  Raises for a failure
 * that is not the client's (no descriptors left), which is then a 500.
 */
static int static_send(lua_State *L) {
  ml_conn *c = ml_lib_req_conn(L, 1);
  const char *root = luaL_checkstring(L, 2);
  size_t n;
  const char *rel = luaL_optlstring(L, 3, "", &n);
  int slash = lua_toboolean(L, 4), rc;
  static_wait *op;
  ml_co *co;
  if (c == NULL)
    return fail(L, "closed");
  co = ml_sched_current(L);
  if (ml_conn_req(c)->responded)
    return luaL_error(L, "the response was already sent");
  if ((op = malloc(sizeof *op)) == NULL)
    return luaL_error(L, "not enough memory");
  rc = ml_static_send(c, root, rel, n, slash, static_done, op, &op->s);
  if (rc == ML_STATIC_PENDING) {
    ml_sched_park(co, &op->w, static_cancel);
    return ml_sched_yield(L);     /* static_done's true becomes ours */
  }
  free(op);
  switch (rc) {
  case ML_STATIC_SENT:
    lua_pushboolean(L, 1);
    return 1;
  case ML_STATIC_NOT_FOUND:
    return fail(L, "not found");
  case ML_STATIC_REDIRECT:
    return fail(L, "redirect");
  case ML_STATIC_CLOSED:
    return fail(L, "closed");
  case UV_ENOMEM:
    return luaL_error(L, "not enough memory");
  default:
    return luaL_error(L, "static: %s", strerror(-rc));
  }
}

void ml_lib_static_register(lua_State *L) {
  lua_pushcfunction(L, static_send);
  lua_setfield(L, -2, "static_send");
}
