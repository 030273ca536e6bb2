/*
 * arena.c - blocks in moonlet.shared's mapping: segregated free lists by
 * size class, splitting and merging by boundary sizes.  A process may die
 * anywhere in here with the lock held, so every change to what a walk of
 * the arena sees (a block's size, its state) is one aligned store made
 * after the bytes it exposes are in place; the lists are rebuilt then.
 */
#include <stdio.h>
#include <string.h>
#include "base/arena.h"

void (*ml_arena_test_hook)(int point);

/* The stores a walk of the arena trusts: one aligned word each, made
 * after every store before it (a dying process leaves them in order). */
#define COMMIT(p, v) __atomic_store_n((p), (v), __ATOMIC_RELEASE)

uint64_t ml_arena_block_size(uint64_t payload) {
  uint64_t n = ML_BLOCK_MIN + payload;
  if (payload > UINT64_MAX / 2)
    return 0;
  return (n + ML_ARENA_ALIGN - 1) & ~(uint64_t)(ML_ARENA_ALIGN - 1);
}

/* Size class: floor(log2(size / ALIGN)); every block of class c + 1 is
 * larger than any block of class c. */
static int class_of(uint64_t size) {
  uint64_t units = size / ML_ARENA_ALIGN;
  int c = 0;
  while (units > 1 && c < ML_ARENA_CLASSES - 1) {
    units >>= 1;
    c++;
  }
  return c;
}

static void list_push(char *base, ml_arena *a, uint64_t off) {
  ml_block *b = ML_BLOCK(base, off);
  int c = class_of(b->size);
  b->prev = 0;
  b->next = a->free_head[c];
  if (b->next != 0)
    ML_BLOCK(base, b->next)->prev = off;
  a->free_head[c] = off;
  a->nonempty |= (uint64_t)1 << c;
}

static void list_remove(char *base, ml_arena *a, uint64_t off) {
  ml_block *b = ML_BLOCK(base, off);
  int c = class_of(b->size);
  if (b->prev != 0)
    ML_BLOCK(base, b->prev)->next = b->next;
  else
    a->free_head[c] = b->next;
  if (b->next != 0)
    ML_BLOCK(base, b->next)->prev = b->prev;
  if (a->free_head[c] == 0)
    a->nonempty &= ~((uint64_t)1 << c);
}

/* The block after off's, or 0 at the end. */
static uint64_t next_of(const ml_arena *a, char *base, uint64_t off) {
  uint64_t n = off + ML_BLOCK(base, off)->size;
  return n < a->end ? n : 0;
}

void ml_arena_init(char *base, ml_arena *a, uint64_t start, uint64_t end) {
  ml_block *b = ML_BLOCK(base, start);
  memset(a, 0, sizeof *a);
  a->start = start;
  a->end = end;
  memset(b, 0, sizeof *b);
  b->size = end - start;
  b->state = ML_BLOCK_FREE;
  list_push(base, a, start);
}

/*
 * A free block of at least 'size': a few of its own class first (first
 * fit), else the head of the smallest larger class that has any.
 */
static uint64_t find_fit(char *base, ml_arena *a, uint64_t size) {
  int c = class_of(size), tries = 8;
  uint64_t off, higher;
  for (off = a->free_head[c]; off != 0 && tries-- > 0;
       off = ML_BLOCK(base, off)->next)
    if (ML_BLOCK(base, off)->size >= size)
      return off;
  if (c + 1 >= ML_ARENA_CLASSES)
    return 0;
  higher = a->nonempty & ~(((uint64_t)2 << c) - 1);
  if (higher == 0)
    return 0;
  return a->free_head[__builtin_ctzll(higher)];
}

/* Cuts off's block to 'size', making the rest a free block: the rest's
 * header first, then the shorter size, so a walk sees one or the other. */
static void split(char *base, ml_arena *a, uint64_t off, uint64_t size) {
  ml_block *b = ML_BLOCK(base, off), *t = ML_BLOCK(base, off + size);
  uint64_t rest = b->size - size, after;
  memset(t, 0, sizeof *t);
  t->size = rest;
  t->prev_size = size;
  t->state = ML_BLOCK_FREE;
  ML_ARENA_POINT(1);
  COMMIT(&b->size, size);
  ML_ARENA_POINT(2);
  if ((after = next_of(a, base, off + size)) != 0)
    ML_BLOCK(base, after)->prev_size = rest;
  list_push(base, a, off + size);
}

uint64_t ml_arena_alloc(char *base, ml_arena *a, uint64_t size) {
  uint64_t off = find_fit(base, a, size);
  if (off == 0)
    return 0;
  list_remove(base, a, off);
  if (ML_BLOCK(base, off)->size - size >= ML_BLOCK_MIN)
    split(base, a, off, size);
  a->used += ML_BLOCK(base, off)->size;
  return off;
}

/* Grows the block at off over the free block after it; neither is on a
 * list any more. */
static void absorb(char *base, uint64_t off, uint64_t nxt) {
  COMMIT(&ML_BLOCK(base, off)->size,
         ML_BLOCK(base, off)->size + ML_BLOCK(base, nxt)->size);
  ML_ARENA_POINT(3);
}

void ml_arena_free(char *base, ml_arena *a, uint64_t off) {
  ml_block *b = ML_BLOCK(base, off);
  uint64_t nxt, prv;
  a->used -= b->size;
  if (b->state != ML_BLOCK_FREE)
    COMMIT(&b->state, ML_BLOCK_FREE);
  ML_ARENA_POINT(4);
  if ((nxt = next_of(a, base, off)) != 0 &&
      ML_BLOCK(base, nxt)->state == ML_BLOCK_FREE) {
    list_remove(base, a, nxt);
    absorb(base, off, nxt);
  }
  if (b->prev_size != 0 &&
      ML_BLOCK(base, prv = off - b->prev_size)->state == ML_BLOCK_FREE) {
    list_remove(base, a, prv);
    absorb(base, prv, off);
    off = prv;
  }
  if ((nxt = next_of(a, base, off)) != 0)
    ML_BLOCK(base, nxt)->prev_size = ML_BLOCK(base, off)->size;
  list_push(base, a, off);
}

/*
** {======================================================
** Rebuilding after a crash
** =======================================================
*/

/* Whether a walk can trust the block at off: aligned, large enough,
 * inside the arena, and in one of the two states. */
static int sane(const ml_arena *a, char *base, uint64_t off) {
  const ml_block *b = ML_BLOCK(base, off);
  return b->size >= ML_BLOCK_MIN && b->size % ML_ARENA_ALIGN == 0 &&
         b->size <= a->end - off &&
         (b->state == ML_BLOCK_FREE || b->state == ML_BLOCK_USED);
}

/* Walk 1: cut the arena where a block cannot be right; ask about every
 * entry.  Returns the bytes lost past a bad block. */
static uint64_t check_blocks(char *base, ml_arena *a,
                             int (*keep)(uint64_t off, void *ud), void *ud) {
  uint64_t off, lost = 0;
  for (off = a->start; off < a->end; off += ML_BLOCK(base, off)->size) {
    ml_block *b = ML_BLOCK(base, off);
    if (!sane(a, base, off)) {
      lost = a->end - off;
      memset(b, 0, sizeof *b);
      b->size = lost;
      b->state = ML_BLOCK_FREE;
    }
    if (b->state == ML_BLOCK_USED && !keep(off, ud))
      b->state = ML_BLOCK_FREE;
  }
  return lost;
}

/* Walk 2: merge free neighbours, relist them, recount, fix prev_size. */
static void relink_blocks(char *base, ml_arena *a) {
  uint64_t off, prev = 0, i;
  a->used = 0;
  a->nonempty = 0;
  for (i = 0; i < ML_ARENA_CLASSES; i++)
    a->free_head[i] = 0;
  for (off = a->start; off < a->end; off += ML_BLOCK(base, off)->size) {
    ml_block *b = ML_BLOCK(base, off);
    uint64_t nxt;
    while (b->state == ML_BLOCK_FREE &&
           (nxt = off + b->size) < a->end &&
           ML_BLOCK(base, nxt)->state == ML_BLOCK_FREE)
      COMMIT(&b->size, b->size + ML_BLOCK(base, nxt)->size);
    b->prev_size = prev;
    prev = b->size;
    if (b->state == ML_BLOCK_FREE)
      list_push(base, a, off);
    else
      a->used += b->size;
  }
}

uint64_t ml_arena_rebuild(char *base, ml_arena *a,
                          int (*keep)(uint64_t off, void *ud), void *ud) {
  uint64_t lost = check_blocks(base, a, keep, ud);
  relink_blocks(base, a);
  return lost;
}

/* }====================================================== */

/*
** {======================================================
** Checking (tests)
** =======================================================
*/

#define BAD(...) (snprintf(why, n, __VA_ARGS__), -1)

/* Every free list: its blocks are free, of its class, linked both ways;
 * *listed gets how many there are. */
static int check_lists(char *base, const ml_arena *a, uint64_t *listed,
                       char *why, size_t n) {
  int c;
  *listed = 0;
  for (c = 0; c < ML_ARENA_CLASSES; c++) {
    uint64_t off, prev = 0;
    if (((a->nonempty >> c) & 1) != (a->free_head[c] != 0))
      return BAD("class %d: nonempty bit is wrong", c);
    for (off = a->free_head[c]; off != 0; off = ML_BLOCK(base, off)->next) {
      ml_block *b = ML_BLOCK(base, off);
      if (b->state != ML_BLOCK_FREE || class_of(b->size) != c ||
          b->prev != prev)
        return BAD("free list %d: bad block at %llu", c,
                   (unsigned long long)off);
      prev = off;
      ++*listed;
    }
  }
  return 0;
}

int ml_arena_check(char *base, const ml_arena *a, uint64_t *nused,
                   char *why, size_t n) {
  uint64_t off, prev = 0, used = 0, nfree = 0, listed;
  int prev_free = 0;
  *nused = 0;
  for (off = a->start; off < a->end; off += ML_BLOCK(base, off)->size) {
    ml_block *b = ML_BLOCK(base, off);
    if (!sane(a, base, off) || b->prev_size != prev)
      return BAD("bad block at %llu", (unsigned long long)off);
    if (b->state == ML_BLOCK_FREE && prev_free)
      return BAD("two free blocks side by side at %llu",
                 (unsigned long long)off);
    prev_free = b->state == ML_BLOCK_FREE;
    nfree += prev_free;
    if (!prev_free) {
      used += b->size;
      ++*nused;
    }
    prev = b->size;
  }
  if (off != a->end || used != a->used)
    return BAD("the walk ends at %llu, used %llu (not %llu)",
               (unsigned long long)off, (unsigned long long)used,
               (unsigned long long)a->used);
  if (check_lists(base, a, &listed, why, n) != 0)
    return -1;
  return listed == nfree ? 0 : BAD("%llu free blocks, %llu listed",
                                   (unsigned long long)nfree,
                                   (unsigned long long)listed);
}

/* }====================================================== */
