/*
 * activity.c - the loop thread's labels for its watchdog (activity.h).
 * One thread writes a record, another reads it: plain atomics, no lock
 * and no clock, so a label costs three stores and a watchdog never waits
 * on the loop.
 */
#include <stddef.h>
#include "base/activity.h"

#define LOAD(p) __atomic_load_n(&(p), __ATOMIC_ACQUIRE)
#define STORE(p, v) __atomic_store_n(&(p), (v), __ATOMIC_RELEASE)

static __thread ml_activity *bound;   /* this thread's record, or NULL */

void ml_activity_bind(ml_activity *a) {
  bound = a;
}

void ml_activity_set(const char *what, uint64_t n) {
  ml_activity *a = bound;
  if (a != NULL) {             /* only this thread writes: a plain read */
    STORE(a->seq, a->seq + 1);
    STORE(a->n, n);
    STORE(a->what, what);
  }
}

void ml_activity_clear(void) {
  ml_activity *a = bound;
  if (a != NULL)
    STORE(a->what, NULL);
}

void ml_activity_read(ml_activity *a, const char **what, uint64_t *n,
                      uint64_t *seq) {
  *seq = LOAD(a->seq);
  *what = LOAD(a->what);
  *n = LOAD(a->n);
}
