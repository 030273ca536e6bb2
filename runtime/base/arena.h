/*
 * arena.h - the block allocator inside moonlet.shared's memory, which
 * every worker maps at an address of its own: blocks are named by their
 * offset from the start of the mapping, never by a pointer.  What a block
 * holds is shared.c's; the lock around every call is shared.c's too.
 */
#ifndef ML_ARENA_H
#define ML_ARENA_H

#include <stddef.h>
#include <stdint.h>

#define ML_ARENA_ALIGN 16
#define ML_ARENA_CLASSES 48

/* A block's state word.  An entry exists once its block says USED: that
 * one aligned store is what commits a write, and a walk of the arena
 * trusts nothing else. */
#define ML_BLOCK_FREE 0x45455246u   /* "FREE" */
#define ML_BLOCK_USED 0x44455355u   /* "USED" */

/*
 * A block's header; an entry's key and string value follow it.  Only
 * 'size' and 'state' are the truth: every other link (free lists, hash
 * chains, LRU order) can be rebuilt from a walk of the arena, which
 * follows 'size' from the first block to the last.
 */
typedef struct ml_block {
  uint64_t size;        /* bytes of the block, header included */
  uint64_t prev_size;   /* the size of the block before (0: first) */
  uint32_t state;       /* ML_BLOCK_FREE or ML_BLOCK_USED */
  uint32_t klen;        /* an entry's key length */
  uint32_t type;        /* an entry's ML_SHARED_* value type */
  uint32_t vlen;        /* a string value's length */
  uint64_t seq;         /* when it was written: of two entries with one
                           key, the later one is the value */
  uint64_t tick;        /* its last use, for the LRU order */
  uint64_t expires;     /* ms of the monotonic clock; 0: never */
  uint64_t hash;
  uint64_t next;        /* the hash chain; a free block: its list */
  uint64_t prev;        /* LRU toward the newest; free: its list */
  uint64_t older;       /* LRU toward the oldest */
  uint64_t num;         /* an integer, a double's bits or a boolean */
} ml_block;

/* The allocator's state, inside the mapping.  Everything but 'start'
 * and 'end' is rebuilt by ml_arena_rebuild. */
typedef struct ml_arena {
  uint64_t start, end;                 /* the first block; past the last */
  uint64_t used;                       /* bytes in allocated blocks */
  uint64_t nonempty;                   /* bit c: free_head[c] has blocks */
  uint64_t free_head[ML_ARENA_CLASSES];
} ml_arena;

#define ML_BLOCK(base, off) ((ml_block *)((char *)(base) + (off)))

/* The smallest block there is: a header. */
#define ML_BLOCK_MIN ((uint64_t)sizeof(ml_block))

/* The block size that holds 'payload' bytes after the header, or 0 when
 * no block could. */
uint64_t ml_arena_block_size(uint64_t payload);

/* One free block over [start, end) of the mapping at 'base'; start and
 * end are aligned by the caller. */
void ml_arena_init(char *base, ml_arena *a, uint64_t start, uint64_t end);

/*
 * A block of exactly 'size' bytes (from ml_arena_block_size), taken off
 * the free lists and still marked FREE: the caller fills it, then marks
 * it USED.  0 when no free block is that large.
 */
uint64_t ml_arena_alloc(char *base, ml_arena *a, uint64_t size);

/* Marks the block FREE (if it is not already) and merges it with free
 * neighbours; it may be one from ml_arena_alloc never marked USED. */
void ml_arena_free(char *base, ml_arena *a, uint64_t off);

/*
 * After a process died holding the lock: walks the blocks from the first,
 * calls keep(off) for each USED one (0: free it; keep may also free one
 * met earlier), then merges neighbouring free blocks and relists them.  A
 * block whose size cannot be right ends the walk: from there on the arena
 * is one free block.  Returns the number of bytes so lost (0 normally).
 */
uint64_t ml_arena_rebuild(char *base, ml_arena *a,
                          int (*keep)(uint64_t off, void *ud), void *ud);

/* Checks every block and free list (tests): 0, or -1 with what is wrong
 * in why[n]; *nused gets the number of USED blocks. */
int ml_arena_check(char *base, const ml_arena *a, uint64_t *nused,
                   char *why, size_t n);

/*
 * Tests make a process die at numbered points of an update, to check that
 * what it leaves can be recovered.  NULL except in those tests; shared.c
 * calls it too, with points from 100 on.
 */
extern void (*ml_arena_test_hook)(int point);

#define ML_ARENA_POINT(n) \
  do { if (ml_arena_test_hook != NULL) ml_arena_test_hook(n); } while (0)

#endif
