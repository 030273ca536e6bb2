/*
 * lib_thread.c - moonlet.thread.run(fn, ...): runs a Lua function on
 * libuv's thread pool, in a Lua state of that pool thread's own, and wakes
 * the caller with its results.  The function travels as bytecode
 * (lua_dump), arguments and results as bytes (the codec below): nothing
 * is shared between states.  A stopping server stops the jobs (a count
 * hook in each pool state checks whether they should).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "vm/lib.h"
#include "vm/lib_thread.h"
#include "base/log.h"
#include "base/util.h"

#define MAX_DEPTH 64           /* tables nested deeper are refused */
#define STOP_CHECK 10000       /* instructions between checks for a stop */
#define STOPPED "thread.run: stopped: the server is stopping"
#define COPYABLE "only nil, booleans, numbers, strings and tables of " \
                 "these can be copied"

/* The tag before each encoded value; a table ends with T_END. */
enum { T_NIL, T_FALSE, T_TRUE, T_INT, T_FLT, T_STR, T_TABLE, T_END };

/*
 * One call of thread.run.  Made by core_thread_run, then owned by libuv
 * until job_done, which frees it whether or not anyone still waits.  The
 * pool thread writes only 'out', 'nout' and 'failed'; libuv's queue
 * orders those writes before job_done reads them.
 */
typedef struct {
  ml_wait w;
  uv_work_t req;
  ml_buf code;          /* fn, dumped */
  ml_buf in;            /* the arguments, encoded */
  ml_buf out;           /* the results, or the error value, encoded */
  int nin, nout;
  int failed;           /* 'out' holds fn's error (nout 1) */
  uint64_t number;      /* in the order jobs were queued, from 1 */
} job;

/* Shared by every thread, through atomics. */
static uint64_t jobs_queued;  /* numbers given so far */
static uint64_t stop_upto;    /* jobs numbered up to it must stop */
static int jobs_running;      /* on pool threads now */
static __thread job *running_job;  /* a pool thread's, for its hook */

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)

/*
** {======================================================
** The codec: nil, booleans, integers, floats, strings and tables of these
** =======================================================
*/

/* Encodes values into 'b'; raises nothing, says what failed in 'err'. */
typedef struct {
  ml_buf *b;
  const void *path[MAX_DEPTH];  /* tables being encoded, to find cycles */
  int depth;
  char err[64];                 /* "a function", "a table holding ..." */
} encoder;

static int refuse(encoder *e, const char *what) {
  snprintf(e->err, sizeof e->err, "%s", what);
  return -1;
}

static int put(encoder *e, const void *p, size_t n) {
  return ml_buf_append(e->b, p, n) == 0 ? 0 : refuse(e, "out of memory");
}

static int put_tag(encoder *e, int tag) {
  unsigned char c = (unsigned char)tag;
  return put(e, &c, 1);
}

static int encode(encoder *e, lua_State *L, int idx);

/* The pairs of the table at idx (absolute), then T_END. */
static int encode_table(encoder *e, lua_State *L, int idx) {
  const void *t = lua_topointer(L, idx);
  int i;
  for (i = 0; i < e->depth; i++)
    if (e->path[i] == t)
      return refuse(e, "a table that contains itself");
  if (e->depth == MAX_DEPTH)
    return refuse(e, "tables nested more than 64 deep");
  if (!lua_checkstack(L, 3))
    return refuse(e, "out of memory");
  e->path[e->depth++] = t;
  if (put_tag(e, T_TABLE) != 0)
    return -1;
  lua_pushnil(L);
  while (lua_next(L, idx) != 0) {   /* raw; raises only on a bad key */
    if (encode(e, L, -2) != 0 || encode(e, L, -1) != 0) {
      lua_pop(L, 2);
      return -1;
    }
    lua_pop(L, 1);
  }
  e->depth--;
  return put_tag(e, T_END);
}

/* Appends the value at idx; 0, or -1 with e->err set. */
static int encode(encoder *e, lua_State *L, int idx) {
  size_t len;
  const char *s;
  lua_Integer i;
  lua_Number n;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    return put_tag(e, T_NIL);
  case LUA_TBOOLEAN:
    return put_tag(e, lua_toboolean(L, idx) ? T_TRUE : T_FALSE);
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      i = lua_tointeger(L, idx);
      return put_tag(e, T_INT) || put(e, &i, sizeof i);
    }
    n = lua_tonumber(L, idx);
    return put_tag(e, T_FLT) || put(e, &n, sizeof n);
  case LUA_TSTRING:
    s = lua_tolstring(L, idx, &len);
    return put_tag(e, T_STR) || put(e, &len, sizeof len) || put(e, s, len);
  case LUA_TTABLE:
    return encode_table(e, L, lua_absindex(L, idx));
  default:                          /* function, userdata, thread */
    snprintf(e->err, sizeof e->err, "a %s%s", e->depth > 0 ?
             "table holding a " : "", luaL_typename(L, idx));
    return -1;
  }
}

/*
 * Encodes the n values from 'first' on into b.  0, or -1 with a message
 * in msg naming the value by 'what' and position ("argument 2").
 */
static int encode_values(lua_State *L, int first, int n, ml_buf *b,
                         const char *what, int pos, char *msg,
                         size_t size) {
  encoder e;
  int i;
  e.b = b;
  for (i = 0; i < n; i++) {
    e.depth = 0;
    if (encode(&e, L, first + i) != 0) {
      snprintf(msg, size, "thread.run: cannot copy %s %d (%s): " COPYABLE,
               what, pos + i, e.err);
      return -1;
    }
  }
  return 0;
}

/* Reads encoded values; made by this file, so bounds are all it checks. */
typedef struct {
  const char *p, *end;
} decoder;

static void take(lua_State *L, decoder *d, void *to, size_t n) {
  if ((size_t)(d->end - d->p) < n)
    luaL_error(L, "thread.run: corrupt data");
  memcpy(to, d->p, n);
  d->p += n;
}

/* Pushes the next value; raises on bad data or out of memory. */
static void decode(lua_State *L, decoder *d) {
  unsigned char tag;
  lua_Integer i;
  lua_Number n;
  size_t len;
  luaL_checkstack(L, 3, "thread.run: values too deep");
  take(L, d, &tag, 1);
  switch (tag) {
  case T_NIL: lua_pushnil(L); break;
  case T_FALSE: lua_pushboolean(L, 0); break;
  case T_TRUE: lua_pushboolean(L, 1); break;
  case T_INT: take(L, d, &i, sizeof i); lua_pushinteger(L, i); break;
  case T_FLT: take(L, d, &n, sizeof n); lua_pushnumber(L, n); break;
  case T_STR:
    take(L, d, &len, sizeof len);
    if ((size_t)(d->end - d->p) < len)
      luaL_error(L, "thread.run: corrupt data");
    lua_pushlstring(L, d->p, len);
    d->p += len;
    break;
  case T_TABLE:
    lua_newtable(L);
    while (d->p < d->end && *d->p != T_END) {
      decode(L, d);
      decode(L, d);
      lua_rawset(L, -3);
    }
    take(L, d, &tag, 1);
    break;
  default:
    luaL_error(L, "thread.run: corrupt data");
  }
}

/* Pushes the n values in b. */
static void decode_values(lua_State *L, const ml_buf *b, int n) {
  decoder d;
  int i;
  d.p = b->data;
  d.end = b->data + b->len;
  luaL_checkstack(L, n, "thread.run: too many values");
  for (i = 0; i < n; i++)
    decode(L, &d);
}

/* }====================================================== */

/*
** {======================================================
** The pool thread's side
** =======================================================
*/

/* Each pool thread's Lua state, closed when the thread exits. */
static pthread_key_t state_key;
static pthread_once_t state_once = PTHREAD_ONCE_INIT;
static int state_key_ok;

static void state_close(void *L) {
  lua_close(L);
}

static void state_key_make(void) {
  state_key_ok = pthread_key_create(&state_key, state_close) == 0;
}

static int open_libs(lua_State *L) {
  luaL_openlibs(L);
  return 0;
}

/*
 * This pool thread's Lua state: made on its first job, with Lua's
 * standard libraries, and kept for the next ones (so a global one job
 * sets, a later job on the same thread sees).  NULL when out of memory.
 */
static lua_State *thread_state(void) {
  lua_State *L;
  pthread_once(&state_once, state_key_make);
  if (!state_key_ok)
    return NULL;
  if ((L = pthread_getspecific(state_key)) != NULL)
    return L;
  if ((L = luaL_newstate()) == NULL)
    return NULL;
  lua_pushcfunction(L, open_libs);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK ||
      pthread_setspecific(state_key, L) != 0) {
    lua_close(L);
    return NULL;
  }
  return L;
}

/* Makes the job's outcome the error message msg. */
static void fail(job *j, const char *msg) {
  encoder e;
  unsigned char tag = T_STR;
  size_t len = strlen(msg);
  e.b = &j->out;
  e.depth = 0;
  ml_buf_free(&j->out);
  j->failed = 1;
  j->nout = 0;                        /* job_done's "out of memory" */
  if (put(&e, &tag, 1) == 0 && put(&e, &len, sizeof len) == 0 &&
      put(&e, msg, len) == 0)
    j->nout = 1;
}

static const char *read_code(lua_State *L, void *ud, size_t *size) {
  ml_buf *b = ud;
  ML_UNUSED(L);
  *size = b->len;
  b->len = 0;                         /* all of it, once */
  return *size > 0 ? b->data : NULL;
}

/*
 * Runs the job on the pool thread's state (protected: raises only on
 * broken bytecode or out of memory): loads fn, pushes the arguments,
 * calls it, encodes its results or its error.
 */
static int job_run(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  char msg[256];
  lua_settop(L, 0);
  if (lua_load(L, read_code, &j->code, "=thread.run", "b") != LUA_OK)
    return lua_error(L);
  decode_values(L, &j->in, j->nin);
  if (lua_pcall(L, j->nin, LUA_MULTRET, 0) != LUA_OK) {
    if (encode_values(L, 1, 1, &j->out, "error", 1, msg, sizeof msg) != 0)
      fail(j, luaL_tolstring(L, 1, NULL));  /* its error, as a string */
    else {
      j->failed = 1;
      j->nout = 1;
    }
  } else if (encode_values(L, 1, lua_gettop(L), &j->out, "result", 1, msg,
                           sizeof msg) != 0) {
    fail(j, msg);
  } else {
    j->nout = lua_gettop(L);
  }
  return 0;
}

/* Whether the job must stop (ml_lib_thread_stop). */
static int job_stopped(const job *j) {
  return j->number <= LOAD(stop_upto);
}

/*
 * The count hook of a pool state running a job: once the job must stop,
 * it raises, and from then on at every instruction, so that a pcall in a
 * loop catches one error but the code around it meets the next.
 */
static void job_hook(lua_State *L, lua_Debug *ar) {
  ML_UNUSED(ar);
  if (running_job == NULL || !job_stopped(running_job))
    return;
  lua_sethook(L, job_hook, LUA_MASKCOUNT, 1);
  luaL_error(L, STOPPED);
}

static void run_job(job *j, lua_State *L) {
  running_job = j;
  lua_sethook(L, job_hook, LUA_MASKCOUNT, STOP_CHECK);
  lua_settop(L, 0);
  lua_pushcfunction(L, job_run);
  lua_pushlightuserdata(L, j);
  if (lua_pcall(L, 1, 0, 0) != LUA_OK)
    fail(j, lua_isstring(L, -1) ? lua_tostring(L, -1) : "thread.run: error");
  lua_settop(L, 0);                   /* keep nothing of the job */
  lua_sethook(L, NULL, 0, 0);
  running_job = NULL;
}

/* Runs on a pool thread: the only code here that touches j meanwhile. */
static void job_work(uv_work_t *req) {
  job *j = container_of(req, job, req);
  lua_State *L;
  __atomic_add_fetch(&jobs_running, 1, __ATOMIC_ACQ_REL);
  if (job_stopped(j))
    fail(j, STOPPED);
  else if ((L = thread_state()) == NULL)
    fail(j, "thread.run: cannot make a Lua state (out of memory)");
  else
    run_job(j, L);
  __atomic_sub_fetch(&jobs_running, 1, __ATOMIC_ACQ_REL);
}

void ml_lib_thread_stop(void) {
  __atomic_store_n(&stop_upto, LOAD(jobs_queued), __ATOMIC_RELEASE);
}

int ml_lib_thread_running(void) {
  return LOAD(jobs_running);
}

/* }====================================================== */

/*
** {======================================================
** The caller's side
** =======================================================
*/

static void job_free(job *j) {
  ml_buf_free(&j->code);
  ml_buf_free(&j->in);
  ml_buf_free(&j->out);
  free(j);
}

/* Pushes the job's outcome on L (protected: decoding may run out of
 * memory): a boolean 'failed', then the values. */
static int push_outcome(lua_State *L) {
  job *j = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lua_pushboolean(L, j->failed);
  if (j->failed && j->nout == 0)
    lua_pushliteral(L, "thread.run: out of memory in the pool thread");
  else
    decode_values(L, &j->out, j->nout);
  return lua_gettop(L);
}

/*
 * The job ended, ran to its end after a cancel, or was cancelled before
 * it started (UV_ECANCELED).  Decodes the outcome on the generation's
 * main thread, idle in a loop callback, then moves it to the caller; the
 * job is freed here in every case.
 */
static void job_done(uv_work_t *req, int status) {
  job *j = container_of(req, job, req);
  ml_co *co = ml_sched_unpark(&j->w);
  lua_State *M;
  int n, top;
  if (co == NULL) {                   /* its caller left */
    ml_log(MOONLET_LOG_DEBUG, "thread.run: caller gone, job %s",
           status == UV_ECANCELED ? "cancelled before it ran" : "dropped");
    job_free(j);
    return;
  }
  M = co->gen->L;
  top = lua_gettop(M);
  lua_pushcfunction(M, push_outcome);
  lua_pushlightuserdata(M, j);
  if (lua_pcall(M, 1, LUA_MULTRET, 0) != LUA_OK) {
    lua_pushboolean(M, 1);            /* failed, with pcall's error */
    lua_insert(M, -2);
  }
  job_free(j);
  n = lua_gettop(M) - top;
  if (!lua_checkstack(co->L, n)) {
    lua_settop(M, top);
    lua_pushboolean(M, 1);
    lua_pushliteral(M, "thread.run: too many results");
    n = 2;
  }
  lua_xmove(M, co->L, n);
  ml_sched_resume(co, n);             /* last: it may free the conn */
}

/* The caller left: a queued job never runs; a running one runs on. */
static void job_cancel(ml_wait *w) {
  uv_cancel((uv_req_t *)&((job *)w)->req);  /* job_done frees either way */
}

/* Wakes with 'failed' and the values: returns those, or raises fn's
 * error in the caller. */
static int thread_run_k(lua_State *L, int status, lua_KContext base) {
  ML_UNUSED(status);
  if (lua_toboolean(L, (int)base + 1)) {
    lua_settop(L, (int)base + 2);
    return lua_error(L);
  }
  return lua_gettop(L) - (int)base - 1;
}

/* Refuses a function that would need its upvalues in another state. */
static void check_upvalues(lua_State *L) {
  const char *name;
  int i;
  if (lua_iscfunction(L, 1))
    luaL_error(L, "thread.run: fn must be a Lua function, not a C one");
  for (i = 1; (name = lua_getupvalue(L, 1, i)) != NULL; i++) {
    lua_pop(L, 1);
    if (strcmp(name, "_ENV") != 0)
      luaL_error(L, "thread.run: the function uses the upvalue '%s'; pass "
                 "it as an argument", *name != '\0' ? name : "?");
  }
}

static int writer(lua_State *L, const void *p, size_t n, void *ud) {
  ML_UNUSED(L);
  return ml_buf_append(ud, p, n);
}

/*
 * thread.run(fn, ...) (yields): fn's results, copied back, or fn's error
 * raised here.  Everything is checked before the job is queued.
 */
static int core_thread_run(lua_State *L) {
  int nargs = lua_gettop(L) - 1;
  char msg[256];
  ml_co *co;
  job *j;
  int rc;
  luaL_checktype(L, 1, LUA_TFUNCTION);
  check_upvalues(L);
  co = ml_sched_current(L);
  if ((j = calloc(1, sizeof *j)) == NULL)
    return luaL_error(L, "not enough memory");
  lua_pushvalue(L, 1);
  rc = lua_dump(L, writer, &j->code, 0);   /* keep lines for errors */
  lua_pop(L, 1);
  if (rc != 0 || encode_values(L, 2, nargs, &j->in, "argument", 2, msg,
                               sizeof msg) != 0) {
    job_free(j);
    return luaL_error(L, "%s", rc != 0 ? "not enough memory" : msg);
  }
  j->nin = nargs;
  j->number = __atomic_add_fetch(&jobs_queued, 1, __ATOMIC_ACQ_REL);
  rc = uv_queue_work(co->gen->loop, &j->req, job_work, job_done);
  if (rc != 0) {
    job_free(j);
    return ml_lib_fail(L, uv_strerror(rc));
  }
  lua_settop(L, 0);
  ml_sched_park(co, &j->w, job_cancel);
  return ml_sched_yieldk(L, 0, thread_run_k);
}

/* }====================================================== */

void ml_lib_thread_register(lua_State *L) {
  lua_pushcfunction(L, core_thread_run);
  lua_setfield(L, -2, "thread_run");
}
