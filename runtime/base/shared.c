/*
 * shared.c - the store behind moonlet.shared, in memory every worker maps:
 * a header with a process-shared robust mutex, a hash table of offsets
 * and the arena (arena.c) holding the entries, kept in LRU order.  A
 * process that dies holding the lock leaves entries a walk of the arena
 * can trust; the next one to lock rebuilds the rest from them.  Lua types
 * and clocks are the caller's (lib_shared.c).
 */
#define _GNU_SOURCE                 /* memfd_create */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <uv.h>
#include "base/arena.h"
#include "base/log.h"
#include "base/shared.h"

#define MAGIC 0x316d68736e6f6f6dULL  /* "moonshm1" */
#define MAX_EVICT 64         /* LRU entries one set may evict for room */
#define EXPIRE_STEP 2        /* expired LRU entries each set drops */
#define MAX_KEY 65535

#define COMMIT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

/*
 * The start of the mapping.  'magic', 'size', 'lock', the bucket array's
 * place and the arena's bounds are written once, when the store is made;
 * the rest changes under the lock and is rebuilt after a crash.
 */
typedef struct {
  uint64_t magic;            /* written last by the process making it */
  uint64_t size;             /* bytes of the mapping */
  pthread_mutex_t lock;      /* process-shared and robust */
  uint64_t nbuckets;         /* a power of two */
  uint64_t buckets;          /* offset of uint64_t[nbuckets] */
  uint64_t seq;              /* entry versions and LRU ticks */
  uint64_t newest, oldest;   /* the LRU list's ends */
  uint64_t count;
  uint64_t evictions, recoveries, lost;
  ml_arena arena;
} store;

/* One process's handle.  Owned by the server (or the test using it). */
struct ml_shared {
  int fd;             /* the memory; -1: anonymous, this process's own */
  size_t want;        /* the size to make the store with */
  int fixed;          /* the host chose 'want': the app cannot change it */
  store *st;          /* the mapping once attached, else NULL */
  char *base;         /* == (char *)st */
  size_t mapped;
  char *buf;          /* copies out of the store: values and keys */
  size_t cap;
  ml_shared_key *refs;  /* ml_shared_keys' list, into 'buf' */
  size_t nrefs;
  char *stall_key;    /* MOONLET_SHARED_STALL (spec/shared_workers) */
  size_t stall_len;
};

static uint64_t hash_key(const char *k, size_t n) {   /* FNV-1a */
  uint64_t h = 14695981039346656037ULL;
  while (n-- > 0)
    h = (h ^ (unsigned char)*k++) * 1099511628211ULL;
  return h;
}

static char *key_of(ml_block *b) {
  return (char *)(b + 1);
}

static uint64_t *buckets(ml_shared *sh) {
  return (uint64_t *)(sh->base + sh->st->buckets);
}

/*
** {======================================================
** Making and mapping the store
** =======================================================
*/

int ml_shared_memfd(void) {
#ifdef __linux__
  int fd = memfd_create("moonlet.shared", MFD_CLOEXEC);
#else
  char name[64];
  int fd;
  snprintf(name, sizeof name, "/moonlet.shared.%ld", (long)getpid());
  if ((fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600)) >= 0) {
    shm_unlink(name);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
#endif
  return fd >= 0 ? fd : -errno;
}

ml_shared *ml_shared_new(int fd, size_t size) {
  ml_shared *sh = calloc(1, sizeof *sh);
  const char *stall = getenv("MOONLET_SHARED_STALL");
  if (sh == NULL)
    return NULL;
  sh->fd = fd;
  sh->fixed = size > 0;
  sh->want = size > 0 ? size : ML_SHARED_DEFAULT_SIZE;
  if (stall != NULL && *stall != '\0') {
    sh->stall_len = strlen(stall);
    if ((sh->stall_key = malloc(sh->stall_len)) == NULL) {
      free(sh);
      return NULL;
    }
    memcpy(sh->stall_key, stall, sh->stall_len);
  }
  return sh;
}

void ml_shared_free(ml_shared *sh) {
  if (sh == NULL)
    return;
  if (sh->st != NULL)
    munmap(sh->base, sh->mapped);
  free(sh->buf);
  free(sh->refs);
  free(sh->stall_key);
  free(sh);
}

int ml_shared_want_size(ml_shared *sh, size_t size, size_t *actual) {
  if (size < ML_SHARED_MIN_SIZE)
    return UV_EINVAL;
  if (sh->fixed)
    return 0;
  if (sh->st != NULL && size != sh->mapped) {
    *actual = sh->mapped;
    return UV_EBUSY;
  }
  sh->want = size;
  return 0;
}

static uint64_t align_up(uint64_t n) {
  return (n + ML_ARENA_ALIGN - 1) & ~(uint64_t)(ML_ARENA_ALIGN - 1);
}

/* A process-shared robust mutex in the store; 0 or an errno. */
static int init_lock(pthread_mutex_t *m) {
  pthread_mutexattr_t a;
  int rc;
  if ((rc = pthread_mutexattr_init(&a)) != 0)
    return rc;
  if ((rc = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) == 0 &&
      (rc = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) == 0)
    rc = pthread_mutex_init(m, &a);
  pthread_mutexattr_destroy(&a);
  return rc;
}

/* Lays out an empty store over fresh memory: header, buckets (one per
 * 256 bytes), arena.  The magic goes last: a process dying before it
 * leaves memory the next one makes again. */
static int make_store(char *base, size_t size) {
  store *st = (store *)base;
  uint64_t nb = 64, start;
  int rc;
  memset(st, 0, sizeof *st);
  while (nb * 256 < size)
    nb <<= 1;
  st->size = size;
  st->nbuckets = nb;
  st->buckets = align_up(sizeof *st);
  start = align_up(st->buckets + nb * sizeof(uint64_t));
  memset(base + st->buckets, 0, nb * sizeof(uint64_t));
  if ((rc = init_lock(&st->lock)) != 0)
    return -rc;
  ml_arena_init(base, &st->arena, start,
                size & ~(uint64_t)(ML_ARENA_ALIGN - 1));
  COMMIT(&st->magic, MAGIC);
  return 0;
}

static int map(ml_shared *sh, size_t size) {
  int flags = sh->fd < 0 ? MAP_SHARED | MAP_ANONYMOUS : MAP_SHARED;
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, flags, sh->fd, 0);
  if (p == MAP_FAILED)
    return -errno;
  sh->base = p;
  sh->st = p;
  sh->mapped = size;
  return 0;
}

/* A POSIX record lock on the memory's first byte (F_SETLKW, or F_UNLCK):
 * held by a process, so workers sharing one descriptor exclude each other
 * (flock's would not: it belongs to the descriptor). */
static int lock_fd(int fd, short type) {
  struct flock l;
  memset(&l, 0, sizeof l);
  l.l_type = type;
  l.l_whence = SEEK_SET;
  l.l_len = 1;
  while (fcntl(fd, F_SETLKW, &l) != 0)
    if (errno != EINTR)
      return -errno;
  return 0;
}

/* The first process to map shared memory sizes it and makes the store;
 * the others map what it made.  The record lock orders them. */
static int attach_fd(ml_shared *sh) {
  struct stat s;
  int rc;
  if ((rc = lock_fd(sh->fd, F_WRLCK)) != 0)
    return rc;
  if (fstat(sh->fd, &s) != 0)
    rc = -errno;
  else if (s.st_size == 0 && ftruncate(sh->fd, (off_t)sh->want) != 0)
    rc = -errno;
  else if ((rc = map(sh, s.st_size ? (size_t)s.st_size : sh->want)) == 0 &&
           sh->st->magic != MAGIC)
    rc = make_store(sh->base, sh->mapped);
  lock_fd(sh->fd, F_UNLCK);
  return rc;
}

static int attach(ml_shared *sh) {
  int rc;
  if (sh->fd >= 0)
    rc = attach_fd(sh);
  else if ((rc = map(sh, sh->want)) == 0)
    rc = make_store(sh->base, sh->mapped);
  if (rc != 0 && sh->st != NULL) {
    munmap(sh->base, sh->mapped);
    sh->st = NULL;
  }
  if (rc != 0)
    ml_log(MOONLET_LOG_ERROR, "moonlet.shared: cannot map %zu bytes: %s",
           sh->want, uv_strerror(rc));
  return rc;
}

/* }====================================================== */

/*
** {======================================================
** The LRU list and the hash chains
** =======================================================
*/

static void lru_unlink(ml_shared *sh, uint64_t off) {
  store *st = sh->st;
  ml_block *b = ML_BLOCK(sh->base, off);
  if (b->prev != 0)
    ML_BLOCK(sh->base, b->prev)->older = b->older;
  else
    st->newest = b->older;
  if (b->older != 0)
    ML_BLOCK(sh->base, b->older)->prev = b->prev;
  else
    st->oldest = b->prev;
  b->prev = b->older = 0;
}

static void lru_push(ml_shared *sh, uint64_t off) {
  store *st = sh->st;
  ml_block *b = ML_BLOCK(sh->base, off);
  b->prev = 0;
  b->older = st->newest;
  if (st->newest != 0)
    ML_BLOCK(sh->base, st->newest)->prev = off;
  else
    st->oldest = off;
  st->newest = off;
}

/* A use: the entry becomes the newest. */
static void touch(ml_shared *sh, uint64_t off) {
  ML_BLOCK(sh->base, off)->tick = ++sh->st->seq;
  if (sh->st->newest != off) {
    lru_unlink(sh, off);
    lru_push(sh, off);
  }
}

/* The link that holds key's entry, or the 0 ending its chain. */
static uint64_t *find(ml_shared *sh, const char *key, size_t klen,
                      uint64_t h) {
  uint64_t *p = &buckets(sh)[h & (sh->st->nbuckets - 1)];
  while (*p != 0) {
    ml_block *b = ML_BLOCK(sh->base, *p);
    if (b->hash == h && b->klen == klen &&
        memcmp(key_of(b), key, klen) == 0)
      return p;
    p = &b->next;
  }
  return p;
}

/* The link that holds the entry at off (it is in its chain). */
static uint64_t *link_of(ml_shared *sh, uint64_t off) {
  ml_block *b = ML_BLOCK(sh->base, off);
  uint64_t *p = &buckets(sh)[b->hash & (sh->st->nbuckets - 1)];
  while (*p != off)
    p = &ML_BLOCK(sh->base, *p)->next;
  return p;
}

static int expired(const ml_block *b, uint64_t now) {
  return b->expires != 0 && b->expires <= now;
}

/* Takes the entry out of its chain and the LRU list, and frees it.  Its
 * block says USED until the end: a crash before brings it back. */
static void drop(ml_shared *sh, uint64_t off) {
  uint64_t *p = link_of(sh, off);
  *p = ML_BLOCK(sh->base, off)->next;
  lru_unlink(sh, off);
  sh->st->count--;
  ml_arena_free(sh->base, &sh->st->arena, off);
}

/* Drops a few expired entries from the old end of the LRU list. */
static void expire_some(ml_shared *sh, uint64_t now) {
  int i;
  for (i = 0; i < EXPIRE_STEP && sh->st->oldest != 0; i++) {
    if (!expired(ML_BLOCK(sh->base, sh->st->oldest), now))
      return;
    drop(sh, sh->st->oldest);
  }
}

/* }====================================================== */

/*
** {======================================================
** Locking, and the rebuild after a crash
** =======================================================
*/

static void recover(ml_shared *sh);

/* Maps the store on first use and takes its lock: 0 or an error. */
static int lock(ml_shared *sh) {
  int rc;
  if (sh->st == NULL && (rc = attach(sh)) != 0)
    return rc;
  rc = pthread_mutex_lock(&sh->st->lock);
  if (rc == EOWNERDEAD) {
    recover(sh);
    pthread_mutex_consistent(&sh->st->lock);
    return 0;
  }
  return rc == 0 ? 0 : UV_EIO;     /* ENOTRECOVERABLE: never unlocked
                                      without being made consistent */
}

static void unlock(ml_shared *sh) {
  pthread_mutex_unlock(&sh->st->lock);
}

typedef struct {
  ml_shared *sh;
  uint64_t entries, dropped, max_seq;
} rebuild;

/* Whether a USED block's fields make an entry this store could have
 * written: its key and value inside it, a known type, the right hash. */
static int entry_ok(ml_block *b) {
  uint64_t room = b->size - ML_BLOCK_MIN;
  if (b->klen == 0 || b->klen > MAX_KEY || b->type > ML_SHARED_BOOLEAN)
    return 0;
  if (b->type != ML_SHARED_STRING && b->vlen != 0)
    return 0;
  return (uint64_t)b->klen + b->vlen <= room &&
         b->hash == hash_key(key_of(b), b->klen);
}

/* ml_arena_rebuild's question about each entry: puts it in its chain;
 * of two with one key, the later write stays. */
static int keep_entry(uint64_t off, void *ud) {
  rebuild *r = ud;
  ml_shared *sh = r->sh;
  ml_block *b = ML_BLOCK(sh->base, off), *other;
  uint64_t *p;
  if (!entry_ok(b)) {
    r->dropped++;
    return 0;
  }
  if (b->seq > r->max_seq)
    r->max_seq = b->seq;
  if (b->tick > r->max_seq)
    r->max_seq = b->tick;
  p = find(sh, key_of(b), b->klen, b->hash);
  r->dropped += *p != 0;
  if (*p != 0 && (other = ML_BLOCK(sh->base, *p))->seq > b->seq)
    return 0;
  if (*p != 0) {                    /* b replaces the older one */
    b->next = other->next;
    other->state = ML_BLOCK_FREE;
  } else {
    b->next = 0;
    r->entries++;
  }
  *p = off;
  return 1;
}

static int by_tick(const void *x, const void *y) {
  const uint64_t *a = x, *b = y;   /* pairs: tick, offset */
  return (a[0] > b[0]) - (a[0] < b[0]);
}

/* The LRU list again, from each entry's last use; out of memory, the
 * order of the arena will do. */
static void rebuild_lru(ml_shared *sh) {
  store *st = sh->st;
  uint64_t off, n = 0, *pairs = malloc(st->count * 2 * sizeof *pairs + 1);
  ml_arena *a = &st->arena;
  st->newest = st->oldest = 0;
  for (off = a->start; off < a->end; off += ML_BLOCK(sh->base, off)->size) {
    if (ML_BLOCK(sh->base, off)->state != ML_BLOCK_USED)
      continue;
    if (pairs == NULL) {
      lru_push(sh, off);
      continue;
    }
    pairs[2 * n] = ML_BLOCK(sh->base, off)->tick;
    pairs[2 * n++ + 1] = off;
  }
  if (pairs == NULL)
    return;
  qsort(pairs, n, 2 * sizeof *pairs, by_tick);
  for (off = 0; off < n; off++)
    lru_push(sh, pairs[2 * off + 1]);
  free(pairs);
}

static double ms_since(const struct timespec *t0) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (t.tv_sec - t0->tv_sec) * 1e3 + (t.tv_nsec - t0->tv_nsec) / 1e6;
}

/*
 * The lock's last holder died: its update may be half done.  Every link
 * is rebuilt from the arena's blocks, whose sizes and states it changed
 * one store at a time: an entry it wrote is there or not, and of a key's
 * old and new entry the newer wins.
 */
static void recover(ml_shared *sh) {
  store *st = sh->st;
  rebuild r;
  struct timespec t0;
  uint64_t lost;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  memset(&r, 0, sizeof r);
  r.sh = sh;
  memset(buckets(sh), 0, st->nbuckets * sizeof(uint64_t));
  lost = ml_arena_rebuild(sh->base, &st->arena, keep_entry, &r);
  st->count = r.entries;
  rebuild_lru(sh);
  if (r.max_seq >= st->seq)
    st->seq = r.max_seq + 1;
  st->recoveries++;
  st->lost += lost;
  ml_log(MOONLET_LOG_WARN, "moonlet.shared: a process died holding the "
         "store's lock; rebuilt it in %.1f ms: %llu entries kept, %llu "
         "dropped, %llu bytes lost", ms_since(&t0),
         (unsigned long long)r.entries, (unsigned long long)r.dropped,
         (unsigned long long)lost);
}

/* }====================================================== */

/*
** {======================================================
** Entries
** =======================================================
*/

static int is_number(const ml_shared_value *v) {
  return v->type == ML_SHARED_INTEGER || v->type == ML_SHARED_NUMBER;
}

static uint64_t bits_of(const ml_shared_value *v) {
  uint64_t u = 0;
  if (v->type == ML_SHARED_INTEGER)
    u = (uint64_t)v->i;
  else if (v->type == ML_SHARED_NUMBER)
    memcpy(&u, &v->n, sizeof u);
  else if (v->type == ML_SHARED_BOOLEAN)
    u = v->b != 0;
  return u;
}

/* A copy of b's value in *out; a string goes to the handle's buffer.
 * 0, or UV_ENOMEM. */
static int read_value(ml_shared *sh, ml_block *b, ml_shared_value *out) {
  memset(out, 0, sizeof *out);
  out->type = (int)b->type;
  if (b->type == ML_SHARED_STRING) {
    if (b->vlen > sh->cap) {
      char *p = realloc(sh->buf, b->vlen);
      if (p == NULL)
        return UV_ENOMEM;
      sh->buf = p;
      sh->cap = b->vlen;
    }
    memcpy(sh->buf, key_of(b) + b->klen, b->vlen);
    out->s = sh->buf;
    out->len = b->vlen;
  } else if (b->type == ML_SHARED_INTEGER) {
    out->i = (long long)b->num;
  } else if (b->type == ML_SHARED_NUMBER) {
    memcpy(&out->n, &b->num, sizeof out->n);
  } else {
    out->b = b->num != 0;
  }
  return 0;
}

/* The test hook of spec/shared_workers_spec.lua: a write to this key
 * stops here, holding the lock, until the process is killed. */
static void maybe_stall(ml_shared *sh, const char *key, size_t klen) {
  if (sh->stall_key == NULL || klen != sh->stall_len ||
      memcmp(key, sh->stall_key, klen) != 0)
    return;
  ml_log(MOONLET_LOG_WARN, "moonlet.shared: MOONLET_SHARED_STALL: process "
         "%ld stops holding the lock", (long)getpid());
  for (;;)
    pause();
}

/* A block for key and v, from free space or, with 'evict', by dropping
 * the oldest entries; 0 when there is no room. */
static uint64_t room_for(ml_shared *sh, uint64_t size, int evict) {
  store *st = sh->st;
  uint64_t off;
  int n = 0;
  if (size == 0 || size > st->arena.end - st->arena.start)
    return 0;
  while ((off = ml_arena_alloc(sh->base, &st->arena, size)) == 0 &&
         evict && n++ < MAX_EVICT && st->oldest != 0) {
    drop(sh, st->oldest);
    st->evictions++;
  }
  return off;
}

/*
 * Writes a new entry for key (replacing the one at 'old', if not 0): the
 * new block is filled while it still says FREE, then marked USED (from
 * here a crash keeps the new value), put first in its chain, and only then
 * is the old one taken out.  0, or UV_ENOSPC.
 */
static int put(ml_shared *sh, const char *key, size_t klen, uint64_t h,
               const ml_shared_value *v, uint64_t expires, uint64_t old,
               int evict) {
  store *st = sh->st;
  size_t vlen = v->type == ML_SHARED_STRING ? v->len : 0;
  uint64_t off, *head;
  ml_block *b;
  if (old != 0)
    lru_unlink(sh, old);             /* not to be evicted for itself */
  off = room_for(sh, ml_arena_block_size((uint64_t)klen + vlen), evict);
  if (off == 0) {
    if (old != 0)
      lru_push(sh, old);
    return UV_ENOSPC;
  }
  b = ML_BLOCK(sh->base, off);
  b->klen = (uint32_t)klen;
  b->type = (uint32_t)v->type;
  b->vlen = (uint32_t)vlen;
  b->seq = b->tick = ++st->seq;
  b->expires = expires;
  b->hash = h;
  b->num = bits_of(v);
  memcpy(key_of(b), key, klen);
  if (vlen > 0)
    memcpy(key_of(b) + klen, v->s, vlen);
  ML_ARENA_POINT(101);
  COMMIT(&b->state, ML_BLOCK_USED);
  maybe_stall(sh, key, klen);
  ML_ARENA_POINT(102);
  head = &buckets(sh)[h & (st->nbuckets - 1)];
  b->next = *head;
  *head = off;
  lru_push(sh, off);
  st->count++;
  ML_ARENA_POINT(103);
  if (old != 0) {
    *link_of(sh, old) = ML_BLOCK(sh->base, old)->next;
    st->count--;
    ML_ARENA_POINT(104);
    ml_arena_free(sh->base, &st->arena, old);
  }
  return 0;
}

/* The live entry for key (an expired one is dropped), or 0. */
static uint64_t lookup(ml_shared *sh, const char *key, size_t klen,
                       uint64_t h, uint64_t now) {
  uint64_t off = *find(sh, key, klen, h);
  if (off != 0 && expired(ML_BLOCK(sh->base, off), now)) {
    drop(sh, off);
    return 0;
  }
  return off;
}

int ml_shared_get(ml_shared *sh, const char *key, size_t klen, uint64_t now,
                  ml_shared_value *out) {
  uint64_t h = hash_key(key, klen), off;
  int rc;
  if ((rc = lock(sh)) != 0)
    return rc;
  if ((off = lookup(sh, key, klen, h, now)) != 0 &&
      (rc = read_value(sh, ML_BLOCK(sh->base, off), out)) == 0) {
    touch(sh, off);
    rc = 1;
  }
  unlock(sh);
  return rc;
}

int ml_shared_set(ml_shared *sh, const char *key, size_t klen,
                  const ml_shared_value *v, uint64_t ttl_ms, uint64_t now,
                  int only_new) {
  uint64_t h = hash_key(key, klen), old;
  int rc;
  if ((rc = lock(sh)) != 0)
    return rc;
  expire_some(sh, now);
  old = lookup(sh, key, klen, h, now);
  if (old != 0 && only_new)
    rc = UV_EEXIST;
  else
    rc = put(sh, key, klen, h, v, ttl_ms > 0 ? now + ttl_ms : 0, old,
             !only_new);
  unlock(sh);
  return rc;
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
    r.n = (a->type == ML_SHARED_INTEGER ? (double)a->i : a->n) +
          (b->type == ML_SHARED_INTEGER ? (double)b->i : b->n);
  }
  return r;
}

/* incr on a live entry: a sum of the same type is stored in place (one
 * aligned store); one that turns an integer into a float is a new entry
 * that keeps the expiry time. */
static int incr_entry(ml_shared *sh, uint64_t off, const char *key,
                      size_t klen, const ml_shared_value *by,
                      ml_shared_value *out) {
  ml_block *b = ML_BLOCK(sh->base, off);
  ml_shared_value cur;
  if (b->type != ML_SHARED_INTEGER && b->type != ML_SHARED_NUMBER)
    return UV_EINVAL;
  read_value(sh, b, &cur);           /* a number: cannot fail */
  *out = add(&cur, by);
  if ((uint32_t)out->type != b->type)
    return put(sh, key, klen, b->hash, out, b->expires, off, 0);
  COMMIT(&b->num, bits_of(out));
  touch(sh, off);
  return 0;
}

int ml_shared_incr(ml_shared *sh, const char *key, size_t klen,
                   const ml_shared_value *by, const ml_shared_value *init,
                   uint64_t now, ml_shared_value *out) {
  uint64_t h = hash_key(key, klen), off;
  int rc;
  if (!is_number(by) || (init != NULL && !is_number(init)))
    return UV_EINVAL;
  if ((rc = lock(sh)) != 0)
    return rc;
  if ((off = lookup(sh, key, klen, h, now)) != 0) {
    rc = incr_entry(sh, off, key, klen, by, out);
  } else if (init == NULL) {
    rc = UV_ENOENT;
  } else {
    *out = add(init, by);
    rc = put(sh, key, klen, h, out, 0, 0, 0);
  }
  unlock(sh);
  return rc;
}

int ml_shared_delete(ml_shared *sh, const char *key, size_t klen,
                     uint64_t now) {
  uint64_t h = hash_key(key, klen), off;
  int rc;
  if ((rc = lock(sh)) != 0)
    return rc;
  if ((off = lookup(sh, key, klen, h, now)) != 0)
    drop(sh, off);
  unlock(sh);
  return off != 0;
}

/* }====================================================== */

/*
** {======================================================
** Listing keys
** =======================================================
*/

/* Appends a key to the handle's buffer as its length (a size_t) then
 * its bytes; 0 or UV_ENOMEM. */
static int copy_key(ml_shared *sh, size_t *used, ml_block *b) {
  size_t need = *used + sizeof(size_t) + b->klen;
  if (need > sh->cap) {
    size_t cap = sh->cap * 2 > need ? sh->cap * 2 : need;
    char *p = realloc(sh->buf, cap);
    if (p == NULL)
      return UV_ENOMEM;
    sh->buf = p;
    sh->cap = cap;
  }
  memcpy(sh->buf + *used, &(size_t){ b->klen }, sizeof(size_t));
  memcpy(sh->buf + *used + sizeof(size_t), key_of(b), b->klen);
  *used = need;
  return 0;
}

/* Copies up to max live keys (0: all) into the buffer, under the lock;
 * *n gets their number, *used the bytes. */
static int collect_keys(ml_shared *sh, uint64_t now, size_t max, size_t *n,
                        size_t *used) {
  uint64_t i, off, next;
  int rc = 0;
  *n = *used = 0;
  for (i = 0; i < sh->st->nbuckets && rc == 0; i++)
    for (off = buckets(sh)[i]; off != 0 && rc == 0; off = next) {
      ml_block *b = ML_BLOCK(sh->base, off);
      next = b->next;
      if (expired(b, now))
        drop(sh, off);
      else if (max != 0 && *n >= max)
        return 0;
      else if ((rc = copy_key(sh, used, b)) == 0)
        (*n)++;
    }
  return rc;
}

static int by_key(const void *a, const void *b) {
  const ml_shared_key *x = a, *y = b;
  size_t n = x->klen < y->klen ? x->klen : y->klen;
  int c = memcmp(x->key, y->key, n);
  return c != 0 ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

int ml_shared_keys(ml_shared *sh, uint64_t now, size_t max,
                   const ml_shared_key **keys, size_t *n) {
  size_t used, i, at = 0;
  int rc;
  *n = 0;
  if ((rc = lock(sh)) != 0)
    return rc;
  rc = collect_keys(sh, now, max, n, &used);
  unlock(sh);
  if (rc == 0 && *n > sh->nrefs) {
    ml_shared_key *r = realloc(sh->refs, *n * sizeof *r);
    if (r == NULL)
      rc = UV_ENOMEM;
    else
      sh->refs = r, sh->nrefs = *n;
  }
  if (rc != 0) {
    *n = 0;
    return rc;
  }
  for (i = 0; i < *n; i++) {
    memcpy(&sh->refs[i].klen, sh->buf + at, sizeof(size_t));
    sh->refs[i].key = sh->buf + at + sizeof(size_t);
    at += sizeof(size_t) + sh->refs[i].klen;
  }
  qsort(sh->refs, *n, sizeof *sh->refs, by_key);
  *keys = sh->refs;
  return 0;
}

/* }====================================================== */

int ml_shared_stat(ml_shared *sh, ml_shared_stats *out) {
  int rc;
  if ((rc = lock(sh)) != 0)
    return rc;
  out->size = sh->mapped;
  out->capacity = sh->st->arena.end - sh->st->arena.start;
  out->used = sh->st->arena.used;
  out->count = sh->st->count;
  out->evictions = sh->st->evictions;
  out->recoveries = sh->st->recoveries;
  out->lost = sh->st->lost;
  unlock(sh);
  return 0;
}

/*
** {======================================================
** Checking (tests)
** =======================================================
*/

#define BAD(...) (snprintf(why, n, __VA_ARGS__), -1)

/* Every chain: USED entries in their bucket, each key found first where
 * it is (no duplicates); *in_chains gets their number. */
static int check_chains(ml_shared *sh, uint64_t *in_chains, char *why,
                        size_t n) {
  uint64_t i, off;
  *in_chains = 0;
  for (i = 0; i < sh->st->nbuckets; i++)
    for (off = buckets(sh)[i]; off != 0; off = ML_BLOCK(sh->base, off)->next) {
      ml_block *b = ML_BLOCK(sh->base, off);
      if (b->state != ML_BLOCK_USED || !entry_ok(b) ||
          (b->hash & (sh->st->nbuckets - 1)) != i ||
          *find(sh, key_of(b), b->klen, b->hash) != off)
        return BAD("bucket %llu: bad entry at %llu", (unsigned long long)i,
                   (unsigned long long)off);
      ++*in_chains;
    }
  return 0;
}

/* The LRU list, newest first: linked both ways, ticks never rising. */
static int check_lru(ml_shared *sh, uint64_t count, char *why, size_t n) {
  uint64_t off, prev = 0, k = 0, tick = UINT64_MAX;
  for (off = sh->st->newest; off != 0 && k <= count;
       off = ML_BLOCK(sh->base, off)->older, k++) {
    ml_block *b = ML_BLOCK(sh->base, off);
    if (b->prev != prev || b->tick > tick || b->state != ML_BLOCK_USED)
      return BAD("LRU list: bad entry at %llu", (unsigned long long)off);
    prev = off;
    tick = b->tick;
  }
  if (k != count || sh->st->oldest != prev)
    return BAD("LRU list: %llu entries for %llu", (unsigned long long)k,
               (unsigned long long)count);
  return 0;
}

int ml_shared_check(ml_shared *sh, char *why, size_t n) {
  uint64_t nused, in_chains;
  int rc;
  if ((rc = lock(sh)) != 0)
    return BAD("cannot lock: %s", uv_strerror(rc));
  rc = ml_arena_check(sh->base, &sh->st->arena, &nused, why, n);
  if (rc == 0)
    rc = check_chains(sh, &in_chains, why, n);
  if (rc == 0 && (in_chains != nused || nused != sh->st->count))
    rc = BAD("%llu entries, %llu in chains, count %llu",
             (unsigned long long)nused, (unsigned long long)in_chains,
             (unsigned long long)sh->st->count);
  if (rc == 0)
    rc = check_lru(sh, nused, why, n);
  unlock(sh);
  return rc;
}

/* }====================================================== */
