/*
 * lib_tcp.c - the C side of moonlet.tcp: cosockets in OpenResty's shape.
 * A socket's connect, send and receive park their coroutine until
 * net/tcp.c calls back or the deadline (settimeout) passes; receive's
 * patterns ("*l", "*a", a count) are matched against the connection's
 * buffer here.  setkeepalive puts the connection in the generation's
 * pool for its host and port, where connect finds it again.
 *
 * Ownership: a socket (Lua userdata) owns its connection; a pooled
 * connection is the pool's (the generation's part).  A socket is closed
 * when the coroutine that made it ends, as OpenResty's are at the end of
 * their request, unless it was put in the pool first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/clock.h"
#include "net/stream.h"
#include "net/tcp.h"
#include "vm/gen.h"
#include "vm/lib.h"
#include "base/util.h"

#define SOCK_MT "moonlet.tcp.Socket"
#define POOL_SIZE 30                 /* idle connections per host:port */
#define IDLE_MS 60000                /* then closed */

typedef struct tpool tpool;
typedef struct tidle tidle;
typedef struct tsock tsock;

/* What a parked coroutine waits for. */
enum { OP_CONNECT, OP_SEND, OP_LINE, OP_COUNT, OP_ALL };

typedef struct {
  ml_wait w;
  ml_ctimer timer;
  tsock *s;
  int kind;
  size_t n;                          /* OP_COUNT: bytes wanted; OP_SEND:
                                        the length sent */
} top;

/* A socket: the userdata itself. */
struct tsock {
  ml_tcp *t;                         /* NULL once closed */
  top *rop, *wop;                    /* a reader and a writer may wait */
  uint64_t timeout_ms;
  int reused;                        /* times taken from the pool */
  ml_defer defer;                    /* closed when its coroutine ends */
  char key[600];                     /* its pool: host, port, TLS */
};

/* A pooled connection. */
struct tidle {
  ml_tcp *t;
  tpool *pool;
  tidle *next, *prev;
  ml_ctimer timer;                   /* its idle deadline */
  int reused;
};

struct tpool {
  tpool *next;
  tidle *idle;
  int nidle;
  char key[600];
};

/* A client TLS context, made once per set of options. */
typedef struct tctx {
  struct tctx *next;
  ml_tls *tls;
  char key[];
} tctx;

/* The generation's pools and TLS contexts: a part of it, made on first
 * use. */
typedef struct {
  ml_part part;
  tpool *pools;
  tctx *ctxs;
} tstate;

static const ml_tcp_cbs sock_cbs;

/*
** {======================================================
** Parking and waking
** =======================================================
*/

static void op_free(top *o) {
  ml_clock_timer_stop(&o->timer);
  free(o);
}

/*
 * Ends o: its coroutine gets the value for its kind (true for a
 * connect, the length for a send, data for a receive), or nil, err and,
 * with 'partial', the data.  'take' bytes leave the buffer once they are
 * on the coroutine's stack, before it runs.
 */
static void op_end(top *o, const char *err, const char *data, size_t len,
                   int partial, size_t take) {
  ml_co *co = ml_sched_unpark(&o->w);
  tsock *s = o->s;
  int kind = o->kind, n = 1;
  size_t sent = o->n;
  if (o == s->rop)
    s->rop = NULL;
  if (o == s->wop)
    s->wop = NULL;
  op_free(o);
  if (co != NULL) {
    if (err != NULL) {
      lua_pushnil(co->L);
      lua_pushstring(co->L, err);
      n = 2;
      if (partial) {
        lua_pushlstring(co->L, data, len);
        n = 3;
      }
    } else if (kind == OP_CONNECT) {
      lua_pushboolean(co->L, 1);
    } else if (kind == OP_SEND) {
      lua_pushinteger(co->L, (lua_Integer)sent);
    } else {
      lua_pushlstring(co->L, data, len);
    }
  }
  if (take > 0 && s->t != NULL)
    ml_tcp_consume(s->t, take);
  if (co == NULL)
    return;
  if (co->gen->running != NULL)
    ml_sched_resume_soon(co, n);
  else
    ml_sched_resume(co, n);            /* last: it may close the socket */
}

static void op_timeout(ml_ctimer *tm);

static void op_cancel(ml_wait *w) {
  top *o = (top *)w;
  tsock *s = o->s;
  if (o == s->rop)
    s->rop = NULL;
  if (o == s->wop)
    s->wop = NULL;
  if (o->kind == OP_SEND || o->kind == OP_CONNECT) {
    if (s->t != NULL)                /* half sent: cannot be reused */
      ml_tcp_close(s->t);
    s->t = NULL;
  } else if (s->t != NULL && s->wop == NULL) {
    ml_tcp_read(s->t, 0);
  }
  op_free(o);
}

/* Parks the caller on a new op of this kind with the socket's timeout;
 * k, when not NULL, continues with the wake values above 'ctx'. */
static int park(lua_State *L, tsock *s, int kind, size_t n, lua_KContext ctx,
                lua_KFunction k) {
  ml_co *co = ml_sched_current(L);
  top *o = calloc(1, sizeof *o);
  if (o == NULL)
    return luaL_error(L, "not enough memory");
  o->s = s;
  o->kind = kind;
  o->n = n;
  ml_clock_timer_init_on(co->gen->clock, &o->timer);
  if (s->timeout_ms > 0 &&
      ml_clock_timer_start(&o->timer, op_timeout, s->timeout_ms, 0) != 0) {
    free(o);
    return luaL_error(L, "not enough memory");
  }
  if (kind == OP_SEND || kind == OP_CONNECT)
    s->wop = o;
  else
    s->rop = o;
  ml_sched_park(co, &o->w, op_cancel);
  return k != NULL ? ml_sched_yieldk(L, ctx, k) : ml_sched_yield(L);
}

/* }====================================================== */

/*
** {======================================================
** Receiving
** =======================================================
*/

/*
 * Whether the buffer answers a receive of this kind: 1 with the value's
 * bytes (*data, *len) and how many to take (*take); 0 to wait for more;
 * -1 when it never will (the peer ended): the rest is the partial.
 */
static int match(ml_tcp *t, int kind, size_t want, const char **data,
                 size_t *len, size_t *take) {
  size_t avail;
  const char *p = ml_tcp_data(t, &avail), *nl;
  *data = p;
  if (kind == OP_LINE && (nl = memchr(p, '\n', avail)) != NULL) {
    *take = (size_t)(nl - p) + 1;
    *len = *take - 1;
    if (*len > 0 && p[*len - 1] == '\r')
      (*len)--;
    return 1;
  }
  if (kind == OP_COUNT && avail >= want) {
    *len = *take = want;
    return 1;
  }
  if (ml_tcp_ended(t)) {
    *len = *take = avail;
    return kind == OP_ALL ? 1 : -1;
  }
  return 0;
}

/* Why a receive cannot be answered: "closed", or "tls: ..." when TLS
 * failed. */
static const char *end_reason(ml_tcp *t) {
  return ml_tcp_ended(t) == UV_EOF ? "closed" : ml_tcp_error(t);
}

/* Finishes the waiting reader if the buffer now answers it. */
static void try_reader(tsock *s) {
  top *o = s->rop;
  const char *data;
  size_t len, take;
  int m;
  if (o == NULL || s->t == NULL)
    return;
  if ((m = match(s->t, o->kind, o->n, &data, &len, &take)) == 0)
    return;
  ml_tcp_read(s->t, 0);
  op_end(o, m > 0 ? NULL : end_reason(s->t), data, len, 1, take);
}

static void op_timeout(ml_ctimer *tm) {
  top *o = container_of(tm, top, timer);
  tsock *s = o->s;
  ml_co *co = ml_sched_unpark(&o->w);
  int kind = o->kind;
  if (o == s->rop)
    s->rop = NULL;
  if (o == s->wop)
    s->wop = NULL;
  free(o);                           /* fired: off the clock */
  if (kind == OP_SEND || kind == OP_CONNECT) {
    if (s->t != NULL)                /* half sent or half open */
      ml_tcp_close(s->t);
    s->t = NULL;
  } else if (s->t != NULL) {
    ml_tcp_read(s->t, 0);
  }
  if (co == NULL)
    return;
  lua_pushnil(co->L);
  lua_pushliteral(co->L, "timeout");
  if (kind == OP_LINE || kind == OP_COUNT || kind == OP_ALL) {
    size_t len = 0;
    const char *p = s->t != NULL ? ml_tcp_data(s->t, &len) : "";
    lua_pushlstring(co->L, p, len);  /* what came: taken, as OpenResty */
    if (s->t != NULL)
      ml_tcp_consume(s->t, len);
    ml_sched_resume(co, 3);
    return;
  }
  ml_sched_resume(co, 2);
}

static void on_data(ml_tcp *t, void *ud) {
  ML_UNUSED(t);
  try_reader(ud);
}

static void on_written(ml_tcp *t, const char *err, void *ud) {
  tsock *s = ud;
  ML_UNUSED(t);
  if (s->wop != NULL)
    op_end(s->wop, err, NULL, 0, 0, 0);
}

static void on_connected(ml_tcp *t, const char *err, void *ud) {
  tsock *s = ud;
  ML_UNUSED(t);
  if (err != NULL) {
    ml_tcp_close(s->t);
    s->t = NULL;
  }
  if (s->wop != NULL)
    op_end(s->wop, err, NULL, 0, 0, 0);
}

static const ml_tcp_cbs sock_cbs = { on_connected, on_data, on_written };

static tsock *check_sock(lua_State *L) {
  return luaL_checkudata(L, 1, SOCK_MT);
}

/* Pushes nil, "closed" for a closed socket. */
static int closed(lua_State *L) {
  lua_pushnil(L);
  lua_pushliteral(L, "closed");
  return 2;
}

/*
 * sock:receive([pattern]) (yields): "*l" (the default; also "l"), a line
 * without its CR LF; a count, exactly that many bytes; "*a", everything
 * to the end.  nil, "timeout" | "closed", and the partial data.
 */
static int sock_receive(lua_State *L) {
  tsock *s = check_sock(L);
  int kind = OP_LINE;
  size_t n = 0, len, take;
  const char *data;
  int m;
  if (lua_type(L, 2) == LUA_TNUMBER) {
    lua_Integer c = lua_tointeger(L, 2);
    luaL_argcheck(L, c >= 0 && lua_isinteger(L, 2), 2, "a count expected");
    kind = OP_COUNT;
    n = (size_t)c;
  } else if (!lua_isnoneornil(L, 2)) {
    const char *p = luaL_checkstring(L, 2);
    if (strcmp(p, "*a") == 0 || strcmp(p, "a") == 0)
      kind = OP_ALL;
    else if (strcmp(p, "*l") != 0 && strcmp(p, "l") != 0)
      return luaL_argerror(L, 2, "\"*l\", \"*a\" or a count expected");
  }
  if (s->t == NULL)
    return closed(L);
  if (s->rop != NULL)
    return luaL_error(L, "another coroutine is receiving on this socket");
  if ((m = match(s->t, kind, n, &data, &len, &take)) != 0) {
    lua_pushlstring(L, data, len);
    ml_tcp_consume(s->t, take);
    if (m > 0)
      return 1;
    lua_pushnil(L);
    lua_pushstring(L, end_reason(s->t));
    lua_rotate(L, -3, -1);           /* nil, "closed", partial */
    return 3;
  }
  ml_tcp_read(s->t, 1);
  return park(L, s, kind, n, 0, NULL);
}

/* }====================================================== */

/*
** {======================================================
** Connecting, sending, closing
** =======================================================
*/

/* sock:send(data) (yields): data is a string; its length once the
 * kernel has it all, or nil, err. */
static int sock_send(lua_State *L) {
  tsock *s = check_sock(L);
  size_t len;
  const char *p = luaL_checklstring(L, 2, &len);
  int rc;
  if (s->t == NULL)
    return closed(L);
  if (s->wop != NULL)
    return luaL_error(L, "another coroutine is sending on this socket");
  if ((rc = ml_tcp_write(s->t, p, len)) < 0) {
    ml_tcp_close(s->t);
    s->t = NULL;
    return closed(L);
  }
  if (rc == 0) {
    lua_pushinteger(L, (lua_Integer)len);
    return 1;
  }
  return park(L, s, OP_SEND, len, 0, NULL);
}

static void sock_end(tsock *s) {
  ml_sched_undefer(&s->defer);
  if (s->t != NULL)
    ml_tcp_close(s->t);
  s->t = NULL;
}

static void sock_deferred(ml_defer *d) {
  sock_end(container_of(d, tsock, defer));
}

/* sock:close(): closes it; 1, or nil, "closed". */
static int sock_close(lua_State *L) {
  tsock *s = check_sock(L);
  if (s->t == NULL)
    return closed(L);
  if (s->rop != NULL || s->wop != NULL)
    return luaL_error(L, "the socket is in use by another coroutine");
  sock_end(s);
  lua_pushinteger(L, 1);
  return 1;
}

static int sock_gc(lua_State *L) {
  sock_end(check_sock(L));
  return 0;
}

/* sock:settimeout(seconds): for every later call (0 or nil: none). */
static int sock_settimeout(lua_State *L) {
  tsock *s = check_sock(L);
  lua_Number t = luaL_optnumber(L, 2, 0);
  luaL_argcheck(L, t >= 0 && t < 1e9, 2, "timeout out of range");
  s->timeout_ms = (uint64_t)(t * 1000 + 0.5);
  return 0;
}

/* sock:getreusedtimes(): how often the pool lent this connection. */
static int sock_getreusedtimes(lua_State *L) {
  tsock *s = check_sock(L);
  if (s->t == NULL)
    return closed(L);
  lua_pushinteger(L, s->reused);
  return 1;
}

/* }====================================================== */

/*
** {======================================================
** The keep-alive pools
** =======================================================
*/

static void idle_free(tidle *i) {
  tpool *p = i->pool;
  if (i->prev != NULL)
    i->prev->next = i->next;
  else
    p->idle = i->next;
  if (i->next != NULL)
    i->next->prev = i->prev;
  p->nidle--;
  ml_clock_timer_stop(&i->timer);
  ml_tcp_close(i->t);
  free(i);
}

static void idle_timeout(ml_ctimer *tm) {
  idle_free(container_of(tm, tidle, timer));
}

/* An idle connection that reads anything (or its end) is closed: the
 * server closed it, or broke the protocol. */
static void idle_data(ml_tcp *t, void *ud) {
  ML_UNUSED(t);
  idle_free(ud);
}

static void idle_connected(ml_tcp *t, const char *err, void *ud) {
  ML_UNUSED(t);
  ML_UNUSED(err);
  ML_UNUSED(ud);
}

static void idle_written(ml_tcp *t, const char *err, void *ud) {
  ML_UNUSED(t);
  ML_UNUSED(err);
  ML_UNUSED(ud);
}

static const ml_tcp_cbs idle_cbs = { idle_connected, idle_data,
                                     idle_written };

/* Sockets in use keep what they need of a context they were made with. */
static void part_close(ml_part *part) {
  tstate *st = (tstate *)part;
  tpool *p;
  tctx *x;
  while ((p = st->pools) != NULL) {
    st->pools = p->next;
    while (p->idle != NULL)
      idle_free(p->idle);
    free(p);
  }
  while ((x = st->ctxs) != NULL) {
    st->ctxs = x->next;
    ml_tls_free(x->tls);
    free(x);
  }
  free(st);
}

static const ml_part_kind tcp_kind = { "tcp pools and tls contexts", NULL,
                                       part_close };

static tstate *state_get(ml_gen *g, int make) {
  tstate *st = (tstate *)ml_gen_part(g, &tcp_kind);
  if (st == NULL && make && (st = calloc(1, sizeof *st)) != NULL)
    ml_gen_attach(g, &st->part, &tcp_kind);
  return st;
}

static tpool *pool_find(ml_gen *g, const char *key, int make) {
  tstate *st = state_get(g, make);
  tpool *p;
  if (st == NULL)
    return NULL;
  for (p = st->pools; p != NULL; p = p->next)
    if (strcmp(p->key, key) == 0)
      return p;
  if (!make || (p = calloc(1, sizeof *p)) == NULL)
    return NULL;
  snprintf(p->key, sizeof p->key, "%s", key);
  p->next = st->pools;
  st->pools = p;
  return p;
}

/*
 * The client TLS context for the options at idx (true, or a table of
 * verify, ca_file, cert, key), made on first use; its identity goes into
 * 'key'.  NULL with the reason in err.
 */
static ml_tls *tls_for(lua_State *L, ml_gen *g, int idx, char *key,
                       size_t keylen, char *err, size_t errlen) {
  ml_tls_opts o;
  tstate *st = state_get(g, 1);
  tctx *x;
  ml_lib_tls_opts(L, idx, &o);
  snprintf(key, keylen, "tls %d %s %s %s", o.verify,
           o.ca_file ? o.ca_file : "", o.cert ? o.cert : "",
           o.key ? o.key : "");
  if (st == NULL) {
    snprintf(err, errlen, "not enough memory");
    return NULL;
  }
  for (x = st->ctxs; x != NULL; x = x->next)
    if (strcmp(x->key, key) == 0)
      return x->tls;
  if ((x = malloc(sizeof *x + strlen(key) + 1)) == NULL) {
    snprintf(err, errlen, "not enough memory");
    return NULL;
  }
  if ((x->tls = ml_tls_new(&o, err, errlen)) == NULL) {
    free(x);
    return NULL;
  }
  strcpy(x->key, key);
  x->next = st->ctxs;
  st->ctxs = x;
  return x->tls;
}

/*
 * sock:setkeepalive([timeout [, size]]): into the pool for its
 * host:port, idle up to 'timeout' seconds (60), at most 'size' (30)
 * kept; 1, or nil, err ("unread data in buffer", "closed").  The socket
 * is closed for its holder either way.
 */
static int sock_setkeepalive(lua_State *L) {
  tsock *s = check_sock(L);
  lua_Number t = luaL_optnumber(L, 2, IDLE_MS / 1000.0);
  lua_Integer size = luaL_optinteger(L, 3, POOL_SIZE);
  ml_co *co = ml_sched_current(L);
  size_t avail;
  tpool *p;
  tidle *i;
  luaL_argcheck(L, t >= 0 && t < 1e9, 2, "timeout out of range");
  if (s->t == NULL)
    return closed(L);
  if (s->rop != NULL || s->wop != NULL)
    return luaL_error(L, "the socket is in use by another coroutine");
  ml_tcp_data(s->t, &avail);
  if (avail > 0 || ml_tcp_ended(s->t) || ml_tcp_writing(s->t)) {
    sock_end(s);
    lua_pushnil(L);
    lua_pushstring(L, avail > 0 ? "unread data in buffer" : "closed");
    return 2;
  }
  p = pool_find(co->gen, s->key, 1);
  if (p == NULL || p->nidle >= size || (i = calloc(1, sizeof *i)) == NULL) {
    sock_end(s);
    lua_pushinteger(L, 1);           /* not kept: closed, as asked */
    return 1;
  }
  ml_sched_undefer(&s->defer);
  i->t = s->t;
  i->pool = p;
  i->reused = s->reused;
  s->t = NULL;
  i->next = p->idle;
  if (p->idle != NULL)
    p->idle->prev = i;
  p->idle = i;
  p->nidle++;
  ml_tcp_set_owner(i->t, &idle_cbs, i);
  ml_tcp_ref(i->t, 0);
  ml_tcp_read(i->t, 1);
  ml_clock_timer_init_on(co->gen->clock, &i->timer);
  if (t > 0)
    ml_clock_timer_start(&i->timer, idle_timeout,
                         (uint64_t)(t * 1000 + 0.5), 0);
  lua_pushinteger(L, 1);
  return 1;
}

/* Connected: the socket (at ctx), or the wake's nil, err. */
static int connect_k(lua_State *L, int status, lua_KContext ctx) {
  ML_UNUSED(status);
  if (lua_toboolean(L, (int)ctx + 1)) {
    lua_pushvalue(L, (int)ctx);
    return 1;
  }
  return lua_gettop(L) - (int)ctx;     /* nil, err */
}

/*
 * core.tcp_connect(host, port, timeout [, tls [, server_name]]) -> sock
 * | nil, err (yields): a pooled connection to host:port (with the same
 * TLS), or a new one.
 */
static int tcp_connect(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  lua_Integer port = luaL_checkinteger(L, 2);
  lua_Number timeout = luaL_checknumber(L, 3);
  const char *name = luaL_optstring(L, 5, NULL);
  char err[256], tlskey[300] = "";
  ml_tls *tls = NULL;
  ml_co *co;
  tpool *p;
  tsock *s;
  luaL_argcheck(L, strlen(host) < 256, 1, "host name too long");
  luaL_argcheck(L, name == NULL || strlen(name) < 256, 5, "name too long");
  luaL_argcheck(L, port > 0 && port < 65536, 2, "port out of range");
  luaL_argcheck(L, timeout >= 0 && timeout < 1e9, 3, "timeout out of range");
  co = ml_sched_current(L);
  if (lua_toboolean(L, 4) &&
      (tls = tls_for(L, co->gen, 4, tlskey, sizeof tlskey, err,
                     sizeof err)) == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_settop(L, 5);
  s = lua_newuserdatauv(L, sizeof *s, 0);
  memset(s, 0, sizeof *s);
  luaL_setmetatable(L, SOCK_MT);
  snprintf(s->key, sizeof s->key, "%s %d %s %s", host, (int)port, tlskey,
           name != NULL ? name : "");
  s->timeout_ms = (uint64_t)(timeout * 1000 + 0.5);
  ml_sched_defer(co, &s->defer, sock_deferred);
  if ((p = pool_find(co->gen, s->key, 0)) != NULL &&
      p->idle != NULL) {
    tidle *i = p->idle;
    s->t = i->t;
    s->reused = i->reused + 1;
    i->t = NULL;
    p->idle = i->next;
    if (p->idle != NULL)
      p->idle->prev = NULL;
    p->nidle--;
    ml_clock_timer_stop(&i->timer);
    free(i);
    ml_tcp_read(s->t, 0);
    ml_tcp_set_owner(s->t, &sock_cbs, s);
    ml_tcp_ref(s->t, 1);
    return 1;
  }
  if ((s->t = ml_tcp_connect(co->gen->loop, host, (int)port, tls, name,
                             &sock_cbs, s, err, sizeof err)) == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  return park(L, s, OP_CONNECT, 0, lua_gettop(L), connect_k);
}

/* }====================================================== */

static const luaL_Reg sock_methods[] = {
  {"receive", sock_receive},
  {"send", sock_send},
  {"close", sock_close},
  {"settimeout", sock_settimeout},
  {"setkeepalive", sock_setkeepalive},
  {"getreusedtimes", sock_getreusedtimes},
  {NULL, NULL}
};

/* Adds core.tcp_connect and core.tcp_socket_mt (moonlet.tcp adds to its
 * methods) to the table on top. */
void ml_lib_tcp_register(lua_State *L) {
  luaL_newmetatable(L, SOCK_MT);
  luaL_newlib(L, sock_methods);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, sock_gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, sock_gc);
  lua_setfield(L, -2, "__close");
  lua_setfield(L, -2, "tcp_socket_mt");
  lua_pushcfunction(L, tcp_connect);
  lua_setfield(L, -2, "tcp_connect");
}
