/*
 * lib_json.h - moonlet.json's C half (lib_json.c): the encoder, and the
 * text that logs give an error value, for the other lib_*.c files.
 */
#ifndef ML_LIB_JSON_H
#define ML_LIB_JSON_H

#include <stddef.h>
#include <lua.h>
#include "base/util.h"

/* Encodes the value at idx and pushes the JSON text (0), or pushes the
 * reason it cannot, such as "cannot encode a function at .a[2]" (-1). */
int ml_json_encode(lua_State *L, int idx);

/* Appends the JSON text of the value at idx to b: 0, or -1 (b as it
 * was, its buffer perhaps moved; nothing pushed: ml_json_encode words
 * the reason). */
int ml_json_encode_append(lua_State *L, int idx, ml_buf *b);

/* Pushes and returns the text a log shows for the value at idx: a table
 * without __tostring as JSON (its contents, not its address), anything
 * else as tostring gives it. */
const char *ml_json_describe(lua_State *L, int idx);

/* 1 if s[0..n) is UTF-8 (shortest forms, no surrogates), else 0. */
int ml_json_utf8_valid(const char *s, size_t n);

/* Adds core.json_encode, core.json_integers, core.json_utf8 and
 * core.describe to the table on top. */
void ml_lib_json_register(lua_State *L);

#endif
