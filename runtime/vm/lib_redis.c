/*
 * lib_redis.c - the C side of moonlet.redis: per generation and URL, one
 * shared connection that every coroutine's commands are pipelined on,
 * and a pool of dedicated connections for what cannot share one
 * (blocking commands, MULTI/EXEC/WATCH, SUBSCRIBE).  Commands park their
 * coroutine until the reply; replies become Lua values here.  The wire is
 * net/redis.c's; URLs, methods, pipelines and transactions are
 * lua/moonlet/redis.lua's.
 *
 * Ownership: the generation's part (gen.h) owns the pools, a pool its
 * connections; a closed pool that still has a connection lent out goes
 * with the last of them.  A dedicated connection lent out is
 * held by a lease (a Lua userdata) that the coroutine which took it gives
 * back when it ends (an ml_defer), if not before.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "net/redis.h"
#include "net/stream.h"
#include "vm/gen.h"
#include "vm/lib.h"
#include "base/util.h"

#define POOL_MT "moonlet.redis.Pool"
#define LEASE_MT "moonlet.redis.Conn"
#define MAX_IDLE 16                /* idle dedicated connections per URL */
#define MAX_PUSHED 10000           /* queued messages per subscriber */

typedef struct rpool rpool;
typedef struct rconn rconn;
typedef struct rlease rlease;

/* The generation's pools: a part of it, made on first use. */
typedef struct {
  ml_part part;
  rpool *pools;
} rstate;

/* A queued push message. */
typedef struct pushed {
  struct pushed *next;
  ml_resp *v;
} pushed;

/* A parked coroutine: a command, a wait for a connection, a receive. */
typedef struct {
  ml_wait w;
  ml_ctimer timer;
  ml_redis_slot *slot;           /* a command's, until its reply */
  rconn *rc;
  int kind;
} rop;

enum { OP_CALL, OP_RECV };

/* One connection; owned by its pool. */
struct rconn {
  ml_redis *c;
  rpool *pool;
  rconn *next;                   /* the pool's idle list */
  rlease *lease;                 /* a dedicated one's holder */
  rop *recv;                     /* a subscriber's receive */
  pushed *first, *last;
  int npushed;
  unsigned dedicated : 1;
  unsigned subscriber : 1;
  unsigned broken : 1;
  unsigned opening : 1;          /* inside ml_redis_new */
  unsigned dirty : 1;            /* MULTI or WATCH left open: close it */
};

/* The connections to one server (host, port, user, password, db). */
struct rpool {
  ml_gen *gen;
  rpool *next;
  int nconns;                    /* connections open or opening */
  int ud_ref;                    /* its userdata, emptied when it closes */
  int closed;
  rconn *shared;                 /* the pipelined one, or NULL */
  rconn *idle;                   /* dedicated, idle */
  int nidle;
  ml_redis_opts o;
  char *key;                     /* what identifies it */
};

struct rlease {
  rconn *rc;                     /* NULL once given back */
  ml_defer defer;
};

/*
** {======================================================
** Replies as Lua values
** =======================================================
*/

/* Pushes v: status and bulk strings as strings, integers, nil as
 * moonlet.null, arrays as lists; an error inside an array (EXEC's, a
 * pipeline's) as {false, message}. */
static void push_value(lua_State *L, const ml_resp *v) {
  size_t i;
  luaL_checkstack(L, 4, "reply nested too deep");
  switch (v->type) {
  case ML_RESP_INTEGER:
    lua_pushinteger(L, (lua_Integer)v->integer);
    return;
  case ML_RESP_NIL:
    lua_pushlightuserdata(L, NULL);
    return;
  case ML_RESP_ARRAY:
    lua_createtable(L, (int)v->len, 0);
    for (i = 0; i < v->len; i++) {
      push_value(L, v->elements[i]);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return;
  case ML_RESP_ERROR:
    lua_createtable(L, 2, 0);
    lua_pushboolean(L, 0);
    lua_rawseti(L, -2, 1);
    lua_pushlstring(L, v->str, v->len);
    lua_rawseti(L, -2, 2);
    return;
  default:
    lua_pushlstring(L, v->str, v->len);
  }
}

/* In protected mode: the reply (light userdata) as what a call returns:
 * the value, or nil and the server's message. */
static int push_reply_p(lua_State *L) {
  const ml_resp *v = lua_touserdata(L, 1);
  lua_settop(L, 0);
  if (v->type == ML_RESP_ERROR) {
    lua_pushnil(L);
    lua_pushlstring(L, v->str, v->len);
    return 2;
  }
  push_value(L, v);
  return 1;
}

/* Moves onto co's stack what the reply v (freed here) or err gives. */
static int push_outcome(ml_gen *g, ml_co *co, ml_resp *v, const char *err) {
  lua_State *L = g->L;           /* calls run on the main thread */
  int top = lua_gettop(L), n;
  if (v == NULL) {
    lua_pushnil(co->L);
    lua_pushstring(co->L, err);
    return 2;
  }
  lua_pushcfunction(L, push_reply_p);
  lua_pushlightuserdata(L, v);
  if (lua_pcall(L, 1, LUA_MULTRET, 0) != LUA_OK) {
    lua_settop(L, top);
    lua_pushnil(L);
    lua_pushliteral(L, "not enough memory");
  }
  ml_resp_free(v);
  n = lua_gettop(L) - top;
  lua_xmove(L, co->L, n);
  return n;
}

/* Resumes co now, or on the next turn from inside a coroutine. */
static void wake(ml_co *co, int n) {
  if (co->gen->running != NULL)
    ml_sched_resume_soon(co, n);
  else
    ml_sched_resume(co, n);
}

static void op_free(rop *o) {
  ml_clock_timer_stop(&o->timer);
  free(o);
}

/*
 * Ends the wait o with nil, err, resuming its coroutine on the next turn:
 * a failure comes while a connection is being torn down, and a handler
 * resumed in its midst could give back, and so free, what the caller
 * still reads.
 */
static void op_fail(rop *o, const char *err) {
  ml_co *co = ml_sched_unpark(&o->w);
  op_free(o);
  if (co != NULL)
    ml_sched_resume_soon(co, ml_lib_fail(co->L, err));
}

/* }====================================================== */

/*
** {======================================================
** Connections
** =======================================================
*/

static void pushed_clear(rconn *rc) {
  pushed *p;
  while ((p = rc->first) != NULL) {
    rc->first = p->next;
    ml_resp_free(p->v);
    free(p);
  }
  rc->last = NULL;
  rc->npushed = 0;
}

static void pool_free(rpool *p) {
  if (p->o.tls != NULL)
    ml_tls_free(p->o.tls);       /* its streams keep what they need */
  free((char *)p->o.host);
  free((char *)p->o.user);
  free((char *)p->o.password);
  free(p->key);
  free(p);
}

/* Frees rc's memory and its unread messages; a closed pool goes with
 * its last connection. */
static void rconn_dispose(rconn *rc) {
  rpool *p = rc->pool;
  pushed_clear(rc);
  free(rc);
  if (--p->nconns == 0 && p->closed)
    pool_free(p);
}

/* Closes rc and frees it; its lease, if any, sees "closed". */
static void rconn_free(rconn *rc, const char *err) {
  rpool *p = rc->pool;
  rop *r = rc->recv;
  if (p->shared == rc)
    p->shared = NULL;
  if (rc->lease != NULL)
    rc->lease->rc = NULL;
  rc->recv = NULL;
  if (rc->c != NULL)
    ml_redis_close(rc->c);       /* slots fail with "closed" from here */
  rconn_dispose(rc);
  if (r != NULL)
    op_fail(r, err);
}

/* A command's reply: resume its caller.  A failure (every slot of a
 * connection that broke or closed) resumes it on the next turn. */
static void on_reply(ml_redis *c, void *slot_ud, ml_resp *v,
                     const char *err) {
  rop *o = slot_ud;
  ml_co *co;
  ML_UNUSED(c);
  o->slot = NULL;
  if (v == NULL) {
    op_fail(o, err);
    return;
  }
  co = ml_sched_unpark(&o->w);
  op_free(o);
  if (co == NULL) {              /* cannot happen: a cancel forgets */
    ml_resp_free(v);
    return;
  }
  wake(co, push_outcome(co->gen, co, v, NULL));
}

static void on_push(ml_redis *c, ml_resp *v, void *ud) {
  rconn *rc = ud;
  pushed *p;
  rop *r;
  ML_UNUSED(c);
  if ((r = rc->recv) != NULL) {
    ml_co *co = ml_sched_unpark(&r->w);
    rc->recv = NULL;
    op_free(r);
    if (co != NULL) {
      wake(co, push_outcome(co->gen, co, v, NULL));
      return;
    }
  }
  if (rc->npushed >= MAX_PUSHED || (p = malloc(sizeof *p)) == NULL) {
    ml_resp_free(v);             /* nobody reads: drop the newest */
    return;
  }
  p->v = v;
  p->next = NULL;
  if (rc->last != NULL)
    rc->last->next = p;
  else
    rc->first = p;
  rc->last = p;
  rc->npushed++;
}

/* A broken connection nobody holds: out of the idle list (a dedicated
 * one) and freed. */
static void drop_unleased(rconn *rc) {
  rconn **pp;
  if (rc->dedicated)
    for (pp = &rc->pool->idle; *pp != NULL; pp = &(*pp)->next)
      if (*pp == rc) {
        *pp = rc->next;
        rc->pool->nidle--;
        break;
      }
  rconn_dispose(rc);
}

/* The connection failed: it is dropped (a leased one when its lease
 * ends; one still opening by rconn_open); the next command opens another,
 * so a restarted server is found again.  Its slots have failed already;
 * a subscriber's receive fails here, last. */
static void on_broken(ml_redis *c, const char *err, void *ud) {
  rconn *rc = ud;
  rop *r = rc->recv;
  ML_UNUSED(c);
  rc->broken = 1;
  rc->c = NULL;                  /* it frees itself once closed */
  rc->recv = NULL;
  if (rc->pool->shared == rc)
    rc->pool->shared = NULL;
  if (!rc->opening && rc->lease == NULL)
    drop_unleased(rc);
  if (r != NULL)
    op_fail(r, err);
}

static const ml_redis_cbs callbacks = { on_reply, on_push, on_broken };

/* Virtual time when the state has it. */
static ml_clock *gen_clock(ml_gen *g) {
  return g->clock;
}

static rconn *rconn_open(rpool *p, uint64_t connect_ms) {
  rconn *rc = calloc(1, sizeof *rc);
  if (rc == NULL)
    return NULL;
  rc->pool = p;
  p->o.connect_ms = connect_ms;
  rc->opening = 1;
  rc->c = ml_redis_new(p->gen->loop, gen_clock(p->gen), &p->o, &callbacks,
                       rc);
  rc->opening = 0;
  if (rc->c == NULL || rc->broken) {   /* out of memory, or failed at once */
    free(rc);
    return NULL;
  }
  p->nconns++;
  return rc;
}

/* }====================================================== */

/*
** {======================================================
** Pools and the generation's state
** =======================================================
*/

/*
 * The part closes: the shared connections and the idle ones close now
 * (commands still waiting get "closed"); a connection lent out closes
 * when it is given back, and its pool goes with it.  Lua's pool objects
 * are emptied: they answer "closed".
 */
static void part_close(ml_part *part) {
  rstate *st = (rstate *)part;
  lua_State *L = part->gen->L;
  rpool *p, *next;
  rconn *rc;
  for (p = st->pools; p != NULL; p = next) {
    next = p->next;
    p->closed = 1;
    lua_rawgeti(L, LUA_REGISTRYINDEX, p->ud_ref);
    *(rpool **)lua_touserdata(L, -1) = NULL;
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, p->ud_ref);
    p->nconns++;                   /* held while closing */
    if (p->shared != NULL)
      rconn_free(p->shared, "closed");
    while ((rc = p->idle) != NULL) {
      p->idle = rc->next;
      p->nidle--;
      rconn_free(rc, "closed");
    }
    if (--p->nconns == 0)
      pool_free(p);
  }
  free(st);
}

static const ml_part_kind redis_kind = { "redis pools", NULL, part_close };

static rstate *state_get(ml_gen *g) {
  rstate *st = (rstate *)ml_gen_part(g, &redis_kind);
  if (st == NULL && (st = calloc(1, sizeof *st)) != NULL)
    ml_gen_attach(g, &st->part, &redis_kind);
  return st;
}

/* A client TLS context from the options table at idx (§7's: verify,
 * ca_file, cert, key); NULL with the reason in err. */
static ml_tls *tls_from(lua_State *L, int idx, char *err, size_t errlen) {
  ml_tls_opts o;
  ml_lib_tls_opts(L, idx, &o);
  return ml_tls_new(&o, err, errlen);
}

static char *opt_dup(lua_State *L, int idx) {
  const char *s = luaL_optstring(L, idx, NULL);
  return s != NULL ? strdup(s) : NULL;
}

/*
 * core.redis_pool(key, host, port, user, password, db [, tls]) -> pool
 * | nil, err: the state's pool for that server, made on first use; 'tls'
 * (true or §7's options table) for rediss://.  The userdata only points
 * at it; the part's close empties it.
 */
static int redis_pool(lua_State *L) {
  const char *key = luaL_checkstring(L, 1);
  const char *host = luaL_checkstring(L, 2);
  lua_Integer port = luaL_checkinteger(L, 3);
  lua_Integer db = luaL_optinteger(L, 6, 0);
  ml_gen *g;
  rstate *st;
  rpool *p, **ud;
  luaL_argcheck(L, port > 0 && port < 65536, 3, "port out of range");
  luaL_argcheck(L, db >= 0 && db < 1 << 20, 6, "database out of range");
  g = ml_sched_current(L)->gen;
  if ((st = state_get(g)) == NULL)
    return luaL_error(L, "not enough memory");
  for (p = st->pools; p != NULL; p = p->next)
    if (strcmp(p->key, key) == 0) {
      lua_rawgeti(L, LUA_REGISTRYINDEX, p->ud_ref);
      return 1;
    }
  if ((p = calloc(1, sizeof *p)) == NULL)
    return luaL_error(L, "not enough memory");
  ud = lua_newuserdatauv(L, sizeof *ud, 0);
  *ud = NULL;
  luaL_setmetatable(L, POOL_MT);
  {
    p->gen = g;
    p->key = strdup(key);
    p->o.host = strdup(host);
    p->o.port = (int)port;
    p->o.user = opt_dup(L, 4);
    p->o.password = opt_dup(L, 5);
    p->o.db = (int)db;
  }
  if (lua_toboolean(L, 7)) {
    char err[256];
    if ((p->o.tls = tls_from(L, 7, err, sizeof err)) == NULL) {
      pool_free(p);
      lua_pushnil(L);
      lua_pushstring(L, err);
      return 2;
    }
  }
  if (p->key == NULL || p->o.host == NULL) {
    pool_free(p);
    return luaL_error(L, "not enough memory");
  }
  p->next = st->pools;
  st->pools = p;
  lua_pushvalue(L, -1);
  p->ud_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  *ud = p;
  return 1;
}

/* The pool at idx, or NULL once its generation's part has closed. */
static rpool *check_pool(lua_State *L, int idx) {
  return *(rpool **)luaL_checkudata(L, idx, POOL_MT);
}

/* Pushes nil, "closed" for a pool that has closed. */
static int closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/* }====================================================== */

/*
** {======================================================
** Commands
** =======================================================
*/

static uint64_t to_ms(lua_State *L, int idx) {
  lua_Number t = luaL_checknumber(L, idx);
  luaL_argcheck(L, t >= 0 && t < 1e9, idx, "timeout out of range");
  return (uint64_t)(t * 1000 + 0.5);
}

/* Formats the arguments from idx on as one command, pushed as a
 * string.  Strings go as they are, numbers as Lua writes them. */
static void format(lua_State *L, int idx) {
  int n = lua_gettop(L) - idx + 1, i;
  const char *argv[256];
  size_t lens[256];
  ml_buf b = { NULL, 0, 0 };
  luaL_argcheck(L, n >= 1, idx, "a command name expected");
  luaL_argcheck(L, n <= 256, idx + 256, "too many arguments (256 at most)");
  for (i = 0; i < n; i++) {
    int t = lua_type(L, idx + i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      luaL_argerror(L, idx + i, "a string or a number expected");
    argv[i] = lua_tolstring(L, idx + i, &lens[i]);
  }
  if (ml_resp_format(&b, n, argv, lens) != 0) {
    ml_buf_free(&b);
    luaL_error(L, "not enough memory");
  }
  lua_pushlstring(L, b.data, b.len);
  ml_buf_free(&b);
}

/* core.redis_format(name, ...) -> the command's RESP bytes. */
static int redis_format(lua_State *L) {
  format(L, 1);
  return 1;
}

static void call_timeout(ml_ctimer *t) {
  rop *o = container_of(t, rop, timer);
  ml_co *co = ml_sched_unpark(&o->w);
  rconn *rc = o->rc;
  if (o->slot != NULL)
    ml_redis_forget(o->slot);    /* the reply will be dropped */
  if (rc->dedicated && !rc->broken)
    rc->broken = 1;              /* not lent again: a late reply */
  free(o);                       /* fired: already off the clock */
  if (co != NULL) {
    lua_pushnil(co->L);
    lua_pushliteral(co->L, "timeout");
    ml_sched_resume(co, 2);
  }
}

/* A command's coroutine was cancelled: on a shared connection only its
 * slot is marked; a dedicated one (a blocking command) is closed. */
static void call_cancel(ml_wait *w) {
  rop *o = (rop *)w;
  rconn *rc = o->rc;
  if (o->slot != NULL)
    ml_redis_forget(o->slot);
  op_free(o);
  if (rc->dedicated && rc->lease != NULL)
    rc->broken = 1;              /* closed when its lease ends */
  else if (rc->dedicated)
    ml_redis_close(rc->c);
}

/* Sends the bytes at idx on rc and parks the caller for n replies. */
static int send_and_wait(lua_State *L, ml_co *co, rconn *rc, int idx,
                         int n, uint64_t ms, uint64_t conn_ms) {
  size_t len;
  const char *cmd = lua_tolstring(L, idx, &len);
  rop *o = calloc(1, sizeof *o);
  if (o == NULL)
    return luaL_error(L, "not enough memory");
  ml_clock_timer_init_on(co->gen->clock, &o->timer);
  o->rc = rc;
  o->kind = OP_CALL;
  if ((o->slot = ml_redis_send(rc->c, cmd, len, n, conn_ms, o)) == NULL) {
    free(o);
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (ms > 0 && ml_clock_timer_start(&o->timer, call_timeout, ms, 0) != 0) {
    ml_redis_forget(o->slot);
    free(o);
    return luaL_error(L, "not enough memory");
  }
  ml_sched_park(co, &o->w, call_cancel);
  return ml_sched_yield(L);
}

/* The pool's shared connection, opened (or opened again) if needed. */
static rconn *shared(rpool *p, uint64_t ms) {
  if (p->shared != NULL && (p->shared->broken || !ml_redis_ok(p->shared->c)))
    p->shared = NULL;
  if (p->shared == NULL && (p->shared = rconn_open(p, ms)) != NULL)
    ml_redis_ref(p->shared->c, 0);   /* an idle connection holds no loop */
  return p->shared;
}

/*
 * core.redis_call(pool, timeout, bytes [, n]) -> reply | nil, err: the
 * command (or n pipelined commands) on the shared connection, with what
 * else is sent this loop turn.
 */
static int redis_call(lua_State *L) {
  rpool *p = check_pool(L, 1);
  uint64_t ms = to_ms(L, 2);
  lua_Integer n = luaL_optinteger(L, 4, 1);
  ml_co *co;
  rconn *rc;
  luaL_checktype(L, 3, LUA_TSTRING);
  luaL_argcheck(L, n >= 1 && n <= 1 << 20, 4, "count out of range");
  co = ml_sched_current(L);
  if (p == NULL)
    return closed(L);
  if ((rc = shared(p, ms)) == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "connect: cannot start");
    return 2;
  }
  return send_and_wait(L, co, rc, 3, (int)n, ms, ms);
}

/* core.redis_ready(pool): the shared connection is up and authenticated
 * (connect then has nothing to check). */
static int redis_ready(lua_State *L) {
  rpool *p = check_pool(L, 1);
  lua_pushboolean(L, p != NULL && p->shared != NULL && !p->shared->broken &&
                     ml_redis_ready(p->shared->c));
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** Dedicated connections: blocking commands, transactions, subscribers
** =======================================================
*/

static void lease_end(rlease *d);

static void lease_deferred(ml_defer *df) {
  lease_end(container_of(df, rlease, defer));
}

/* Gives the connection back: to the idle list when it is sound and
 * nothing is pending, else closed. */
static void lease_end(rlease *d) {
  rconn *rc = d->rc;
  rpool *p;
  ml_sched_undefer(&d->defer);
  if (rc == NULL)
    return;
  d->rc = NULL;
  rc->lease = NULL;
  p = rc->pool;
  if (rc->c == NULL) {           /* it broke while lent: ours to free */
    rconn_dispose(rc);
    return;
  }
  if (rc->broken || rc->dirty || rc->subscriber || !ml_redis_ok(rc->c) ||
      ml_redis_waiting(rc->c) > 0 || p->nidle >= MAX_IDLE) {
    rconn_free(rc, "closed");
    return;
  }
  ml_redis_ref(rc->c, 0);
  rc->next = p->idle;
  p->idle = rc;
  p->nidle++;
}

static void lease_push(lua_State *L, ml_co *co, rconn *rc) {
  rlease *d = lua_newuserdatauv(L, sizeof *d, 0);
  memset(d, 0, sizeof *d);
  luaL_setmetatable(L, LEASE_MT);
  d->rc = rc;
  rc->lease = d;
  ml_redis_ref(rc->c, 1);
  ml_sched_defer(co, &d->defer, lease_deferred);
}

static rlease *check_lease(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, LEASE_MT);
}

/*
 * core.redis_take(pool, timeout [, subscriber]) -> conn: a dedicated
 * connection, idle from the pool or new; a subscriber's replies are
 * pushes and it is never pooled again.
 */
static int redis_take(lua_State *L) {
  rpool *p = check_pool(L, 1);
  uint64_t ms = to_ms(L, 2);
  int sub = lua_toboolean(L, 3);
  ml_co *co = ml_sched_current(L);
  rconn *rc;
  if (p == NULL)
    return closed(L);
  while (!sub && (rc = p->idle) != NULL) {
    p->idle = rc->next;
    p->nidle--;
    if (ml_redis_ok(rc->c) && !rc->broken) {
      lease_push(L, co, rc);
      return 1;
    }
    rconn_free(rc, "closed");
  }
  if ((rc = rconn_open(p, ms)) == NULL) {
    lua_pushnil(L);
    lua_pushliteral(L, "connect: cannot start");
    return 2;
  }
  rc->dedicated = 1;
  rc->subscriber = sub != 0;
  if (sub)
    ml_redis_set_push(rc->c, 1);
  lease_push(L, co, rc);
  return 1;
}

/* core.redis_send(conn, timeout, bytes [, n]) -> reply | nil, err: on a
 * dedicated connection; n 0 (a subscriber's SUBSCRIBE) waits for
 * nothing. */
static int redis_send(lua_State *L) {
  rlease *d = check_lease(L, 1);
  uint64_t ms = to_ms(L, 2);
  lua_Integer n = luaL_optinteger(L, 4, 1);
  size_t len;
  const char *cmd = luaL_checklstring(L, 3, &len);
  ml_co *co = ml_sched_current(L);
  if (d->rc == NULL || d->rc->broken || !ml_redis_ok(d->rc->c)) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (n == 0) {
    if (ml_redis_send(d->rc->c, cmd, len, 0, 0, NULL) == NULL &&
        !ml_redis_ok(d->rc->c)) {
      lua_pushnil(L);
      lua_pushliteral(L, "closed");
      return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
  }
  return send_and_wait(L, co, d->rc, 3, (int)n, ms, 0);
}

static void recv_timeout(ml_ctimer *t) {
  rop *o = container_of(t, rop, timer);
  ml_co *co = ml_sched_unpark(&o->w);
  o->rc->recv = NULL;
  free(o);
  if (co != NULL) {
    lua_pushnil(co->L);
    lua_pushliteral(co->L, "timeout");
    ml_sched_resume(co, 2);
  }
}

static void recv_cancel(ml_wait *w) {
  rop *o = (rop *)w;
  o->rc->recv = NULL;
  op_free(o);
}

/* core.redis_receive(conn [, timeout]) -> message (a list) | nil, err:
 * the next push of a subscriber. */
static int redis_receive(lua_State *L) {
  rlease *d = check_lease(L, 1);
  lua_Number t = luaL_optnumber(L, 2, -1);
  ml_co *co = ml_sched_current(L);
  rconn *rc = d->rc;
  pushed *p;
  rop *o;
  luaL_argcheck(L, lua_isnoneornil(L, 2) || (t >= 0 && t < 1e9), 2,
                "timeout out of range");
  if (rc != NULL && (p = rc->first) != NULL) {
    rc->first = p->next;
    if (rc->first == NULL)
      rc->last = NULL;
    rc->npushed--;
    push_value(L, p->v);
    ml_resp_free(p->v);
    free(p);
    return 1;
  }
  if (rc == NULL || rc->broken || !ml_redis_ok(rc->c)) {
    lua_pushnil(L);
    lua_pushliteral(L, "closed");
    return 2;
  }
  if (rc->recv != NULL)
    return luaL_error(L, "another coroutine is receiving here");
  if ((o = calloc(1, sizeof *o)) == NULL)
    return luaL_error(L, "not enough memory");
  ml_clock_timer_init_on(co->gen->clock, &o->timer);
  o->rc = rc;
  o->kind = OP_RECV;
  if (t >= 0 && ml_clock_timer_start(&o->timer, recv_timeout,
                                     (uint64_t)(t * 1000 + 0.5), 0) != 0) {
    free(o);
    return luaL_error(L, "not enough memory");
  }
  rc->recv = o;
  ml_sched_park(co, &o->w, recv_cancel);
  return ml_sched_yield(L);
}

/* conn:close(): back to the pool (a subscriber's is closed). */
static int conn_close(lua_State *L) {
  lease_end(check_lease(L, 1));
  return 0;
}

/* conn:discard(): closed, never pooled (a transaction left open). */
static int conn_discard(lua_State *L) {
  rlease *d = check_lease(L, 1);
  if (d->rc != NULL)
    d->rc->broken = 1;
  lease_end(d);
  return 0;
}

/* conn:dirty(on): a transaction's state is open on it (MULTI, WATCH):
 * if it is let go so, it is closed rather than pooled. */
static int conn_dirty(lua_State *L) {
  rlease *d = check_lease(L, 1);
  if (d->rc != NULL)
    d->rc->dirty = lua_toboolean(L, 2);
  return 0;
}

/* core.redis_stats(pool) -> shared (0 or 1), idle dedicated. */
static int redis_stats(lua_State *L) {
  rpool *p = check_pool(L, 1);
  lua_pushinteger(L, p != NULL && p->shared != NULL);
  lua_pushinteger(L, p != NULL ? p->nidle : 0);
  return 2;
}

/* }====================================================== */

static const luaL_Reg conn_methods[] = {
  {"close", conn_close},
  {"discard", conn_discard},
  {"dirty", conn_dirty},
  {NULL, NULL}
};

static const luaL_Reg redis_funcs[] = {
  {"redis_pool", redis_pool},
  {"redis_format", redis_format},
  {"redis_call", redis_call},
  {"redis_ready", redis_ready},
  {"redis_take", redis_take},
  {"redis_send", redis_send},
  {"redis_receive", redis_receive},
  {"redis_stats", redis_stats},
  {NULL, NULL}
};

/* Adds the redis_* functions to the table on top. */
void ml_lib_redis_register(lua_State *L) {
  luaL_newmetatable(L, POOL_MT);
  lua_pop(L, 1);
  luaL_newmetatable(L, LEASE_MT);
  luaL_newlib(L, conn_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, conn_close);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, conn_close);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
  luaL_setfuncs(L, redis_funcs, 0);
}
