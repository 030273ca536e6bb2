/*
 * shared.c - the key-value store behind moonlet.shared: a chained hash
 * table of copies, each with an optional expiry time.  Expired entries go
 * when they are touched, when the table grows and when keys are listed.
 * Lua types and clocks are the caller's (lib_shared.c).
 */
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "base/shared.h"

#define MIN_BUCKETS 64

/* One key and its value, in one allocation.  Owned by the store. */
typedef struct entry {
  struct entry *next;     /* the bucket's chain */
  uint64_t hash;
  uint64_t expires;       /* ms, as 'now'; 0: never */
  ml_shared_value v;      /* v.s points at key + klen + 1 for strings */
  size_t klen;
  char key[1];            /* klen bytes, NUL, then a string value's bytes */
} entry;

struct ml_shared {
  entry **buckets;
  size_t nbuckets;        /* a power of two */
  size_t count;
};

/* FNV-1a: short keys, no need for anything stronger. */
static uint64_t hash_key(const char *k, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  while (n-- > 0)
    h = (h ^ (unsigned char)*k++) * 1099511628211ULL;
  return h;
}

ml_shared *ml_shared_new(void) {
  ml_shared *sh = calloc(1, sizeof *sh);
  if (sh == NULL)
    return NULL;
  if ((sh->buckets = calloc(MIN_BUCKETS, sizeof *sh->buckets)) == NULL) {
    free(sh);
    return NULL;
  }
  sh->nbuckets = MIN_BUCKETS;
  return sh;
}

void ml_shared_free(ml_shared *sh) {
  size_t i;
  entry *e, *next;
  if (sh == NULL)
    return;
  for (i = 0; i < sh->nbuckets; i++)
    for (e = sh->buckets[i]; e != NULL; e = next) {
      next = e->next;
      free(e);
    }
  free(sh->buckets);
  free(sh);
}

size_t ml_shared_count(const ml_shared *sh) {
  return sh->count;
}

static int expired(const entry *e, uint64_t now) {
  return e->expires != 0 && e->expires <= now;
}

/*
 * The link that points at 'key''s entry (or at the NULL ending its chain).
 * An expired entry met on the way is freed.
 */
static entry **find(ml_shared *sh, const char *key, size_t klen,
                    uint64_t h, uint64_t now) {
  entry **p = &sh->buckets[h & (sh->nbuckets - 1)], *e;
  while ((e = *p) != NULL) {
    if (expired(e, now)) {
      *p = e->next;
      free(e);
      sh->count--;
      continue;
    }
    if (e->hash == h && e->klen == klen && memcmp(e->key, key, klen) == 0)
      return p;
    p = &e->next;
  }
  return p;
}

/* Frees every expired entry. */
static void purge(ml_shared *sh, uint64_t now) {
  size_t i;
  entry **p, *e;
  for (i = 0; i < sh->nbuckets; i++)
    for (p = &sh->buckets[i]; (e = *p) != NULL;)
      if (expired(e, now)) {
        *p = e->next;
        free(e);
        sh->count--;
      } else {
        p = &e->next;
      }
}

/* Doubles the table when it is full, after dropping what has expired;
 * out of memory it just stays as it is (longer chains). */
static void grow(ml_shared *sh, uint64_t now) {
  entry **nb, *e, *next;
  size_t i, n = sh->nbuckets * 2;
  if (sh->count < sh->nbuckets)
    return;
  purge(sh, now);
  if (sh->count < sh->nbuckets / 2 || (nb = calloc(n, sizeof *nb)) == NULL)
    return;
  for (i = 0; i < sh->nbuckets; i++)
    for (e = sh->buckets[i]; e != NULL; e = next) {
      next = e->next;
      e->next = nb[e->hash & (n - 1)];
      nb[e->hash & (n - 1)] = e;
    }
  free(sh->buckets);
  sh->buckets = nb;
  sh->nbuckets = n;
}

/* A new entry holding copies of key and v; NULL when out of memory. */
static entry *make_entry(const char *key, size_t klen, uint64_t h,
                         const ml_shared_value *v) {
  size_t slen = v->type == ML_SHARED_STRING ? v->len : 0;
  entry *e;
  if (klen > ((size_t)-1) / 2 || slen > ((size_t)-1) / 2)
    return NULL;
  if ((e = malloc(sizeof *e + klen + slen + 1)) == NULL)
    return NULL;
  e->next = NULL;
  e->hash = h;
  e->expires = 0;
  e->klen = klen;
  memcpy(e->key, key, klen);
  e->key[klen] = '\0';
  e->v = *v;
  if (v->type == ML_SHARED_STRING) {
    memcpy(e->key + klen + 1, v->s, slen);
    e->v.s = e->key + klen + 1;
  }
  return e;
}

int ml_shared_get(ml_shared *sh, const char *key, size_t klen, uint64_t now,
                  ml_shared_value *out) {
  entry *e = *find(sh, key, klen, hash_key(key, klen), now);
  if (e == NULL)
    return 0;
  *out = e->v;
  return 1;
}

int ml_shared_set(ml_shared *sh, const char *key, size_t klen,
                  const ml_shared_value *v, uint64_t ttl_ms, uint64_t now,
                  int only_new) {
  uint64_t h = hash_key(key, klen);
  entry **p = find(sh, key, klen, h, now), *e;
  if (*p != NULL && only_new)
    return UV_EEXIST;
  if ((e = make_entry(key, klen, h, v)) == NULL)
    return UV_ENOMEM;
  e->expires = ttl_ms > 0 ? now + ttl_ms : 0;
  if (*p != NULL) {                 /* replace it in place */
    e->next = (*p)->next;
    free(*p);
    *p = e;
    return 0;
  }
  *p = e;
  sh->count++;
  grow(sh, now);                    /* after: p may point into the table */
  return 0;
}

static int is_number(const ml_shared_value *v) {
  return v->type == ML_SHARED_INTEGER || v->type == ML_SHARED_NUMBER;
}

static double as_double(const ml_shared_value *v) {
  return v->type == ML_SHARED_INTEGER ? (double)v->i : v->n;
}

/* a + b, as Lua adds: integers wrap around, a float makes a float. */
static ml_shared_value add(const ml_shared_value *a,
                           const ml_shared_value *b) {
  ml_shared_value r;
  memset(&r, 0, sizeof r);
  if (a->type == ML_SHARED_INTEGER && b->type == ML_SHARED_INTEGER) {
    r.type = ML_SHARED_INTEGER;
    r.i = (long long)((unsigned long long)a->i + (unsigned long long)b->i);
  } else {
    r.type = ML_SHARED_NUMBER;
    r.n = as_double(a) + as_double(b);
  }
  return r;
}

int ml_shared_incr(ml_shared *sh, const char *key, size_t klen,
                   const ml_shared_value *by, const ml_shared_value *init,
                   uint64_t now, ml_shared_value *out) {
  uint64_t h = hash_key(key, klen);
  entry *e = *find(sh, key, klen, h, now);
  ml_shared_value sum;
  int rc;
  if (!is_number(by) || (init != NULL && !is_number(init)))
    return UV_EINVAL;
  if (e == NULL) {
    if (init == NULL)
      return UV_ENOENT;
    sum = add(init, by);
    if ((rc = ml_shared_set(sh, key, klen, &sum, 0, now, 0)) != 0)
      return rc;
    *out = sum;
    return 0;
  }
  if (!is_number(&e->v))
    return UV_EINVAL;
  e->v = add(&e->v, by);             /* numbers live in the entry itself */
  *out = e->v;
  return 0;
}

int ml_shared_delete(ml_shared *sh, const char *key, size_t klen,
                     uint64_t now) {
  entry **p = find(sh, key, klen, hash_key(key, klen), now), *e = *p;
  if (e == NULL)
    return 0;
  *p = e->next;
  free(e);
  sh->count--;
  return 1;
}

static int by_key(const void *a, const void *b) {
  const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->key, y->key, n);
  return c != 0 ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

int ml_shared_keys(ml_shared *sh, uint64_t now,
                   void (*fn)(const char *key, size_t klen, void *ud),
                   void *ud) {
  entry **all, *e;
  size_t i, n = 0;
  purge(sh, now);
  if (sh->count == 0)
    return 0;
  if ((all = malloc(sh->count * sizeof *all)) == NULL)
    return UV_ENOMEM;
  for (i = 0; i < sh->nbuckets; i++)
    for (e = sh->buckets[i]; e != NULL; e = e->next)
      all[n++] = e;
  qsort(all, n, sizeof *all, by_key);
  for (i = 0; i < n; i++)
    fn(all[i]->key, all[i]->klen, ud);
  free(all);
  return 0;
}
