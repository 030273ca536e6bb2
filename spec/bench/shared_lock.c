/*
 * shared_lock.c - how long moonlet.shared's calls take, each timed on its
 * own (clock_gettime around the call) in one process: an upper bound of
 * how long the store's lock is held, since all of a call but hashing the
 * key and copying in or out runs inside it.  A 16 MiB store with 50,000
 * keys; get, set and incr; set on a full store (evicting); keys(1024) and
 * keys(0).  Prints a Markdown table of p50, p99 and the maximum in ns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "base/shared.h"

#define N 200000
#define KEYS 50000

static double samples[N];

static double ns_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void row(const char *what, int n) {
  qsort(samples, (size_t)n, sizeof *samples, by_value);
  printf("| %s | %.0f | %.0f | %.0f |\n", what, samples[n / 2],
         samples[n * 99 / 100], samples[n - 1]);
}

static ml_shared_value num(long long i) {
  ml_shared_value v;
  memset(&v, 0, sizeof v);
  v.type = ML_SHARED_INTEGER;
  v.i = i;
  return v;
}

/* op 0 get, 1 set, 2 incr, 3 set a 200-byte string (evicts when full). */
static void run(ml_shared *sh, int op, int n, int nkeys) {
  char k[32], big[200];
  ml_shared_value v = num(1), out, s;
  int i;
  memset(big, 'v', sizeof big);
  memset(&s, 0, sizeof s);
  s.type = ML_SHARED_STRING;
  s.s = big;
  s.len = sizeof big;
  for (i = 0; i < n; i++) {
    int len = snprintf(k, sizeof k, "key:%d", op == 3 ? i : i % nkeys);
    double t0 = ns_now();
    if (op == 0)
      ml_shared_get(sh, k, (size_t)len, 0, &out);
    else if (op == 1)
      ml_shared_set(sh, k, (size_t)len, &v, 0, 0, 0);
    else if (op == 2)
      ml_shared_incr(sh, k, (size_t)len, &v, &v, 0, &out);
    else
      ml_shared_set(sh, k, (size_t)len, &s, 0, 0, 0);
    samples[i] = ns_now() - t0;
  }
}

int main(void) {
  ml_shared *sh = ml_shared_new(-1, 0), *small;
  const ml_shared_key *keys;
  ml_shared_stats st;
  size_t nk;
  int i;
  printf("How long one call takes, in ns (one process; the lock is held "
         "for part of it):\n\n| call | p50 | p99 | max |\n"
         "| --- | ---: | ---: | ---: |\n");
  run(sh, 1, KEYS, KEYS);                /* the keys exist */
  run(sh, 0, N, KEYS);
  row("get (50,000 keys)", N);
  run(sh, 1, N, KEYS);
  row("set, integer", N);
  run(sh, 2, N, KEYS);
  row("incr", N);
  small = ml_shared_new(-1, 1024 * 1024);
  run(small, 3, N, N);
  row("set, 200 bytes, full 1 MiB store (evicts)", N);
  for (i = 0; i < 1000; i++) {
    double t0 = ns_now();
    ml_shared_keys(sh, 0, 1024, &keys, &nk);
    samples[i] = ns_now() - t0;
  }
  row("keys(1024) of 50,000", 1000);
  for (i = 0; i < 20; i++) {
    double t0 = ns_now();
    ml_shared_keys(sh, 0, 0, &keys, &nk);
    samples[i] = ns_now() - t0;
  }
  row("keys(0): all 50,000, sorted", 20);
  ml_shared_stat(small, &st);
  printf("\nThe full store evicted %llu keys; it holds %zu.\n",
         (unsigned long long)st.evictions, st.count);
  ml_shared_free(small);
  ml_shared_free(sh);
  return 0;
}
