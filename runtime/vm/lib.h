/*
 * lib.h - the C side of what Lua sees as the module "moonlet.core".  Each
 * lib_*.c file adds its functions to that table with one register call.
 */
#ifndef ML_LIB_H
#define ML_LIB_H

#include <lua.h>
#include "vm/sched.h"
#include "net/stream.h"

/* Metatables the Lua side gives the core, kept in the registry under
 * these names, as Lua's own libraries keep theirs: moonlet.abort's errors
 * (moonlet.response; the watchdog raises them too) and case-insensitive
 * headers tables (moonlet.request). */
#define ML_ABORT_MT "moonlet.Abort"
#define ML_HEADERS_MT "moonlet.Headers"

/* Pushes the error moonlet.abort(status, msg) raises, for C to raise
 * (lua_error) after adding to it, say, its "headers" (lib_core.c). */
void ml_lib_push_abort(lua_State *L, int status, const char *msg);

/* Opens "moonlet.core" (lib_core.c), calling the register functions. */
int luaopen_moonlet_core(lua_State *L);

/* Returns nil and 'why' from a Lua function: an expected failure, one
 * of the short reasons a caller can test ("closed", "timeout"). */
static inline int ml_lib_fail(lua_State *L, const char *why) {
  lua_pushnil(L);
  lua_pushstring(L, why);
  return 2;
}

/* Adds the request functions to the table on top (lib_req.c). */
void ml_lib_req_register(lua_State *L);

/*
 * Serves the connection's complete request on g: routes it, then runs the
 * app's dispatch in a coroutine with a new request object and the route's
 * arguments; conn.c hears of its end through ml_conn_served.  0, or
 * UV_ENOMEM (lib_req.c).
 */
struct ml_conn;
int ml_lib_req_serve(ml_gen *g, struct ml_conn *c);

/* The connection closes while its request is served: the request object
 * answers "finished" and the coroutine serving it is cancelled
 * (lib_req.c). */
void ml_lib_req_abort(struct ml_conn *c);

/*
 * The handler of the request whose object is at 1 returned the values at
 * idx, idx + 1, idx + 2: a string or a plain table (JSON), then perhaps
 * a status and a headers table.  Sends that response straight from C and
 * returns 1 (also when its client has gone); 0 when the values are
 * anything else or cannot be sent, for moonlet.app to answer (lib_req.c).
 */
int ml_lib_req_answer(lua_State *L, int idx);

/* The connection behind the request object at idx (raises if it is not
 * one), or NULL once its request is finished (lib_req.c). */
struct ml_conn *ml_lib_req_conn(lua_State *L, int idx);

/* The generation serving that request, or NULL once it is finished
 * (lib_req.c). */
ml_gen *ml_lib_req_gen(lua_State *L, int idx);

/* Adds core.future() and core.spawn() (lib_task.c). */
void ml_lib_task_register(lua_State *L);

/* Adds core.http_request() (lib_http.c). */
void ml_lib_http_register(lua_State *L);

/* Adds a header to the headers table on top (lib_http.c): the name
 * lower-cased, a repeated name's values joined (ml_lib_http_separator). */
void ml_lib_http_header(lua_State *L, const char *n, size_t nlen,
                        const char *v, size_t vlen);

/* What joins a header's repeats: "; " for Cookie (RFC 6265 5.4: a comma
 * may be in a cookie's value), ", " for the others (lib_http.c). */
const char *ml_lib_http_separator(const char *name, size_t len);

/* Adds core.thread_run(), moonlet.thread.run (lib_thread.c). */
void ml_lib_thread_register(lua_State *L);

/* Adds core.shared, moonlet.shared's functions, and core.shared_size,
 * the app's shared_size option (lib_shared.c). */
void ml_lib_shared_register(lua_State *L);

/* Adds core.draining(), moonlet.draining (lib_drain.c). */
void ml_lib_drain_register(lua_State *L);

/* Adds core.static_send(), app:static's files (lib_static.c). */
void ml_lib_static_register(lua_State *L);

/* Adds core.pg_* and core.pg_db_mt, moonlet.pg's C side (lib_pg.c). */
void ml_lib_pg_register(lua_State *L);

/* Adds core.redis_*, moonlet.redis's C side (lib_redis.c). */
void ml_lib_redis_register(lua_State *L);

/* Adds core.tcp_connect and core.tcp_socket_mt, moonlet.tcp's C side
 * (lib_tcp.c). */
void ml_lib_tcp_register(lua_State *L);

/* Adds core.ws_upgrade() and the WebSocket object (lib_ws.c). */
void ml_lib_ws_register(lua_State *L);

/* The handler of a request upgraded to a WebSocket ended with 'status':
 * closes it (1000, or 1011 from 500 on); core.send's results on L
 * (lib_ws.c). */
int ml_lib_ws_finish(lua_State *L, struct ml_conn *c, int status);

/* Fills o, a client's TLS options, from the table at idx (verify,
 * ca_file, cert, key: the tls option of moonlet.http, moonlet.ws,
 * moonlet.redis and moonlet.tcp), or the defaults (verify on) when it is
 * not a table; the strings stay the table's (lib_tls.c). */
void ml_lib_tls_opts(lua_State *L, int idx, ml_tls_opts *o);

/* Adds core.router() to the table on top (lib_router.c). */
void ml_lib_router_register(lua_State *L);

/* The router behind the userdata at idx, or NULL (lib_router.c). */
ml_router *ml_lib_router_get(lua_State *L, int idx);

#endif
