/*
 * test_sched.c - what sched.c keeps per coroutine: every waiting request
 * holds one ml_co, so its size is part of the cost of a request.
 */
#include <uv.h>
#include "vm/sched.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/* 136 bytes is a 144-byte malloc chunk on 64-bit glibc; 137 is 160. */
TEST(sched_co_is_small) {
  CHECK(sizeof(ml_co) <= 136);
  CHECK(sizeof(ml_wait) <= 16);
}
