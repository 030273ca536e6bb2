/*
 * shared.h - the store behind moonlet.shared: keys to strings, numbers and
 * booleans with an optional time to live, in one region of shared memory
 * that every worker of a server maps, so they all see the same keys.  It
 * outlives every Lua state (reloads) and every worker (restarts).  Pure
 * C: what Lua sees of it is lib_shared.c's.
 */
#ifndef ML_SHARED_H
#define ML_SHARED_H

#include <stddef.h>
#include <stdint.h>

typedef struct ml_shared ml_shared;

enum { ML_SHARED_STRING, ML_SHARED_INTEGER, ML_SHARED_NUMBER,
       ML_SHARED_BOOLEAN };

#define ML_SHARED_DEFAULT_SIZE ((size_t)16 * 1024 * 1024)
#define ML_SHARED_MIN_SIZE ((size_t)64 * 1024)

/* The most keys ml_shared_keys lists when asked for no limit: 0. */
#define ML_SHARED_KEYS_DEFAULT 1024

/*
 * One value.  A string read from the store is a copy in the handle's own
 * memory, valid until the handle's next call.
 */
typedef struct {
  int type;            /* ML_SHARED_* */
  const char *s;       /* STRING: its bytes (not NUL-terminated) */
  size_t len;
  long long i;         /* INTEGER */
  double n;            /* NUMBER */
  int b;               /* BOOLEAN: 0 or 1 */
} ml_shared_value;

/*
 * Memory for a store that processes forked after this call share: a
 * descriptor (close-on-exec) for ml_shared_new in each of them, or a
 * negative error.  Nothing is allocated until the first use.
 */
int ml_shared_memfd(void);

/*
 * One process's handle on a store.  'fd' is ml_shared_memfd's, or -1 for
 * a store of this process alone.  'size' is the store's size in bytes;
 * 0 leaves it to ml_shared_want_size, else 16 MiB.  Nothing is mapped
 * until the first call that reads or writes: the first process to map the
 * memory sets its size and makes the store.  NULL when out of memory.
 * ml_shared_free unmaps; the store lives on while anyone maps it or holds
 * the descriptor, which the handle does not close.
 */
ml_shared *ml_shared_new(int fd, size_t size);
void ml_shared_free(ml_shared *sh);

/*
 * The app's wish for the size (its shared_size option).  0 when it is
 * what the store will have, is ignored (ml_shared_new fixed the size), or
 * is taken; UV_EBUSY when the store is in use with *actual bytes already;
 * UV_EINVAL when it is below ML_SHARED_MIN_SIZE.
 */
int ml_shared_want_size(ml_shared *sh, size_t size, size_t *actual);

/*
 * Every call below takes 'now', the monotonic clock in milliseconds (one
 * clock for every process of the machine): an entry whose expiry time is
 * at or before 'now' is gone.  The store never reads a clock itself, so
 * tests can move time.  Errors common to all: a negative errno when the
 * memory cannot be mapped, UV_ENOMEM when this process is out of memory.
 */

/* Copies the value of 'key' into *out: 1, or 0 when absent. */
int ml_shared_get(ml_shared *sh, const char *key, size_t klen, uint64_t now,
                  ml_shared_value *out);

/*
 * Stores a copy of *v under 'key', expiring 'ttl_ms' after 'now' (0:
 * never).  When there is no room it evicts the least recently used keys
 * (a few dozen at most).  With 'only_new' (add), an existing key is left
 * alone and UV_EEXIST returned, and nothing is evicted.  0, UV_EEXIST, or
 * UV_ENOSPC when no room was found.
 */
int ml_shared_set(ml_shared *sh, const char *key, size_t klen,
                  const ml_shared_value *v, uint64_t ttl_ms, uint64_t now,
                  int only_new);

/*
 * Adds the number *by to the number under 'key' and puts the sum in *out;
 * the entry keeps its expiry time.  An absent key starts from *init when
 * given (never expiring), else UV_ENOENT.  UV_EINVAL when the value there
 * is not a number; UV_ENOSPC when a new entry finds no room (nothing is
 * evicted).  Integers wrap around as in Lua; an integer and a float give
 * a float.
 */
int ml_shared_incr(ml_shared *sh, const char *key, size_t klen,
                   const ml_shared_value *by, const ml_shared_value *init,
                   uint64_t now, ml_shared_value *out);

/* Removes 'key': 1 if it was there, 0 if not. */
int ml_shared_delete(ml_shared *sh, const char *key, size_t klen,
                     uint64_t now);

/* A key listed by ml_shared_keys: a copy in the handle's memory. */
typedef struct {
  const char *key;
  size_t klen;
} ml_shared_key;

/*
 * Lists at most 'max' live keys (0: all of them) in byte order; with more
 * keys in the store, which ones is unspecified.  The keys are copied out
 * under the lock and sorted after it; *keys and the bytes it points to
 * stay valid until the handle's next call.  0, or an error.
 */
int ml_shared_keys(ml_shared *sh, uint64_t now, size_t max,
                   const ml_shared_key **keys, size_t *n);

/* What the store holds, for logs and tests. */
typedef struct {
  size_t size;          /* bytes of the mapping */
  size_t capacity;      /* of which blocks can use */
  size_t used;          /* bytes in entries */
  size_t count;         /* entries, expired ones not yet dropped included */
  uint64_t evictions;   /* keys set has evicted */
  uint64_t recoveries;  /* times a process died holding the lock */
  uint64_t lost;        /* bytes those rebuilds could not trust */
} ml_shared_stats;

int ml_shared_stat(ml_shared *sh, ml_shared_stats *out);

/* Checks every link of the store against its blocks (tests): 0, or -1
 * with what is wrong in why[n]. */
int ml_shared_check(ml_shared *sh, char *why, size_t n);

#endif
