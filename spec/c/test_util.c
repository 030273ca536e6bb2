/*
 * test_util.c - base/util.c's helpers that have cases of their own.
 */
#include <limits.h>
#include <stdio.h>
#include "base/util.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/* ml_fmt_int writes what "%lld" writes, to the ends of the range. */
TEST(util_fmt_int) {
  static const long long cases[] = { 0, 1, -1, 9, 10, -10, 12345,
    9007199254740993LL, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1 };
  char got[ML_INT_BUFSIZE], want[32];
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    int n = ml_fmt_int(got, cases[i]);
    snprintf(want, sizeof want, "%lld", cases[i]);
    CHECK_STR(got, want);
    CHECK_INT(n, strlen(want));
  }
}

/* ml_parse_int reads what ml_fmt_int writes, and nothing else. */
TEST(util_parse_int) {
  static const char *const bad[] = { "", "-", "+1", " 1", "1 ", "1.5",
    "0x10", "9223372036854775808", "-9223372036854775809",
    "18446744073709551616", "99999999999999999999999", "1e3", "--1" };
  static const long long good[] = { 0, 7, -7, 100, 9007199254740993LL,
    LLONG_MAX, LLONG_MIN, LLONG_MIN + 1 };
  char s[ML_INT_BUFSIZE];
  long long v;
  size_t i;
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    ml_fmt_int(s, good[i]);
    v = 1;
    CHECK_INT(ml_parse_int(s, &v), 0);
    CHECK(v == good[i]);
  }
  CHECK_INT(ml_parse_int("-0", &v), 0);
  CHECK_INT(v, 0);
  CHECK_INT(ml_parse_int("007", &v), 0);
  CHECK_INT(v, 7);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(ml_parse_int(bad[i], &v), -1);
}
