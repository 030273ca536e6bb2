/*
 * luasrc.h - the framework's Lua modules (lua/moonlet/NAME.lua), compiled into
 * the binary by the Makefile as build/luasrc.c.
 */
#ifndef ML_LUASRC_H
#define ML_LUASRC_H

#include <stddef.h>

typedef struct {
  const char *name;  /* module name: "moonlet", "moonlet.app" ... */
  const char *file;  /* "lua/moonlet/app.lua", for tracebacks */
  const char *src;
  size_t len;
} ml_luasrc;

extern const ml_luasrc ml_luasrc_list[];  /* ends with a NULL name */

#endif
