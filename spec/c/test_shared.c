/*
 * test_shared.c - the moonlet.shared store: values of each type, add,
 * incr and its failures, delete, expiry against a moved clock, bounded key
 * lists, LRU eviction in a full store, processes counting at once, and a
 * process dying at each point of an update while it holds the lock.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>
#include <uv.h>
#include "base/arena.h"
#include "base/log.h"
#include "base/shared.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

#define CHECK_STORE(sh) do { \
    char why_[200]; \
    if (ml_shared_check((sh), why_, sizeof why_) != 0) { \
      ml_test_fail(__FILE__, __LINE__, why_); return; \
    } \
  } while (0)

static ml_shared_value str(const char *s) {
  ml_shared_value v;
  memset(&v, 0, sizeof v);
  v.type = ML_SHARED_STRING;
  v.s = s;
  v.len = strlen(s);
  return v;
}

static ml_shared_value num(long long i) {
  ml_shared_value v;
  memset(&v, 0, sizeof v);
  v.type = ML_SHARED_INTEGER;
  v.i = i;
  return v;
}

static ml_shared_value dbl(double n) {
  ml_shared_value v;
  memset(&v, 0, sizeof v);
  v.type = ML_SHARED_NUMBER;
  v.n = n;
  return v;
}

static int set(ml_shared *sh, const char *k, ml_shared_value v,
               uint64_t ttl, uint64_t now) {
  return ml_shared_set(sh, k, strlen(k), &v, ttl, now, 0);
}

static int add(ml_shared *sh, const char *k, ml_shared_value v) {
  return ml_shared_set(sh, k, strlen(k), &v, 0, 0, 1);
}

static int get(ml_shared *sh, const char *k, uint64_t now,
               ml_shared_value *out) {
  return ml_shared_get(sh, k, strlen(k), now, out);
}

static size_t count(ml_shared *sh) {
  ml_shared_stats st;
  return ml_shared_stat(sh, &st) == 0 ? st.count : (size_t)-1;
}

TEST(shared_set_get_types) {
  ml_shared *sh = ml_shared_new(-1, 0);
  ml_shared_value v;
  ml_shared_stats st;
  char buf[8] = "abc";
  CHECK(sh != NULL);
  CHECK_INT(set(sh, "s", str(buf), 0, 0), 0);
  buf[0] = 'X';                       /* the store keeps its own copy */
  CHECK_INT(set(sh, "i", num(7), 0, 0), 0);
  CHECK_INT(set(sh, "f", dbl(2.5), 0, 0), 0);
  CHECK_INT(get(sh, "s", 0, &v), 1);
  CHECK_INT(v.type, ML_SHARED_STRING);
  CHECK_INT(v.len, 3);
  CHECK(memcmp(v.s, "abc", 3) == 0);
  CHECK_INT(get(sh, "i", 0, &v), 1);
  CHECK_INT(v.i, 7);
  CHECK_INT(get(sh, "f", 0, &v), 1);
  CHECK(v.type == ML_SHARED_NUMBER && v.n == 2.5);
  CHECK_INT(get(sh, "nope", 0, &v), 0);
  CHECK_INT(set(sh, "s", num(1), 0, 0), 0);   /* replaced, new type */
  CHECK_INT(get(sh, "s", 0, &v), 1);
  CHECK_INT(v.type, ML_SHARED_INTEGER);
  CHECK_INT(ml_shared_stat(sh, &st), 0);
  CHECK_INT(st.count, 3);
  CHECK_INT(st.size, ML_SHARED_DEFAULT_SIZE);
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

TEST(shared_add_incr_delete) {
  ml_shared *sh = ml_shared_new(-1, ML_SHARED_MIN_SIZE);
  ml_shared_value v, one = num(1), init = num(10), s = str("x");
  CHECK_INT(ml_shared_set(sh, "a", 1, &one, 0, 0, 1), 0);
  CHECK_INT(ml_shared_set(sh, "a", 1, &one, 0, 0, 1), UV_EEXIST);
  CHECK_INT(ml_shared_incr(sh, "a", 1, &one, NULL, 0, &v), 0);
  CHECK_INT(v.i, 2);
  CHECK_INT(ml_shared_incr(sh, "b", 1, &one, NULL, 0, &v), UV_ENOENT);
  CHECK_INT(ml_shared_incr(sh, "b", 1, &one, &init, 0, &v), 0);
  CHECK_INT(v.i, 11);
  CHECK_INT(set(sh, "s", s, 0, 0), 0);
  CHECK_INT(ml_shared_incr(sh, "s", 1, &one, NULL, 0, &v), UV_EINVAL);
  CHECK_INT(ml_shared_incr(sh, "s", 1, &s, NULL, 0, &v), UV_EINVAL);
  CHECK_INT(ml_shared_delete(sh, "a", 1, 0), 1);
  CHECK_INT(ml_shared_delete(sh, "a", 1, 0), 0);
  CHECK_INT(get(sh, "a", 0, &v), 0);
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

TEST(shared_incr_wraps_and_floats) {
  ml_shared *sh = ml_shared_new(-1, ML_SHARED_MIN_SIZE);
  ml_shared_value v, big = num(9223372036854775807LL), one = num(1);
  ml_shared_value h = dbl(0.5);
  CHECK_INT(set(sh, "n", big, 1000, 0), 0);
  CHECK_INT(ml_shared_incr(sh, "n", 1, &one, NULL, 0, &v), 0);
  CHECK(v.type == ML_SHARED_INTEGER && v.i == -9223372036854775807LL - 1);
  CHECK_INT(ml_shared_incr(sh, "n", 1, &h, NULL, 0, &v), 0);
  CHECK_INT(v.type, ML_SHARED_NUMBER);        /* a new entry ... */
  CHECK_INT(get(sh, "n", 999, &v), 1);
  CHECK_INT(v.type, ML_SHARED_NUMBER);
  CHECK_INT(get(sh, "n", 1000, &v), 0);       /* ... with the old expiry */
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

TEST(shared_ttl) {
  ml_shared *sh = ml_shared_new(-1, ML_SHARED_MIN_SIZE);
  ml_shared_value v, one = num(1);
  CHECK_INT(set(sh, "t", one, 100, 1000), 0);
  CHECK_INT(get(sh, "t", 1099, &v), 1);
  CHECK_INT(ml_shared_incr(sh, "t", 1, &one, NULL, 1099, &v), 0);
  CHECK_INT(get(sh, "t", 1100, &v), 0);         /* incr kept the expiry */
  CHECK_INT(count(sh), 0);                      /* dropped when touched */
  CHECK_INT(set(sh, "t", one, 100, 1000), 0);
  CHECK_INT(ml_shared_set(sh, "t", 1, &one, 0, 2000, 1), 0);  /* gone */
  CHECK_INT(get(sh, "t", 99999, &v), 1);        /* set with 0: forever */
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

TEST(shared_keys_sorted_and_bounded) {
  ml_shared *sh = ml_shared_new(-1, 0);
  const ml_shared_key *keys;
  size_t n, i;
  char k[32];
  for (i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "key%05zu", i);
    CHECK_INT(set(sh, k, num((long long)i), i % 2 ? 10 : 0, 0), 0);
  }
  CHECK_INT(ml_shared_keys(sh, 5, 0, &keys, &n), 0);
  CHECK_INT(n, 5000);
  for (i = 1; i < n; i++)
    CHECK(memcmp(keys[i - 1].key, keys[i].key, keys[i].klen) < 0);
  CHECK_INT(ml_shared_keys(sh, 10, 0, &keys, &n), 0);   /* odd ones gone */
  CHECK_INT(n, 2500);
  CHECK_INT(ml_shared_keys(sh, 10, 100, &keys, &n), 0);
  CHECK_INT(n, 100);
  for (i = 1; i < n; i++)
    CHECK(memcmp(keys[i - 1].key, keys[i].key, keys[i].klen) < 0);
  for (i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "key%05zu", i);
    ml_shared_delete(sh, k, strlen(k), 10);
  }
  CHECK_INT(set(sh, "b", num(1), 0, 0), 0);
  CHECK_INT(set(sh, "a", num(1), 0, 0), 0);
  CHECK_INT(set(sh, "ab", num(1), 0, 0), 0);
  CHECK_INT(set(sh, "gone", num(1), 5, 0), 0);
  CHECK_INT(ml_shared_keys(sh, 10, 0, &keys, &n), 0);
  CHECK_INT(n, 3);
  CHECK(keys[0].klen == 1 && keys[0].key[0] == 'a');
  CHECK(keys[1].klen == 2 && memcmp(keys[1].key, "ab", 2) == 0);
  CHECK(keys[2].klen == 1 && keys[2].key[0] == 'b');
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

TEST(shared_full_store_evicts_lru) {
  ml_shared *sh = ml_shared_new(-1, ML_SHARED_MIN_SIZE);
  ml_shared_value v, one = num(1);
  ml_shared_stats st;
  char k[32], big[200];
  static char huge[ML_SHARED_MIN_SIZE];
  int i;
  memset(big, 'v', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  CHECK_INT(set(sh, "hot", num(0), 0, 0), 0);
  for (i = 0; i < 2000; i++) {        /* ~600 KiB through 64 KiB */
    snprintf(k, sizeof k, "key%d", i);
    CHECK_INT(set(sh, k, str(big), 0, 0), 0);
    CHECK_INT(get(sh, "hot", 0, &v), 1);    /* kept fresh: never evicted */
  }
  CHECK_INT(get(sh, "key0", 0, &v), 0);     /* the oldest went */
  CHECK_INT(get(sh, "key1999", 0, &v), 1);
  CHECK_INT(ml_shared_stat(sh, &st), 0);
  CHECK(st.evictions > 1500 && st.used <= st.capacity);
  /* add and incr never evict: a new key finds no room */
  CHECK_INT(add(sh, "new", str(big)), UV_ENOSPC);
  for (i = 0; i < 1000; i++) {       /* fill the last small holes */
    snprintf(k, sizeof k, "f%d", i);
    if (add(sh, k, num(i)) == UV_ENOSPC)
      break;
  }
  CHECK(i < 1000);
  CHECK_INT(ml_shared_incr(sh, "newer", 5, &one, &one, 0, &v), UV_ENOSPC);
  CHECK_INT(get(sh, "key1999", 0, &v), 1);
  memset(huge, 'h', sizeof huge - 1);      /* larger than the store */
  CHECK_INT(set(sh, "huge", str(huge), 0, 0), UV_ENOSPC);
  CHECK_INT(get(sh, "key1999", 0, &v), 1); /* and nothing evicted for it */
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

/* Random operations on a small store, checked as they go. */
TEST(shared_random_ops_keep_it_whole) {
  ml_shared *sh = ml_shared_new(-1, 256 * 1024);
  ml_shared_value v, one = num(1);
  static char val[4000];
  char k[16];
  int i, op;
  unsigned seed = 12345;
  memset(val, 'x', sizeof val);
  for (i = 0; i < 30000; i++) {
    seed = seed * 1103515245u + 12345u;
    op = (int)(seed >> 16) % 6;
    snprintf(k, sizeof k, "k%u", (seed >> 8) % 300);
    if (op == 0 || op == 1) {
      ml_shared_value s = str("");
      s.s = val;
      s.len = (seed >> 4) % (op ? 4000 : 40);
      CHECK(set(sh, k, s, seed % 3 ? 0 : 50, (uint64_t)i) == 0);
    } else if (op == 2) {
      add(sh, k, num(i));
    } else if (op == 3) {
      ml_shared_incr(sh, k, strlen(k), &one, &one, (uint64_t)i, &v);
    } else if (op == 4) {
      ml_shared_delete(sh, k, strlen(k), (uint64_t)i);
    } else {
      CHECK(get(sh, k, (uint64_t)i, &v) >= 0);
    }
    if (i % 1000 == 0)
      CHECK_STORE(sh);
  }
  CHECK_STORE(sh);
  ml_shared_free(sh);
}

/* Two processes on one store: every increment and exactly one add win. */
TEST(shared_processes_count_exactly) {
  int fd = ml_shared_memfd(), i, p, st, wins = 0;
  ml_shared *sh = ml_shared_new(fd, ML_SHARED_MIN_SIZE);
  ml_shared_value v, one = num(1), zero = num(0);
  pid_t pids[2];
  CHECK(fd >= 0 && sh != NULL);
  for (p = 0; p < 2; p++)
    if ((pids[p] = fork()) == 0) {
      ml_shared *own = ml_shared_new(fd, 0);   /* maps what is there */
      for (i = 0; i < 20000; i++)
        ml_shared_incr(own, "n", 1, &one, &zero, 0, &v);
      for (i = 0; i < 500; i++) {
        char k[16];
        snprintf(k, sizeof k, "once%d", i);
        if (add(own, k, num(p)) == 0)
          ml_shared_incr(own, "wins", 4, &one, &zero, 0, &v);
      }
      ml_shared_free(own);
      ml_shared_free(sh);                      /* the parent's copy */
      _exit(0);
    }
  for (p = 0; p < 2; p++) {
    CHECK(waitpid(pids[p], &st, 0) == pids[p]);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  CHECK_INT(get(sh, "n", 0, &v), 1);
  CHECK_INT(v.i, 40000);
  CHECK_INT(get(sh, "wins", 0, &v), 1);
  wins = (int)v.i;
  CHECK_INT(wins, 500);
  CHECK_STORE(sh);
  ml_shared_free(sh);
  close(fd);
}

TEST(shared_first_mapper_sets_the_size) {
  int fd = ml_shared_memfd();
  ml_shared *a = ml_shared_new(fd, 0), *b = ml_shared_new(fd, 0);
  ml_shared_stats st;
  size_t actual = 0;
  CHECK_INT(ml_shared_want_size(a, 1000, &actual), UV_EINVAL);
  CHECK_INT(ml_shared_want_size(a, 128 * 1024, &actual), 0);
  CHECK_INT(set(a, "k", num(1), 0, 0), 0);          /* a makes it */
  CHECK_INT(ml_shared_want_size(b, 256 * 1024, &actual), 0);
  CHECK_INT(ml_shared_stat(b, &st), 0);             /* b maps a's */
  CHECK_INT(st.size, 128 * 1024);
  CHECK_INT(st.count, 1);
  CHECK_INT(ml_shared_want_size(b, 256 * 1024, &actual), UV_EBUSY);
  CHECK_INT(actual, 128 * 1024);
  ml_shared_free(a);
  ml_shared_free(b);
  close(fd);
}

/*
** {======================================================
** A process dying inside an update, holding the lock
** =======================================================
*/

static int die_at;

static void die_here(int point) {
  if (point == die_at)
    kill(getpid(), SIGKILL);
}

/* What a scenario's child does, and what the key may hold after. */
enum { REPLACE, DELETE, INCR_TO_FLOAT, EVICT, NSCENARIOS };

static void prepare(ml_shared *sh, int scenario) {
  char k[16], big[300], hole[1000];
  int i;
  memset(big, 'f', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memset(hole, 'a', sizeof hole - 1);    /* a block to split, mid-arena */
  hole[sizeof hole - 1] = '\0';
  set(sh, "a", str(hole), 0, 0);
  set(sh, "k", scenario == INCR_TO_FLOAT ? num(5) : str("old"), 0, 0);
  set(sh, "b", str("neighbour b"), 0, 0);
  ml_shared_delete(sh, "a", 1, 0);       /* a hole before k: frees merge */
  for (i = 0; scenario == EVICT && i < 400; i++) {
    snprintf(k, sizeof k, "fill%d", i);
    set(sh, k, str(big), 0, 0);
  }
}

static void act(ml_shared *sh, int scenario) {
  ml_shared_value v, half = dbl(0.5);
  static char big[400];
  memset(big, 'n', sizeof big - 1);
  if (scenario == REPLACE)
    set(sh, "k", str(big), 0, 0);
  else if (scenario == DELETE)
    ml_shared_delete(sh, "k", 1, 0);
  else if (scenario == INCR_TO_FLOAT)
    ml_shared_incr(sh, "k", 1, &half, NULL, 0, &v);
  else
    set(sh, "new", str(big), 0, 0);
}

/* The key holds its value from before the update or from after it. */
static int old_or_new(ml_shared *sh, int scenario) {
  ml_shared_value v;
  int found = get(sh, scenario == EVICT ? "new" : "k", 0, &v);
  if (scenario == REPLACE)
    return found == 1 && v.type == ML_SHARED_STRING &&
           (v.len == 3 || v.len == 399);
  if (scenario == DELETE)
    return found == 0 || (found == 1 && v.len == 3);
  if (scenario == INCR_TO_FLOAT)
    return found == 1 && ((v.type == ML_SHARED_INTEGER && v.i == 5) ||
                          (v.type == ML_SHARED_NUMBER && v.n == 5.5));
  return found == 0 || (found == 1 && v.len == 399);
}

/* One scenario with a child that dies at 'point'; 1 if it died there. */
static int crash_once(int scenario, int point, char *why, size_t n) {
  int fd = ml_shared_memfd(), st, died;
  ml_shared *sh = ml_shared_new(fd, ML_SHARED_MIN_SIZE);
  ml_shared_stats s;
  pid_t pid;
  prepare(sh, scenario);
  if ((pid = fork()) == 0) {
    die_at = point;
    ml_arena_test_hook = die_here;
    act(sh, scenario);
    _exit(0);
  }
  waitpid(pid, &st, 0);
  died = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
  if (!old_or_new(sh, scenario))
    snprintf(why, n, "scenario %d, point %d: neither value", scenario,
             point);
  else if (ml_shared_check(sh, why, n) == 0)
    why[0] = '\0';
  if (ml_shared_stat(sh, &s) != 0 || s.recoveries != (uint64_t)died ||
      s.lost != 0)
    snprintf(why, n, "scenario %d, point %d: %d recoveries, %d bytes lost",
             scenario, point, (int)s.recoveries, (int)s.lost);
  ml_shared_free(sh);
  close(fd);
  return died;
}

TEST(shared_survives_a_death_at_every_point) {
  static const int points[] = { 1, 2, 3, 4, 101, 102, 103, 104 };
  char why[200];
  int i, sc, hit;
  ml_log_set_level(MOONLET_LOG_ERROR);      /* each rebuild is logged */
  for (i = 0; i < (int)(sizeof points / sizeof *points); i++) {
    for (hit = 0, sc = 0; sc < NSCENARIOS; sc++) {
      hit += crash_once(sc, points[i], why, sizeof why);
      if (why[0] != '\0') {
        ml_log_set_level(MOONLET_LOG_INFO);
        ml_test_fail(__FILE__, __LINE__, why);
        return;
      }
    }
    CHECK(hit > 0);                         /* some update passes there */
  }
  ml_log_set_level(MOONLET_LOG_INFO);
}

/* }====================================================== */
