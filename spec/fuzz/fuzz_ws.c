/*
 * fuzz_ws.c - libFuzzer harness for WebSocket frames and their
 * handshake values: the input's first byte picks the parser's role,
 * compression, limit and how the rest is cut; the parser must end in an
 * event or a close code, never crash, and what it hands out must keep
 * its promises (text is UTF-8, sizes within limits).  The same bytes
 * then go through the encoder and back, compressed or not, and through
 * the extension and key parsers.  Built with ASan and UBSan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/ws.h"
#include "net/ws_deflate.h"
#include "net/ws_shake.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ml_ws_deflater *deflater;

static void check(int ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "fuzz_ws: %s\n", what);
    abort();
  }
}

/* Feeds the bytes in pieces; checks each event. */
static void parse_all(int mode, const uint8_t *d, size_t n) {
  static const ml_ws_pmd agreed = { 1, 15, 11, 1, 0 };
  ml_ws_inflater f;
  ml_ws_parser p;
  size_t max = (mode & 4) ? 100 : 1 << 20, step = (size_t)(mode >> 3);
  size_t off = 0, used, k;
  ml_ws_result r = ML_WS_MORE;
  uint32_t st;
  ml_ws_inflater_init(&f, &agreed, mode & 1);
  ml_ws_parser_init(&p, mode & 1, max, (mode & 2) ? &f : NULL);
  while (off < n && r != ML_WS_ERROR) {
    k = step == 0 || n - off < step ? n - off : step;
    r = ml_ws_parse(&p, (const char *)d + off, k, &used);
    check(used <= k, "used more than given");
    off += used;
    if (r == ML_WS_MESSAGE) {
      st = 0;
      check(p.msg.len <= max, "message over the limit");
      check(p.opcode != ML_WS_TEXT ||
            (ml_ws_utf8(&st, (unsigned char *)p.msg.data, p.msg.len) ==
             0 && st == 0), "text that is not UTF-8");
    } else if (r == ML_WS_CONTROL) {
      check(p.ctl_len <= ML_WS_MAX_CONTROL, "control frame too long");
    } else if (r == ML_WS_ERROR) {
      check(p.error_code == 1002 || p.error_code == 1007 ||
            p.error_code == 1009 || p.error_code == 1011, "close code");
    } else {
      check(used == k, "more asked for with bytes left");
    }
  }
  ml_ws_parser_free(&p);
  ml_ws_inflater_free(&f);
}

/* The bytes as one message: encoded (and maybe compressed), then parsed
 * back by the other side's parser. */
static void roundtrip(int mode, const uint8_t *d, size_t n) {
  static const ml_ws_pmd agreed = { 1, 15, 15, 1, 1 };
  uint8_t key[4] = { 0x12, 0x34, 0x56, 0x78 };
  ml_buf z = { 0 }, b = { 0 };
  ml_ws_inflater f;
  ml_ws_parser p;
  size_t used;
  int deflated = 0;
  if (n >= 4)
    memcpy(key, d, 4);
  if ((mode & 2) && (deflated = ml_ws_deflate(deflater, 9 + (mode >> 5),
                                              d, n, &z)) < 0)
    return;
  if (ml_ws_frame(&b, ML_WS_BINARY, deflated, deflated ? z.data
                  : (const char *)d, deflated ? z.len : n,
                  (mode & 1) ? key : NULL) != 0)
    return;
  ml_ws_inflater_init(&f, &agreed, mode & 1);
  ml_ws_parser_init(&p, mode & 1, 1 << 20, &f);
  check(ml_ws_parse(&p, b.data, b.len, &used) == ML_WS_MESSAGE &&
        used == b.len, "an encoded frame does not parse");
  check(p.msg.len == n && (n == 0 || memcmp(p.msg.data, d, n) == 0),
        "a message changed on its way");
  ml_ws_parser_free(&p);
  ml_ws_inflater_free(&f);
  ml_buf_free(&z);
  ml_buf_free(&b);
}

/* Header values: the extension offer and answer, a key, a list. */
static void headers(const uint8_t *d, size_t n) {
  char resp[ML_WS_PMD_RESPONSE], acc[ML_WS_ACCEPT_LEN + 1];
  ml_ws_pmd a, back;
  const char *s = (const char *)d, *p = s, *t;
  size_t len;
  if (ml_ws_pmd_accept(s, n, 12, &a, resp)) {
    check(strlen(resp) < sizeof resp, "answer too long");
    check(ml_ws_pmd_answer(resp, strlen(resp), &back) == 0,
          "the server's answer does not read back");
  }
  ml_ws_pmd_answer(s, n, &a);
  if (ml_ws_key_ok(s, n))
    ml_ws_accept(s, n, acc);
  while ((t = ml_ws_list_next(&p, s + n, &len)) != NULL)
    check(len > 0 && t >= s && t + len <= s + n, "list token");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  int mode;
  if (size == 0)
    return 0;
  if (deflater == NULL && (deflater = ml_ws_deflater_new()) == NULL)
    return 0;
  mode = data[0];
  parse_all(mode, data + 1, size - 1);
  roundtrip(mode, data + 1, size - 1 > 70000 ? 70000 : size - 1);
  headers(data + 1, size - 1);
  return 0;
}
