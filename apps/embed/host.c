/*
 * host.c - an example C program that embeds moonlet: its own libuv timer
 * counts on the same loop as the server, and every Lua state of the app
 * (reloads included) gets host.count() to read it.  It includes only
 * moonlet.h.  Usage: host APP.lua [PORT] (PORT 0 picks a free one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "moonlet.h"

static long count;        /* what the timer has counted so far */

static void on_tick(uv_timer_t *t) {
  (void)t;
  count++;
}

/* host.count(): the timer's count. */
static int host_count(lua_State *L) {
  lua_pushinteger(L, count);
  return 1;
}

/* Runs for each new Lua state, before the app file: the global 'host'. */
static void add_host(lua_State *L, void *ud) {
  static const luaL_Reg funcs[] = { {"count", host_count}, {NULL, NULL} };
  (void)ud;
  luaL_newlib(L, funcs);
  lua_setglobal(L, "host");
}

int main(int argc, char **argv) {
  uv_loop_t *loop = uv_default_loop();
  uv_timer_t tick;
  moonlet_config cfg;
  moonlet_server *s;
  int port;
  if (argc < 2) {
    fprintf(stderr, "usage: %s APP.lua [PORT]\n", argv[0]);
    return 2;
  }
  moonlet_config_init(&cfg);
  cfg.port = argc > 2 ? atoi(argv[2]) : 8080;
  cfg.handle_signals = 1;            /* SIGINT/SIGTERM stop, SIGHUP reloads */
  if ((s = moonlet_new(loop, &cfg)) == NULL)
    return 1;
  moonlet_on_state(s, add_host, NULL);
  if (moonlet_load(s, argv[1]) != 0)
    return 1;
  if ((port = moonlet_listen(s)) < 0) {
    fprintf(stderr, "host: cannot listen: %s\n", moonlet_strerror(port));
    return 1;
  }
  uv_timer_init(loop, &tick);        /* our own handle, beside moonlet's */
  uv_timer_start(&tick, on_tick, 10, 10);
  uv_unref((uv_handle_t *)&tick);    /* the server alone keeps us running */
  printf("moonlet listening on http://%s:%d\n", cfg.host, port);
  fflush(stdout);
  uv_run(loop, UV_RUN_DEFAULT);      /* until a signal has stopped moonlet */
  uv_close((uv_handle_t *)&tick, NULL);
  uv_run(loop, UV_RUN_DEFAULT);
  return uv_loop_close(loop) == 0 ? 0 : 1;
}
