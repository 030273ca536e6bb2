/*
 * shared.h - the store behind moonlet.shared: keys to strings, numbers and
 * booleans with an optional time to live.  The server owns one store; it
 * outlives every Lua state, so values survive reloads.  Pure C: what Lua
 * sees of it is lib_shared.c's.
 */
#ifndef ML_SHARED_H
#define ML_SHARED_H

#include <stddef.h>
#include <stdint.h>

typedef struct ml_shared ml_shared;

enum { ML_SHARED_STRING, ML_SHARED_INTEGER, ML_SHARED_NUMBER,
       ML_SHARED_BOOLEAN };

/*
 * One value.  A string read from the store points into it and stays
 * valid until the next change to the store.
 */
typedef struct {
  int type;            /* ML_SHARED_* */
  const char *s;       /* STRING: its bytes (not NUL-terminated) */
  size_t len;
  long long i;         /* INTEGER */
  double n;            /* NUMBER */
  int b;               /* BOOLEAN: 0 or 1 */
} ml_shared_value;

/* An empty store; NULL when out of memory.  ml_shared_free frees it. */
ml_shared *ml_shared_new(void);
void ml_shared_free(ml_shared *sh);

/*
 * Every call takes 'now', a monotonic clock in milliseconds: an entry whose
 * expiry time is at or before 'now' is gone.  The store never reads a clock
 * itself, so tests can move time.
 */

/* Copies the value of 'key' into *out: 1, or 0 when absent. */
int ml_shared_get(ml_shared *sh, const char *key, size_t klen, uint64_t now,
                  ml_shared_value *out);

/*
 * Stores a copy of *v under 'key', expiring 'ttl_ms' after 'now' (0:
 * never).  With 'only_new', an existing key is left alone and UV_EEXIST
 * returned.  0, UV_EEXIST or UV_ENOMEM.
 */
int ml_shared_set(ml_shared *sh, const char *key, size_t klen,
                  const ml_shared_value *v, uint64_t ttl_ms, uint64_t now,
                  int only_new);

/*
 * Adds the number *by to the number under 'key' and puts the sum in *out;
 * the entry keeps its expiry time.  An absent key starts from *init when
 * given (never expiring), else UV_ENOENT.  UV_EINVAL when the value there
 * is not a number; UV_ENOMEM.  Integers wrap around as in Lua; an integer
 * and a float give a float.
 */
int ml_shared_incr(ml_shared *sh, const char *key, size_t klen,
                   const ml_shared_value *by, const ml_shared_value *init,
                   uint64_t now, ml_shared_value *out);

/* Removes 'key': 1 if it was there, 0 if not. */
int ml_shared_delete(ml_shared *sh, const char *key, size_t klen,
                     uint64_t now);

/*
 * Calls fn for each live key in byte order (expired ones are dropped on
 * the way).  0, or UV_ENOMEM (fn not called).  fn must not change the
 * store.
 */
int ml_shared_keys(ml_shared *sh, uint64_t now,
                   void (*fn)(const char *key, size_t klen, void *ud),
                   void *ud);

/* The number of entries, expired ones not yet dropped included. */
size_t ml_shared_count(const ml_shared *sh);

#endif
