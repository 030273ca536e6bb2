/*
 * util.h - small helpers every runtime file may use: container_of (libuv
 * keeps its own private) and a growable byte buffer.
 */
#ifndef ML_UTIL_H
#define ML_UTIL_H

#include <stddef.h>
#include <string.h>

#define container_of(ptr, type, member) \
  ((type *)((char *)(ptr) - offsetof(type, member)))

#define ML_UNUSED(x) ((void)(x))

/* A byte buffer that owns its memory; all zero is a valid empty buffer. */
typedef struct {
  char *data;
  size_t len;
  size_t cap;
} ml_buf;

/* Makes room for 'extra' more bytes; 0, or -1 when out of memory. */
int ml_buf_reserve(ml_buf *b, size_t extra);
/* Appends n bytes; 0 or -1. */
/* Like ml_buf_reserve, but an empty buffer gets exactly 'extra' bytes:
 * for data that is likely to stay as it is. */
int ml_buf_reserve_exact(ml_buf *b, size_t extra);

int ml_buf_append(ml_buf *b, const void *p, size_t n);
/* Frees the memory and empties the buffer. */
void ml_buf_free(ml_buf *b);

/* Appends a string literal (only a literal: sizeof must see the array;
 * the "" s "" makes anything else fail to compile). */
#define ML_BUF_LIT(b, s) ml_buf_append((b), "" s "", sizeof(s) - 1)

/* ASCII case-insensitive equality of a (length n) and NUL-terminated lit. */
int ml_strieq(const char *a, size_t n, const char *lit);

/* Room for any long long in decimal, its sign and the NUL. */
#define ML_INT_BUFSIZE 21

/* Writes v in decimal (NUL-terminated) into buf, which holds at least
 * ML_INT_BUFSIZE bytes; returns the length.  What "%lld" writes, without
 * printf's cost on paths that write a number per value. */
int ml_fmt_int(char *buf, long long v);

/* Reads s, an optional '-' and decimal digits only, into *out; 0, or -1
 * when s is anything else or out of range (the caller's slow path). */
int ml_parse_int(const char *s, long long *out);

#endif
