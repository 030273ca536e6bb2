/*
 * test_shared.c - the moonlet.shared store: values of each type, add,
 * incr and its failures, delete, expiry against a moved clock, growth
 * and the sorted key list.
 */
#include <stdio.h>
#include <string.h>
#include <uv.h>
#include "base/shared.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

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

static int set(ml_shared *sh, const char *k, ml_shared_value v,
               uint64_t ttl, uint64_t now) {
  return ml_shared_set(sh, k, strlen(k), &v, ttl, now, 0);
}

static int get(ml_shared *sh, const char *k, uint64_t now,
               ml_shared_value *out) {
  return ml_shared_get(sh, k, strlen(k), now, out);
}

TEST(shared_set_get_types) {
  ml_shared *sh = ml_shared_new();
  ml_shared_value v, f;
  char buf[8] = "abc";
  memset(&f, 0, sizeof f);
  f.type = ML_SHARED_NUMBER;
  f.n = 2.5;
  CHECK(sh != NULL);
  CHECK_INT(set(sh, "s", str(buf), 0, 0), 0);
  buf[0] = 'X';                       /* the store keeps its own copy */
  CHECK_INT(set(sh, "i", num(7), 0, 0), 0);
  CHECK_INT(set(sh, "f", f, 0, 0), 0);
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
  CHECK_INT(ml_shared_count(sh), 3);
  ml_shared_free(sh);
}

TEST(shared_add_incr_delete) {
  ml_shared *sh = ml_shared_new();
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
  CHECK_INT(ml_shared_delete(sh, "a", 1, 0), 1);
  CHECK_INT(ml_shared_delete(sh, "a", 1, 0), 0);
  CHECK_INT(get(sh, "a", 0, &v), 0);
  ml_shared_free(sh);
}

TEST(shared_incr_wraps_and_floats) {
  ml_shared *sh = ml_shared_new();
  ml_shared_value v, big = num(9223372036854775807LL), one = num(1), h;
  memset(&h, 0, sizeof h);
  h.type = ML_SHARED_NUMBER;
  h.n = 0.5;
  CHECK_INT(set(sh, "n", big, 0, 0), 0);
  CHECK_INT(ml_shared_incr(sh, "n", 1, &one, NULL, 0, &v), 0);
  CHECK(v.type == ML_SHARED_INTEGER && v.i == -9223372036854775807LL - 1);
  CHECK_INT(ml_shared_incr(sh, "n", 1, &h, NULL, 0, &v), 0);
  CHECK_INT(v.type, ML_SHARED_NUMBER);
  ml_shared_free(sh);
}

TEST(shared_ttl) {
  ml_shared *sh = ml_shared_new();
  ml_shared_value v, one = num(1);
  CHECK_INT(set(sh, "t", one, 100, 1000), 0);
  CHECK_INT(get(sh, "t", 1099, &v), 1);
  CHECK_INT(ml_shared_incr(sh, "t", 1, &one, NULL, 1099, &v), 0);
  CHECK_INT(get(sh, "t", 1100, &v), 0);         /* incr kept the expiry */
  CHECK_INT(ml_shared_count(sh), 0);            /* dropped when touched */
  CHECK_INT(set(sh, "t", one, 100, 1000), 0);
  CHECK_INT(ml_shared_set(sh, "t", 1, &one, 0, 2000, 1), 0);  /* gone */
  CHECK_INT(get(sh, "t", 99999, &v), 1);        /* set with 0: forever */
  ml_shared_free(sh);
}

static void collect(const char *key, size_t klen, void *ud) {
  char *out = ud;
  strncat(out, key, klen);
  strcat(out, ",");
}

TEST(shared_keys_sorted_and_growth) {
  ml_shared *sh = ml_shared_new();
  ml_shared_value v;
  char k[32], out[64] = "";
  int i;
  for (i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    CHECK_INT(set(sh, k, num(i), i % 2 ? 10 : 0, 0), 0);
  }
  CHECK_INT(ml_shared_count(sh), 5000);
  for (i = 0; i < 5000; i += 499) {
    snprintf(k, sizeof k, "key%d", i);
    CHECK_INT(get(sh, k, 5, &v), 1);
    CHECK_INT(v.i, i);
  }
  for (i = 0; i < 5000; i++) {
    snprintf(k, sizeof k, "key%d", i);
    ml_shared_delete(sh, k, strlen(k), 0);
  }
  CHECK_INT(set(sh, "b", num(1), 0, 0), 0);
  CHECK_INT(set(sh, "a", num(1), 0, 0), 0);
  CHECK_INT(set(sh, "ab", num(1), 0, 0), 0);
  CHECK_INT(set(sh, "gone", num(1), 5, 0), 0);
  CHECK_INT(ml_shared_keys(sh, 10, collect, out), 0);
  CHECK_STR(out, "a,ab,b,");
  ml_shared_free(sh);
}
