/*
 * run.c - runs every C test named in test_list.h, one line per test, and
 * ends with "N passed, N failed".  Exit status 1 when any test failed.
 */
#include <stdio.h>
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

static int failed_now;

void ml_test_fail(const char *file, int line, const char *what) {
  printf("  %s:%d: check failed: %s\n", file, line, what);
  failed_now = 1;
}

int main(void) {
  int passed = 0, failed = 0;
#define RUN(name) \
  failed_now = 0; \
  test_##name(); \
  printf("%s %s\n", failed_now ? "FAIL" : "ok  ", #name); \
  if (failed_now) failed++; else passed++;
  TEST_LIST(RUN)
  fflush(stdout);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
