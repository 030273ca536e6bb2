/*
 * lib_drain.c - moonlet.draining(): whether the server is stopping, for a
 * readiness route that must answer 503 while --drain-delay runs (and
 * during the drain after it).  The flag is the host's (gen.h's ml_host);
 * the stop itself is the host's business.
 */
#include <lauxlib.h>
#include "vm/lib.h"

/* moonlet.draining() -> true once a stop has begun */
static int drain_draining(lua_State *L) {
  const int *flag = ML_GEN(L)->host->draining;
  lua_pushboolean(L, flag != NULL && *flag);
  return 1;
}

void ml_lib_drain_register(lua_State *L) {
  lua_pushcfunction(L, drain_draining);
  lua_setfield(L, -2, "draining");
}
