/*
 * test_resp.c - net/resp.c: every RESP2 reply type read back as a tree,
 * replies split across reads, a protocol error, the element bound, and
 * a command encoded and read back.
 */
#include <string.h>
#include "net/resp.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/* Feeds s whole; the first reply, or NULL. */
static ml_resp *read_one(ml_resp_reader *r, const char *s) {
  ml_resp *v = NULL;
  if (ml_resp_feed(r, s, strlen(s)) != 0 || ml_resp_next(r, &v) != 1)
    return NULL;
  return v;
}

TEST(resp_reads_every_type) {
  ml_resp_reader *r = ml_resp_reader_new();
  ml_resp *v;
  CHECK(r != NULL);
  CHECK((v = read_one(r, "+OK\r\n")) != NULL);
  CHECK_INT(v->type, ML_RESP_STATUS);
  CHECK_STR(v->str, "OK");
  ml_resp_free(v);
  CHECK((v = read_one(r, ":-42\r\n")) != NULL);
  CHECK_INT(v->type, ML_RESP_INTEGER);
  CHECK_INT(v->integer, -42);
  ml_resp_free(v);
  CHECK((v = read_one(r, "$5\r\na\0b\r\n\r\n")) == NULL);  /* strlen */
  ml_resp_reader_free(r);
  r = ml_resp_reader_new();
  CHECK(ml_resp_feed(r, "$5\r\na\0b\r\n\r\n", 11) == 0);
  CHECK(ml_resp_next(r, &v) == 1);
  CHECK_INT(v->type, ML_RESP_STRING);
  CHECK_INT(v->len, 5);
  CHECK(memcmp(v->str, "a\0b\r\n", 5) == 0);
  ml_resp_free(v);
  CHECK((v = read_one(r, "$-1\r\n")) != NULL);
  CHECK_INT(v->type, ML_RESP_NIL);
  ml_resp_free(v);
  CHECK((v = read_one(r, "-ERR no\r\n")) != NULL);
  CHECK_INT(v->type, ML_RESP_ERROR);
  CHECK_STR(v->str, "ERR no");
  ml_resp_free(v);
  CHECK((v = read_one(r, "*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$-1\r\n")) != NULL);
  CHECK_INT(v->type, ML_RESP_ARRAY);
  CHECK_INT(v->len, 3);
  CHECK_INT(v->elements[0]->integer, 1);
  CHECK_STR(v->elements[1]->elements[0]->str, "x");
  CHECK_INT(v->elements[2]->type, ML_RESP_NIL);
  ml_resp_free(v);
  ml_resp_reader_free(r);
}

TEST(resp_reads_replies_in_pieces) {
  ml_resp_reader *r = ml_resp_reader_new();
  const char *s = "*2\r\n$3\r\nfoo\r\n:7\r\n+PONG\r\n";
  size_t i;
  int got = 0;
  ml_resp *v;
  for (i = 0; s[i] != '\0'; i++) {   /* a byte at a time */
    CHECK(ml_resp_feed(r, s + i, 1) == 0);
    while (ml_resp_next(r, &v) == 1) {
      got++;
      CHECK(v->type == (got == 1 ? ML_RESP_ARRAY : ML_RESP_STATUS));
      ml_resp_free(v);
    }
  }
  CHECK_INT(got, 2);
  ml_resp_reader_free(r);
}

TEST(resp_refuses_what_is_not_resp) {
  ml_resp_reader *r = ml_resp_reader_new();
  ml_resp *v;
  CHECK(ml_resp_feed(r, "HTTP/1.1 200 OK\r\n", 17) == 0);
  CHECK_INT(ml_resp_next(r, &v), -1);
  CHECK(strlen(ml_resp_error(r)) > 0);
  ml_resp_reader_free(r);
  r = ml_resp_reader_new();               /* 2^30 elements: refused */
  CHECK(ml_resp_feed(r, "*1073741824\r\n", 13) == 0);
  CHECK_INT(ml_resp_next(r, &v), -1);
  ml_resp_reader_free(r);
}

TEST(resp_formats_commands) {
  const char *argv[] = { "SET", "k", "a b\r\n" };
  size_t lens[] = { 3, 1, 5 };
  ml_buf b = { NULL, 0, 0 };
  const char *want = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\na b\r\n\r\n";
  CHECK(ml_resp_format(&b, 3, argv, lens) == 0);
  CHECK_INT(b.len, strlen(want));
  CHECK(memcmp(b.data, want, b.len) == 0);
  ml_buf_free(&b);
}
