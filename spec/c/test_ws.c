/*
 * test_ws.c - ws.c's frame parser and encoder, and ws_shake.c's
 * handshake values: every rule a peer must keep fails with its close
 * code, at the byte that breaks it, however the bytes are cut; what the
 * encoder writes parses back.
 */
#include <stdlib.h>
#include <string.h>
#include "net/ws.h"
#include "net/ws_shake.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

static const uint8_t key[4] = { 0x37, 0xfa, 0x21, 0x3d };

/* A frame with free head bits, masked with 'key' when 'masked'. */
static void put_frame(ml_buf *b, int b0, const void *data, size_t len,
                      int masked) {
  unsigned char h[ML_WS_MAX_HEAD];
  size_t hn = ml_ws_head(h, b0 & 0x0f, b0 >> 7, 0, len,
                         masked ? key : NULL);
  h[0] = (unsigned char)b0;
  ml_buf_append(b, h, hn);
  ml_buf_append(b, data, len);
  if (masked)
    ml_ws_unmask((unsigned char *)b->data + b->len - len, len, key, 0);
}

/* Parses all of b in pieces of 'step' bytes (0: at once); returns the
 * first event that is not "more", with the bytes used until then. */
static ml_ws_result parse_in(ml_ws_parser *p, const ml_buf *b, size_t step,
                             size_t *at) {
  size_t off = 0, used, n;
  ml_ws_result r = ML_WS_MORE;
  while (off < b->len) {
    n = step == 0 || b->len - off < step ? b->len - off : step;
    r = ml_ws_parse(p, b->data + off, n, &used);
    off += used;
    if (r != ML_WS_MORE)
      break;
  }
  *at = off;
  return r;
}

/* The close code a server-side parse of b fails with (0: none), past
 * the messages and control frames before the failure. */
static int fails_with(const ml_buf *b, size_t max) {
  ml_ws_parser p;
  size_t off = 0, used;
  ml_ws_result r;
  int code;
  ml_ws_parser_init(&p, 1, max, NULL);
  do {
    r = ml_ws_parse(&p, b->data + off, b->len - off, &used);
    off += used;
  } while (r == ML_WS_CONTROL || r == ML_WS_MESSAGE);
  code = r == ML_WS_ERROR ? p.error_code : 0;
  ml_ws_parser_free(&p);
  return code;
}

TEST(ws_utf8_accepts_and_refuses) {
  static const struct { const char *s; int ok; } cases[] = {
    { "plain ASCII, long enough for the word path", 1 },
    { "\xc2\x80 \xdf\xbf \xe0\xa0\x80 \xed\x9f\xbf \xee\x80\x80", 1 },
    { "\xef\xbf\xbf \xf0\x90\x80\x80 \xf4\x8f\xbf\xbf", 1 },
    { "\xc0\x80", 0 }, { "\xc1\xbf", 0 }, { "\xe0\x9f\xbf", 0 },
    { "\xed\xa0\x80", 0 }, { "\xed\xbf\xbf", 0 }, { "\xf0\x8f\xbf\xbf", 0 },
    { "\xf4\x90\x80\x80", 0 }, { "\xf5\x80\x80\x80", 0 }, { "\xff", 0 },
    { "\x80", 0 }, { "a\xc2" "a", 0 }, { "12345678\xe2\x82", 0 },
  };
  size_t i, cut;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const unsigned char *s = (const unsigned char *)cases[i].s;
    size_t n = strlen(cases[i].s);
    for (cut = 0; cut <= n; cut++) {   /* any split gives one answer */
      uint32_t st = 0;
      int ok = ml_ws_utf8(&st, s, cut) == 0 &&
               ml_ws_utf8(&st, s + cut, n - cut) == 0 && st == 0;
      CHECK_INT(ok, cases[i].ok);
    }
  }
}

TEST(ws_utf8_fails_at_the_bad_byte) {
  static const unsigned char s[] = "good text \xe2\x82\xac then \xed\xa0";
  uint32_t st = 0;
  size_t bad = sizeof s - 2;   /* \xa0 after \xed: a surrogate */
  CHECK_INT(ml_ws_utf8(&st, s, bad), 0);
  CHECK(st != 0);              /* inside a character, not yet wrong */
  CHECK_INT(ml_ws_utf8(&st, s + bad, 1), -1);
}

TEST(ws_unmask_matches_bytewise) {
  unsigned char a[80], b[80];
  size_t off, len, start, i;
  for (off = 0; off < 4; off++)
    for (start = 0; start < 8; start++)
      for (len = 0; len + start <= sizeof a; len += 7) {
        for (i = 0; i < sizeof a; i++)
          a[i] = b[i] = (unsigned char)(i * 31 + 7);
        ml_ws_unmask(a + start, len, key, off);
        for (i = 0; i < len; i++)
          b[start + i] ^= key[(off + i) & 3];
        CHECK(memcmp(a, b, sizeof a) == 0);
      }
}

TEST(ws_head_lengths) {
  unsigned char h[ML_WS_MAX_HEAD];
  CHECK_INT(ml_ws_head(h, ML_WS_TEXT, 1, 0, 125, NULL), 2);
  CHECK_INT(h[0], 0x81);
  CHECK_INT(h[1], 125);
  CHECK_INT(ml_ws_head(h, ML_WS_BINARY, 1, 1, 126, NULL), 4);
  CHECK_INT(h[0], 0xc2);
  CHECK_INT(h[1], 126);
  CHECK_INT(h[2] << 8 | h[3], 126);
  CHECK_INT(ml_ws_head(h, ML_WS_BINARY, 0, 0, 65535, key), 8);
  CHECK_INT(h[0], 0x02);
  CHECK_INT(h[1], 0x80 | 126);
  CHECK(memcmp(h + 4, key, 4) == 0);
  CHECK_INT(ml_ws_head(h, ML_WS_TEXT, 1, 0, 65536, key), 14);
  CHECK_INT(h[1], 0x80 | 127);
  CHECK_INT(h[7], 1);
  CHECK_INT(h[8] | h[9], 0);
}

/* Every length class, in one piece and byte by byte, gives the same
 * message back. */
TEST(ws_parse_roundtrip_lengths) {
  static const size_t lens[] = { 0, 1, 125, 126, 65535, 65536, 200000 };
  size_t i, s, at;
  static const size_t steps[] = { 0, 1, 7 };
  for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    char *data = malloc(lens[i] + 1);
    ml_buf b = { 0 };
    size_t j;
    for (j = 0; j < lens[i]; j++)
      data[j] = (char)('a' + j % 26);
    CHECK(ml_ws_frame(&b, ML_WS_TEXT, 0, data, lens[i], key) == 0);
    for (s = 0; s < 3; s++) {
      ml_ws_parser p;
      if (steps[s] == 1 && lens[i] > 70000)
        continue;
      ml_ws_parser_init(&p, 1, 1 << 20, NULL);
      CHECK_INT(parse_in(&p, &b, steps[s], &at), ML_WS_MESSAGE);
      CHECK_INT(at, b.len);
      CHECK_INT(p.opcode, ML_WS_TEXT);
      CHECK_INT(p.msg.len, lens[i]);
      CHECK(lens[i] == 0 || memcmp(p.msg.data, data, lens[i]) == 0);
      ml_ws_parser_free(&p);
    }
    ml_buf_free(&b);
    free(data);
  }
}

TEST(ws_parse_fragments_with_control_between) {
  ml_buf b = { 0 }, taken;
  ml_ws_parser p;
  size_t at, used;
  put_frame(&b, 0x02, "ab", 2, 1);          /* binary, not final */
  put_frame(&b, 0x89, "hi", 2, 1);          /* a ping in the middle */
  put_frame(&b, 0x00, "cd", 2, 1);          /* continuation */
  put_frame(&b, 0x80, "ef", 2, 1);          /* final continuation */
  put_frame(&b, 0x8a, "", 0, 1);            /* an empty pong */
  ml_ws_parser_init(&p, 1, 100, NULL);
  CHECK_INT(parse_in(&p, &b, 3, &at), ML_WS_CONTROL);
  CHECK_INT(p.opcode, ML_WS_PING);
  CHECK_INT(p.ctl_len, 2);
  CHECK(memcmp(p.ctl, "hi", 2) == 0);
  CHECK_INT(ml_ws_parse(&p, b.data + at, b.len - at, &used),
            ML_WS_MESSAGE);
  CHECK_INT(p.opcode, ML_WS_BINARY);
  CHECK_INT(p.msg.len, 6);
  CHECK(memcmp(p.msg.data, "abcdef", 6) == 0);
  ml_ws_parser_take(&p, &taken);
  CHECK_INT(taken.len, 6);
  CHECK(p.msg.data == NULL);
  at += used;
  CHECK_INT(ml_ws_parse(&p, b.data + at, b.len - at, &used),
            ML_WS_CONTROL);
  CHECK_INT(p.opcode, ML_WS_PONG);
  CHECK_INT(p.ctl_len, 0);
  CHECK_INT(at + used, b.len);
  ml_buf_free(&taken);
  ml_buf_free(&b);
  ml_ws_parser_free(&p);
}

TEST(ws_parse_refuses_broken_frames) {
  static const char big[130] = { 0 };
  struct { int b0; size_t len; int masked; int code; } cases[] = {
    { 0x81, 3, 0, 1002 },     /* unmasked client frame */
    { 0xa1, 3, 1, 1002 },     /* RSV2 */
    { 0x91, 3, 1, 1002 },     /* RSV3 */
    { 0xc1, 3, 1, 1002 },     /* RSV1 with no extension */
    { 0x83, 3, 1, 1002 },     /* opcode 3 */
    { 0x8b, 3, 1, 1002 },     /* opcode 11 */
    { 0x09, 3, 1, 1002 },     /* fragmented ping */
    { 0x89, 126, 1, 1002 },   /* a 126-byte ping */
    { 0x8a, 126, 1, 1002 },   /* a 126-byte pong */
    { 0x80, 3, 1, 1002 },     /* continuation with no message */
    { 0x88, 1, 1, 1002 },     /* close of one byte */
    { 0x81, 101, 1, 1009 },   /* over max_message */
  };
  size_t i;
  for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    ml_buf b = { 0 };
    put_frame(&b, cases[i].b0, big, cases[i].len, cases[i].masked);
    CHECK_INT(fails_with(&b, 100), cases[i].code);
    ml_buf_free(&b);
  }
}

TEST(ws_parse_refuses_bad_sequences) {
  ml_buf b = { 0 };
  ml_ws_parser p;
  size_t at;
  put_frame(&b, 0x01, "a", 1, 1);
  put_frame(&b, 0x81, "b", 1, 1);           /* text inside a text */
  CHECK_INT(fails_with(&b, 100), 1002);
  b.len = 0;                                /* 60 + 60 > 100 */
  put_frame(&b, 0x02, "0123456789012345678901234567890123456789"
            "01234567890123456789", 60, 1);
  put_frame(&b, 0x80, "0123456789012345678901234567890123456789"
            "01234567890123456789", 60, 1);
  CHECK_INT(fails_with(&b, 100), 1009);     /* across fragments too */
  b.len = 0;                                /* 2^63 and more */
  ml_buf_append(&b, "\x82\xff\x80\0\0\0\0\0\0\0" "abcd", 14);
  CHECK_INT(fails_with(&b, 100), 1002);
  /* a client's parser refuses masked frames */
  b.len = 0;
  put_frame(&b, 0x81, "x", 1, 1);
  ml_ws_parser_init(&p, 0, 100, NULL);
  CHECK_INT(parse_in(&p, &b, 0, &at), ML_WS_ERROR);
  CHECK_INT(p.error_code, 1002);
  CHECK_STR(p.error, "masked server frame");
  /* and the error sticks */
  CHECK_INT(ml_ws_parse(&p, b.data, b.len, &at), ML_WS_ERROR);
  CHECK_INT(at, 0);
  ml_ws_parser_free(&p);
  ml_buf_free(&b);
}

/* The size check comes with the head: no payload byte is needed. */
TEST(ws_parse_too_big_before_payload) {
  unsigned char h[ML_WS_MAX_HEAD];
  size_t hn = ml_ws_head(h, ML_WS_BINARY, 1, 0, 1u << 30, key), used;
  ml_ws_parser p;
  ml_ws_parser_init(&p, 1, 1 << 20, NULL);
  CHECK_INT(ml_ws_parse(&p, (char *)h, hn, &used), ML_WS_ERROR);
  CHECK_INT(p.error_code, 1009);
  CHECK(p.msg.cap < 4096);
  ml_ws_parser_free(&p);
}

TEST(ws_parse_close_codes) {
  static const int good[] = { 1000, 1001, 1003, 1007, 1011, 1014, 3000,
                              4999 };
  static const int bad[] = { 0, 999, 1004, 1005, 1006, 1015, 1016, 2999,
                             5000, 65535 };
  unsigned char pl[ML_WS_MAX_CONTROL];
  size_t i, n, at, rlen;
  ml_ws_parser p;
  for (i = 0; i < sizeof good / sizeof good[0]; i++) {
    ml_buf b = { 0 };
    n = ml_ws_close_payload(pl, good[i], "bye \xc3\xa9", 6);
    put_frame(&b, 0x88, pl, n, 1);
    ml_ws_parser_init(&p, 1, 100, NULL);
    CHECK_INT(parse_in(&p, &b, 1, &at), ML_WS_CONTROL);
    CHECK_INT(p.opcode, ML_WS_CLOSE);
    CHECK_INT(p.close_code, good[i]);
    CHECK(memcmp(ml_ws_close_reason(&p, &rlen), "bye \xc3\xa9", 6) == 0);
    CHECK_INT(rlen, 6);
    ml_ws_parser_free(&p);
    ml_buf_free(&b);
  }
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    ml_buf b = { 0 };
    n = ml_ws_close_payload(pl, bad[i], "", 0);
    put_frame(&b, 0x88, pl, n, 1);
    CHECK_INT(fails_with(&b, 100), 1002);
    ml_buf_free(&b);
  }
  {                                   /* no payload: 1005 */
    ml_buf b = { 0 };
    put_frame(&b, 0x88, "", 0, 1);
    ml_ws_parser_init(&p, 1, 100, NULL);
    CHECK_INT(parse_in(&p, &b, 0, &at), ML_WS_CONTROL);
    CHECK_INT(p.close_code, 1005);
    ml_ws_parser_free(&p);
    b.len = 0;                        /* a reason that is not UTF-8 */
    put_frame(&b, 0x88, "\x03\xe8\xff", 3, 1);
    CHECK_INT(fails_with(&b, 100), 1007);
    ml_buf_free(&b);
  }
}

TEST(ws_close_payload_cuts_on_a_character) {
  char reason[200];
  unsigned char pl[ML_WS_MAX_CONTROL];
  size_t n, i;
  uint32_t st = 0;
  for (i = 0; i + 2 <= sizeof reason; i += 2)
    memcpy(reason + i, "\xc3\xa9", 2);     /* é, two bytes each: the */
  n = ml_ws_close_payload(pl, 1000, reason, sizeof reason);
  CHECK(n <= ML_WS_MAX_CONTROL);
  CHECK_INT(n, 2 + 123 - 1);             /* one at 122-123 is cut */
  CHECK_INT(ml_ws_utf8(&st, pl + 2, n - 2), 0);
  CHECK_INT(st, 0);
}

/* Invalid UTF-8 fails as soon as it arrives: in the second fragment,
 * before that frame's payload is complete. */
TEST(ws_parse_utf8_fails_fast_across_fragments) {
  ml_buf b = { 0 };
  ml_ws_parser p;
  size_t used, head;
  unsigned char h[ML_WS_MAX_HEAD];
  put_frame(&b, 0x01, "caf\xc3", 4, 1);      /* é cut between frames */
  put_frame(&b, 0x00, "\xa9 ok", 4, 1);
  ml_ws_parser_init(&p, 1, 1000, NULL);
  CHECK_INT(ml_ws_parse(&p, b.data, b.len, &used), ML_WS_MORE);
  CHECK_INT(used, b.len);
  b.len = 0;                                 /* 100 bytes announced... */
  head = ml_ws_head(h, ML_WS_CONT, 1, 0, 100, key);
  ml_buf_append(&b, h, head);
  ml_buf_append(&b, "ab\xed\xa0xxxx", 8);    /* ...a surrogate in 8 */
  ml_ws_unmask((unsigned char *)b.data + head, 8, key, 0);
  CHECK_INT(ml_ws_parse(&p, b.data, b.len, &used), ML_WS_ERROR);
  CHECK_INT(p.error_code, 1007);
  ml_ws_parser_free(&p);
  b.len = 0;                                 /* a message ending in */
  put_frame(&b, 0x81, "ok\xe2\x82", 4, 1);   /* the middle of € */
  CHECK_INT(fails_with(&b, 100), 1007);
  b.len = 0;                                 /* binary is not checked */
  put_frame(&b, 0x82, "\xff\xfe", 2, 1);
  CHECK_INT(fails_with(&b, 100), 0);
  ml_buf_free(&b);
}

TEST(ws_handshake_values) {
  char acc[ML_WS_ACCEPT_LEN + 1], k[ML_WS_KEY_LEN + 1];
  const char *list = " Upgrade ,, keep-alive", *p = list, *t;
  size_t n;
  /* RFC 6455's own example */
  ml_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", 24, acc);
  CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  ml_ws_accept(" dGhlIHNhbXBsZSBub25jZQ== ", 26, acc);
  CHECK_STR(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(ml_ws_key_ok("dGhlIHNhbXBsZSBub25jZQ==", 24));
  CHECK(!ml_ws_key_ok("dGhlIHNhbXBsZSBub25jZR==", 24));  /* 17th bits */
  CHECK(!ml_ws_key_ok("dGhlIHNhbXBsZSBub25jZQ=", 23));
  CHECK(!ml_ws_key_ok("dGhlIHNhbXBsZSBub25j*Q==", 24));
  CHECK(!ml_ws_key_ok("", 0));
  CHECK(ml_ws_new_key(k) == 0);
  CHECK_INT(strlen(k), 24);
  CHECK(ml_ws_key_ok(k, 24));
  CHECK(ml_ws_list_has(list, strlen(list), "upgrade"));
  CHECK(ml_ws_list_has(list, strlen(list), "keep-alive"));
  CHECK(!ml_ws_list_has(list, strlen(list), "close"));
  t = ml_ws_list_next(&p, list + strlen(list), &n);
  CHECK(t != NULL && n == 7 && memcmp(t, "Upgrade", 7) == 0);
  t = ml_ws_list_next(&p, list + strlen(list), &n);
  CHECK(t != NULL && n == 10);
  CHECK(ml_ws_list_next(&p, list + strlen(list), &n) == NULL);
}
