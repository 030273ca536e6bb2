/*
 * test.h - the C tests' few macros.  A test is a void function declared
 * with TEST(name) and listed in test_list.h; a failed CHECK reports its
 * line and ends that test.  run.c runs the list and prints the totals.
 */
#ifndef ML_TEST_H
#define ML_TEST_H

#include <stdio.h>
#include <string.h>

void ml_test_fail(const char *file, int line, const char *what);

#define TEST(name) void test_##name(void)

#define CHECK(e) do { \
    if (!(e)) { ml_test_fail(__FILE__, __LINE__, #e); return; } \
  } while (0)

#define CHECK_INT(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) { \
      char m_[160]; \
      snprintf(m_, sizeof m_, "%s == %s (%lld != %lld)", #a, #b, a_, b_); \
      ml_test_fail(__FILE__, __LINE__, m_); return; \
    } \
  } while (0)

#define CHECK_STR(a, b) do { \
    const char *a_ = (a), *b_ = (b); \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) { \
      char m_[400]; \
      snprintf(m_, sizeof m_, "%s == %s (\"%s\" != \"%s\")", #a, #b, \
               a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
      ml_test_fail(__FILE__, __LINE__, m_); return; \
    } \
  } while (0)

#endif
