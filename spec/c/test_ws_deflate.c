/*
 * test_ws_deflate.c - permessage-deflate: which offers a server takes and
 * what it answers, which answers a client accepts, messages compressed by
 * the shared deflater and by zlib streams that keep their context, read
 * back by the inflater and by the frame parser; windows and limits.
 */
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "net/ws.h"
#include "net/ws_deflate.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

/* What the server answers to 'offer' ("" when it takes none). */
static const char *answer(const char *offer, int max_client_bits,
                          ml_ws_pmd *agreed) {
  static char resp[ML_WS_PMD_RESPONSE];
  if (!ml_ws_pmd_accept(offer, strlen(offer), max_client_bits, agreed,
                        resp))
    return "";
  return resp;
}

TEST(ws_pmd_server_takes_offers) {
  ml_ws_pmd a;
  CHECK_STR(answer("permessage-deflate", 15, &a),
            "permessage-deflate; server_no_context_takeover");
  CHECK_INT(a.on, 1);
  CHECK_INT(a.server_no_takeover, 1);
  CHECK_INT(a.client_no_takeover, 0);
  CHECK_INT(a.server_bits, 15);
  CHECK_INT(a.client_bits, 15);
  CHECK_STR(answer("permessage-deflate; client_max_window_bits", 15, &a),
            "permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits=15");
  CHECK_STR(answer("permessage-deflate; client_max_window_bits=10", 15, &a),
            "permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits=10");
  CHECK_INT(a.client_bits, 10);
  CHECK_STR(answer("permessage-deflate;client_max_window_bits", 12, &a),
            "permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits=12");
  CHECK_INT(a.client_bits, 12);
  CHECK_STR(answer("permessage-deflate; client_no_context_takeover; "
                   "server_max_window_bits=\"10\"", 15, &a),
            "permessage-deflate; server_no_context_takeover; "
            "client_no_context_takeover; server_max_window_bits=10");
  CHECK_INT(a.server_bits, 10);
  CHECK_INT(a.client_no_takeover, 1);
  /* another extension first, as some browsers offer */
  CHECK_STR(answer("x-webkit-deflate-frame, permessage-deflate", 15, &a),
            "permessage-deflate; server_no_context_takeover");
}

TEST(ws_pmd_server_declines_bad_offers) {
  ml_ws_pmd a;
  static const char *bad[] = {
    "permessage-deflate; foo",
    "permessage-deflate; server_no_context_takeover; "
      "server_no_context_takeover",
    "permessage-deflate; server_max_window_bits",
    "permessage-deflate; server_max_window_bits=16",
    "permessage-deflate; client_max_window_bits=7",
    "permessage-deflate; client_max_window_bits=1 0",
    "permessage-deflate; server_no_context_takeover=1",
    "permessage-deflate; client_max_window_bits=\"10",
    "x-other", "", ",,", "permessage-deflate;", "; x",
  };
  size_t i;
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    CHECK_STR(answer(bad[i], 15, &a), "");
    CHECK_INT(a.on, 0);
  }
  /* a bad offer is skipped for the next one */
  CHECK_STR(answer("permessage-deflate; foo=1, permessage-deflate; "
                   "client_max_window_bits=9", 15, &a),
            "permessage-deflate; server_no_context_takeover; "
            "client_max_window_bits=9");
}

TEST(ws_pmd_client_reads_answers) {
  ml_ws_pmd a;
  static const char *bad[] = {
    "", "permessage-deflate; foo", "x-webkit-deflate-frame",
    "permessage-deflate, permessage-deflate",
    "permessage-deflate; client_max_window_bits",
    "permessage-deflate; server_max_window_bits=16",
  };
  const char *ok = "permessage-deflate; server_no_context_takeover; "
                   "client_no_context_takeover; client_max_window_bits=11";
  size_t i;
  CHECK(strstr(ml_ws_pmd_offer, "client_no_context_takeover") != NULL);
  CHECK_INT(ml_ws_pmd_answer(ok, strlen(ok), &a), 0);
  CHECK_INT(a.on, 1);
  CHECK_INT(a.server_no_takeover, 1);
  CHECK_INT(a.client_bits, 11);
  CHECK_INT(a.server_bits, 15);
  CHECK_INT(ml_ws_pmd_answer("permessage-deflate", 18, &a), 0);
  CHECK_INT(a.server_no_takeover, 0);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    CHECK_INT(ml_ws_pmd_answer(bad[i], strlen(bad[i]), &a), -1);
}

/* Text that compresses: a sentence over and over, numbered. */
static char *sample(size_t n) {
  char *s = malloc(n + 1);
  size_t i;
  for (i = 0; i < n; i++)
    s[i] = "the quick brown fox jumps over the lazy dog "[i % 44];
  s[n] = '\0';
  return s;
}

TEST(ws_deflate_roundtrip_and_small_messages) {
  ml_ws_deflater *d = ml_ws_deflater_new();
  ml_ws_inflater f;
  ml_ws_pmd agreed = { 1, 15, 15, 1, 1 };
  ml_buf z = { 0 }, out = { 0 };
  char *s = sample(100000), rnd[4096];
  size_t i;
  int round;
  CHECK(d != NULL);
  ml_ws_inflater_init(&f, &agreed, 1);
  for (round = 0; round < 3; round++) {   /* one stream, reset each time */
    z.len = out.len = 0;
    CHECK_INT(ml_ws_deflate(d, 15, s, 100000, &z), 1);
    CHECK(z.len < 2000);
    CHECK_INT(ml_ws_inflate(&f, (unsigned char *)z.data, z.len, 1, &out,
                            1 << 20), 0);
    CHECK_INT(out.len, 100000);
    CHECK(memcmp(out.data, s, 100000) == 0);
    CHECK(f.z == NULL);                   /* freed after each message */
  }
  z.len = 0;
  CHECK_INT(ml_ws_deflate(d, 15, s, ML_WS_DEFLATE_MIN - 1, &z), 0);
  CHECK_INT(ml_ws_deflate(d, 8, s, 1000, &z), 0);  /* zlib has no 8 */
  for (i = 0; i < sizeof rnd; i++)
    rnd[i] = (char)(rand() >> 7);
  CHECK_INT(ml_ws_deflate(d, 15, rnd, sizeof rnd, &z), 0);
  CHECK_INT(z.len, 0);
  CHECK_INT(ml_ws_deflate(d, 9, s, 5000, &z), 1);
  ml_buf_free(&z);
  ml_buf_free(&out);
  free(s);
  ml_ws_deflater_free(d);
}

/* A raw deflate stream that keeps its context, as a browser's does. */
static size_t zmsg(z_stream *z, const char *in, size_t n, unsigned char *out,
                   size_t cap) {
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  z->next_out = out;
  z->avail_out = (uInt)cap;
  deflate(z, Z_SYNC_FLUSH);
  return cap - z->avail_out - 4;   /* without 00 00 ff ff */
}

TEST(ws_inflate_keeps_context_and_honours_windows) {
  z_stream z;
  ml_ws_pmd agreed = { 1, 15, 15, 1, 0 };
  ml_ws_inflater f;
  ml_buf out = { 0 };
  unsigned char c[4096];
  char *s = sample(2000);
  size_t n;
  memset(&z, 0, sizeof z);
  CHECK(deflateInit2(&z, 9, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) ==
        Z_OK);
  ml_ws_inflater_init(&f, &agreed, 1);
  n = zmsg(&z, s, 2000, c, sizeof c);
  CHECK_INT(ml_ws_inflate(&f, c, n, 1, &out, 1 << 20), 0);
  CHECK(f.z != NULL);                   /* kept: the next one refers */
  out.len = 0;                          /* back into this one */
  n = zmsg(&z, s, 2000, c, sizeof c);
  CHECK(n < 40);
  CHECK_INT(ml_ws_inflate(&f, c, n, 1, &out, 1 << 20), 0);
  CHECK_INT(out.len, 2000);
  CHECK(memcmp(out.data, s, 2000) == 0);
  ml_ws_inflater_free(&f);
  /* a 9-bit window agreed: a reference 2000 bytes back is refused */
  agreed.client_bits = 9;
  ml_ws_inflater_init(&f, &agreed, 1);
  CHECK_INT(f.bits, 9);
  out.len = 0;
  CHECK_INT(ml_ws_inflate(&f, c, n, 1, &out, 1 << 20), 1002);
  CHECK(f.z == NULL);
  deflateEnd(&z);
  ml_buf_free(&out);
  free(s);
}

/* 20 MB of zeros inflate no further than the limit. */
TEST(ws_inflate_stops_at_the_limit) {
  ml_ws_deflater *d = ml_ws_deflater_new();
  ml_ws_pmd agreed = { 1, 15, 15, 1, 1 };
  ml_ws_inflater f;
  ml_buf z = { 0 }, out = { 0 };
  char *zeros = calloc(1, 20 << 20);
  CHECK_INT(ml_ws_deflate(d, 15, zeros, 20 << 20, &z), 1);
  ml_ws_inflater_init(&f, &agreed, 1);
  CHECK_INT(ml_ws_inflate(&f, (unsigned char *)z.data, z.len, 1, &out,
                          1 << 20), 1009);
  CHECK(out.cap <= (2u << 20));
  CHECK(f.z == NULL);
  out.len = 0;                          /* bytes that are not deflate */
  ml_ws_inflater_init(&f, &agreed, 1);
  CHECK_INT(ml_ws_inflate(&f, (const unsigned char *)"\xff\xff\xff", 3, 1,
                          &out, 100), 1002);
  ml_buf_free(&z);
  ml_buf_free(&out);
  free(zeros);
  ml_ws_deflater_free(d);
}

/* The parser with the extension: RSV1 on a message's first frame only;
 * the text is checked after inflating, fragments and all. */
TEST(ws_parse_compressed_messages) {
  static const uint8_t key[4] = { 1, 2, 3, 4 };
  ml_ws_deflater *d = ml_ws_deflater_new();
  ml_ws_pmd agreed = { 1, 15, 15, 1, 1 };
  ml_ws_inflater f;
  ml_ws_parser p;
  ml_buf z = { 0 }, b = { 0 };
  unsigned char h[ML_WS_MAX_HEAD];
  char *s = sample(3000);
  size_t used, half, hn;
  CHECK_INT(ml_ws_deflate(d, 15, s, 3000, &z), 1);
  ml_ws_inflater_init(&f, &agreed, 1);
  ml_ws_parser_init(&p, 1, 1 << 20, &f);
  half = z.len / 2;                /* two frames: RSV1 on the first */
  hn = ml_ws_head(h, ML_WS_TEXT, 0, 1, half, key);
  ml_buf_append(&b, h, hn);
  ml_buf_append(&b, z.data, half);
  ml_ws_unmask((unsigned char *)b.data + hn, half, key, 0);
  CHECK(ml_ws_frame(&b, ML_WS_PING, 0, "p", 1, key) == 0);
  hn = ml_ws_head(h, ML_WS_CONT, 1, 0, z.len - half, key);
  ml_buf_append(&b, h, hn);
  ml_buf_append(&b, z.data + half, z.len - half);
  ml_ws_unmask((unsigned char *)b.data + b.len - (z.len - half),
               z.len - half, key, 0);
  CHECK_INT(ml_ws_parse(&p, b.data, b.len, &used), ML_WS_CONTROL);
  CHECK_INT(ml_ws_parse(&p, b.data + used, b.len - used, &used),
            ML_WS_MESSAGE);
  CHECK_INT(p.opcode, ML_WS_TEXT);
  CHECK_INT(p.msg.len, 3000);
  CHECK(memcmp(p.msg.data, s, 3000) == 0);
  /* RSV1 on a continuation */
  b.len = 0;
  ml_ws_frame(&b, ML_WS_TEXT, 1, z.data, 0, key);
  b.data[0] = 0x41;                /* text, RSV1, not final */
  ml_ws_frame(&b, ML_WS_CONT, 1, "", 0, key);
  CHECK_INT(ml_ws_parse(&p, b.data, b.len, &used), ML_WS_ERROR);
  CHECK_INT(p.error_code, 1002);
  ml_ws_parser_free(&p);
  /* compressed bytes that are not UTF-8 */
  z.len = 0;
  memset(s, 0xff, 200);
  CHECK_INT(ml_ws_deflate(d, 15, s, 200, &z), 1);
  b.len = 0;
  ml_ws_frame(&b, ML_WS_TEXT, 1, z.data, z.len, key);
  ml_ws_parser_init(&p, 1, 1 << 20, &f);
  CHECK_INT(ml_ws_parse(&p, b.data, b.len, &used), ML_WS_ERROR);
  CHECK_INT(p.error_code, 1007);
  ml_ws_parser_free(&p);
  ml_ws_inflater_free(&f);
  ml_buf_free(&z);
  ml_buf_free(&b);
  free(s);
  ml_ws_deflater_free(d);
}
