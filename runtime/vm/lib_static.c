/*
 * lib_static.c - core.static_send, app:static's files as Lua sees them:
 * the handler waits (one ml_wait) while net/static.c finds the file on
 * libuv's thread pool, then while it sends it.
 * Finding the file and the wire are static.c's; routes and 404 pages
 * are moonlet.app's.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "net/conn.h"
#include "net/static.h"
#include "vm/lib.h"

/* A handler waiting while its file is found (on the thread pool), then
 * while it is sent: one wait, in two phases. */
typedef struct {
  ml_wait w;
  ml_conn *c;
  ml_static_lookup *l;     /* while finding; NULL after */
  ml_static_transfer *s;   /* while sending */
  unsigned answering : 1;  /* inside ml_static_answer */
  unsigned cancelled : 1;  /* ... whose failure closed the connection */
} static_wait;

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

/* Pushes what core.static_send returns for ml_static_answer's rc: true,
 * or nil and why; or false and a message that static_resumed raises. */
static int push_result(lua_State *L, int rc) {
  const char *why;
  switch (rc) {
  case ML_STATIC_SENT:
    lua_pushboolean(L, 1);
    return 1;
  case ML_STATIC_NOT_FOUND: why = "not found"; break;
  case ML_STATIC_REDIRECT: why = "redirect"; break;
  case ML_STATIC_CLOSED: why = "closed"; break;
  default:
    lua_pushboolean(L, 0);
    if (rc == UV_ENOMEM)
      lua_pushliteral(L, "not enough memory");
    else
      lua_pushfstring(L, "static: %s", strerror(-rc));
    return 2;
  }
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* The file is found (or not), on the loop: answer, and either wait on for
 * the body or resume the handler now. */
static void static_found(ml_static_lookup *l, void *ud) {
  static_wait *op = ud;
  ml_co *co;
  int rc;
  op->l = NULL;
  op->answering = 1;
  rc = ml_static_answer(op->c, l, static_done, op, &op->s);
  op->answering = 0;
  if (op->cancelled) {                    /* the handler is gone */
    if (rc == ML_STATIC_PENDING)
      ml_static_cancel(op->s);
    free(op);
    return;
  }
  if (rc == ML_STATIC_PENDING)
    return;                               /* static_done resumes */
  co = ml_sched_unpark(&op->w);
  free(op);
  ml_sched_resume(co, push_result(co->L, rc));
}

/* The client left: the lookup or the send stops; no resume. */
static void static_cancel(ml_wait *w) {
  static_wait *op = (static_wait *)w;
  if (op->answering) {       /* a failed first write closed the conn: */
    op->cancelled = 1;       /* static_found ends it on its way out */
    return;
  }
  if (op->l != NULL)
    ml_static_lookup_cancel(op->l);
  else
    ml_static_cancel(op->s);
  free(op);
}

/* The wait's values: a failure of ours (false, message) raises here, in
 * the handler, where the 500 is made. */
static int static_resumed(lua_State *L, int status, lua_KContext ctx) {
  int n = lua_gettop(L) - (int)ctx;
  ML_UNUSED(status);
  if (n == 2 && lua_isboolean(L, -2) && !lua_toboolean(L, -2))
    return luaL_error(L, "%s", lua_tostring(L, -1));
  return n;
}

/*
 * core.static_send(req, root, path, slash) (yields) -> true once the
 * response is sent (200, 206, 304 or 416), or nil and "not found",
 * "redirect" (a directory asked for without its slash) or "closed".
 * 'path' is the part of the request's path under the prefix, decoded;
 * 'slash' says the request's path ended with '/'.  Raises for a failure
 * that is not the client's (no descriptors left), which is then a 500.
 * The file is looked for on libuv's thread pool: a slow disk holds up
 * this handler only.
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
    return ml_lib_fail(L, "closed");
  co = ml_sched_current(L);
  if (ml_conn_req(c)->responded)
    return luaL_error(L, "the response was already sent");
  if ((op = calloc(1, sizeof *op)) == NULL)
    return luaL_error(L, "not enough memory");
  op->c = c;
  rc = ml_static_lookup_start(co->gen->loop, root, rel, n, slash,
                              static_found, op, &op->l);
  if (rc != 0) {
    free(op);
    return luaL_error(L, "not enough memory");
  }
  ml_sched_park(co, &op->w, static_cancel);
  return ml_sched_yieldk(L, lua_gettop(L), static_resumed);
}

void ml_lib_static_register(lua_State *L) {
  lua_pushcfunction(L, static_send);
  lua_setfield(L, -2, "static_send");
}
