/*
 * gen.c - generations: one loaded app and its Lua state, for both hosts.
 * Making the state (its allocator, libraries and moonlet's built-in
 * modules), loading the app file into it, retiring and closing it, and
 * the parts other subsystems attach to it.  Which generation new
 * requests go to is the host's; coroutines are sched.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "moonlet.h"
#include "base/log.h"
#include "vm/gen.h"
#include "vm/lib.h"
#include "vm/luasrc.h"
#include "vm/sched.h"

/*
** {======================================================
** The state's allocator
** =======================================================
*/

/* Every generation's state allocates through one of these, with the
 * generation as user data: that is how ML_GEN finds it. */

static void *plain_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  (void)ud;
  (void)osize;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  return realloc(ptr, nsize);
}

/*
 * With --lua-memory: counts the state's bytes and refuses to grow past
 * the cap, which Lua turns into a "not enough memory" error in the code
 * that asked (a handler fails, not the process).
 */
static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  ml_gen *g = ud;
  size_t old = ptr != NULL ? osize : 0;
  void *p;
  if (nsize == 0) {
    free(ptr);
    g->mem -= old;
    return NULL;
  }
  if (nsize > old && g->mem + (nsize - old) > g->mem_limit)
    return NULL;
  if ((p = realloc(ptr, nsize)) == NULL)
    return NULL;
  g->mem = g->mem - old + nsize;
  return p;
}

/* A borrowed state: its host's allocator does the work. */
static void *host_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  ml_gen *g = ud;
  return g->host_alloc(g->host_alloc_ud, ptr, osize, nsize);
}

/* Puts g's allocator on g->L, over the one it had (which allocated with
 * realloc and free, as ours do, unless the host lent the state). */
static void take_alloc(ml_gen *g, int borrowed) {
  lua_State *L = g->L;
  if (borrowed) {
    g->host_alloc = lua_getallocf(L, &g->host_alloc_ud);
    lua_setallocf(L, host_alloc, g);
  } else if (g->host->lua_memory > 0) {
    g->mem_limit = g->host->lua_memory;
    g->mem = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
             (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    lua_setallocf(L, limited_alloc, g);
  } else {
    lua_setallocf(L, plain_alloc, g);
  }
}

/* }====================================================== */

/*
** {======================================================
** Making a state
** =======================================================
*/

const char *ml_gen_builtin(lua_State *L, const char *name) {
  const ml_luasrc *m;
  char chunk[128];
  for (m = ml_luasrc_list; m->name != NULL; m++) {
    if (strcmp(m->name, name) != 0)
      continue;
    snprintf(chunk, sizeof chunk, "@%s", m->file);
    if (luaL_loadbuffer(L, m->src, m->len, chunk) != LUA_OK)
      lua_error(L);
    return m->file;
  }
  return NULL;
}

/* package.searchers entry: the framework's own modules, built in. */
static int search_builtin(lua_State *L) {
  const char *name = luaL_checkstring(L, 1), *file;
  if ((file = ml_gen_builtin(L, name)) == NULL) {
    lua_pushfstring(L, "no built-in module '%s'", name);
    return 1;
  }
  lua_pushstring(L, file);
  return 2;
}

/* Puts search_builtin second in package.searchers, after preload. */
static void add_searcher(lua_State *L) {
  lua_Integer i, n;
  lua_getglobal(L, "package");
  lua_getfield(L, -1, "searchers");
  n = (lua_Integer)luaL_len(L, -1);
  for (i = n; i >= 2; i--) {      /* shift entries 2..n up by one */
    lua_geti(L, -1, i);
    lua_seti(L, -2, i + 1);
  }
  lua_pushcfunction(L, search_builtin);
  lua_seti(L, -2, 2);
  lua_pop(L, 2);
}

/* Runs in protected mode: libraries, searcher, host hook, boot module. */
static int setup(lua_State *L) {
  const ml_host *h = ML_GEN(L)->host;
  luaL_openlibs(L);
  add_searcher(L);
  luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
  lua_pushcfunction(L, h->open_core);
  lua_setfield(L, -2, "moonlet.core");
  lua_pop(L, 1);
  if (h->on_state != NULL)
    h->on_state(h->ud, L);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "moonlet.boot");   /* coroutine wrappers, require */
  lua_call(L, 1, 0);
  return 0;
}

/* Its main thread, whichever thread of the state L is. */
static lua_State *main_thread(lua_State *L) {
  lua_State *M;
  lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
  M = lua_tothread(L, -1);
  lua_pop(L, 1);
  return M;
}

/* The state is g's own (L NULL), or the host's: set up from L, the
 * thread that asked, which may be any of its threads. */
static ml_gen *make(const ml_host *h, lua_State *L) {
  ml_gen *g = calloc(1, sizeof *g);
  int borrowed = L != NULL;
  if (g == NULL)
    return NULL;
  g->host = h;
  g->loop = h->loop;
  g->clock = h->clock;
  g->dispatch_ref = g->app_ref = LUA_NOREF;
  if ((g->L = L != NULL ? main_thread(L) : luaL_newstate()) == NULL) {
    free(g);
    return NULL;
  }
  if (!borrowed)
    L = g->L;
  take_alloc(g, borrowed);
  ml_sched_init(g);
  lua_pushcfunction(L, setup);
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) {
    ml_log(MOONLET_LOG_ERROR, "cannot start Lua: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    ml_gen_close(g);
    return NULL;
  }
  return g;
}

ml_gen *ml_gen_new(const ml_host *h) {
  return make(h, NULL);
}

ml_gen *ml_gen_borrow(const ml_host *h, lua_State *L) {
  return make(h, L);
}

/* }====================================================== */

/*
** {======================================================
** Loading and serving an app
** =======================================================
*/

int ml_gen_serve(ml_gen *g, lua_State *L, int idx) {
  ml_router *r = ml_lib_router_get(L, idx + 1);
  if (!lua_istable(L, idx) || r == NULL || !lua_isfunction(L, idx + 2))
    return MOONLET_ENOAPP;
  luaL_unref(L, LUA_REGISTRYINDEX, g->dispatch_ref);
  luaL_unref(L, LUA_REGISTRYINDEX, g->app_ref);
  g->router = r;
  lua_pushvalue(L, idx + 2);
  g->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, idx);          /* the app also keeps the router alive */
  g->app_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 0;
}

/* Whom a load tells, while its coroutine runs. */
typedef struct {
  ml_gen_loaded done;
  void *ud;
} load_req;

/*
 * The coroutine running moonlet.boot.load_app ended.  When it returned
 * (how == ML_CO_OK) its results are app, router, dispatch, options;
 * otherwise the error was logged (with file:line) or the load cancelled.
 */
static void load_done(ml_co *co, int how) {
  load_req lr = *(load_req *)co->data;
  int status;
  free(co->data);
  if (how == ML_CO_CANCELLED)
    status = UV_ECANCELED;
  else if (how != ML_CO_OK)
    status = MOONLET_ELOAD;
  else
    status = ml_gen_serve(co->gen, co->L, 1);
  lr.done(co->gen, status, lr.ud);
}

static const ml_job load_job = { .what = "loading the app",
                                 .done = load_done };

int ml_gen_load(ml_gen *g, const char *path, ml_gen_loaded done, void *ud) {
  load_req *lr = malloc(sizeof *lr);
  ml_co *co;
  if (lr == NULL || (co = ml_sched_acquire(g, &load_job, lr)) == NULL) {
    free(lr);
    return UV_ENOMEM;
  }
  lr->done = done;
  lr->ud = ud;
  lua_getfield(co->L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
  lua_getfield(co->L, -1, "moonlet.boot");
  lua_getfield(co->L, -1, "load_app");
  lua_replace(co->L, 1);
  lua_settop(co->L, 1);
  lua_pushstring(co->L, path);
  ml_sched_resume(co, 1);
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** Retiring and closing
** =======================================================
*/

/*
 * Stops what belongs to the app rather than to a request: the parts'
 * timers and the like, then the coroutines of timer callbacks, the app
 * load and their tasks.  The caller holds g open ('live').
 */
static void stop_app_work(ml_gen *g) {
  ml_co *co;
  ml_gen_parts_retire(g);
  do {                       /* from the top each time: a cancel also */
    for (co = g->lent; co != NULL; co = co->next)   /* ends its tasks */
      if (!ml_sched_serves_request(co) && !co->running)
        break;
    if (co != NULL)
      ml_sched_cancel(co);
  } while (co != NULL);
}

void ml_gen_retire(ml_gen *g) {
  if (g->retired)
    return;
  g->retired = 1;
  g->live++;                 /* hold it open while cancelling */
  stop_app_work(g);
  if (--g->live == 0)
    ml_gen_close(g);
}

void ml_gen_reset(ml_gen *g) {
  g->live++;
  stop_app_work(g);
  ml_gen_parts_close(g);
  if (--g->live == 0 && g->retired)
    ml_gen_close(g);
}

/* Closes the state: its parts first, then every Lua object; a borrowed
 * state is its host's to close, and gets its allocator back. */
void ml_gen_close(ml_gen *g) {
  ml_gen_parts_close(g);
  g->router = NULL;            /* owned by a userdata, freed by __gc */
  if (g->host_alloc != NULL)
    lua_setallocf(g->L, g->host_alloc, g->host_alloc_ud);
  else
    lua_close(g->L);           /* collects the pooled threads too */
  ml_sched_close(g);
}

/* }====================================================== */

/*
** {======================================================
** Parts
** =======================================================
*/

ml_part *ml_gen_part(ml_gen *g, const ml_part_kind *kind) {
  ml_part *p;
  for (p = g->parts; p != NULL && p->kind != kind; p = p->next)
    ;
  return p;
}

void ml_gen_attach(ml_gen *g, ml_part *p, const ml_part_kind *kind) {
  p->kind = kind;
  p->gen = g;
  p->next = g->parts;
  g->parts = p;
}

void ml_gen_detach(ml_part *p) {
  ml_part **link;
  for (link = &p->gen->parts; *link != NULL; link = &(*link)->next)
    if (*link == p) {
      *link = p->next;
      break;
    }
  p->next = NULL;
}

/* A 'retire' hook may detach its own part: the next one is read first. */
void ml_gen_parts_retire(ml_gen *g) {
  ml_part *p, *next;
  for (p = g->parts; p != NULL; p = next) {
    next = p->next;
    if (p->kind->retire != NULL)
      p->kind->retire(p);
  }
}

void ml_gen_parts_close(ml_gen *g) {
  ml_part *p;
  while ((p = g->parts) != NULL) {
    g->parts = p->next;
    p->next = NULL;
    p->kind->close(p);
  }
}

/* }====================================================== */
