/*
 * fuzz_resp.c - libFuzzer harness for the RESP path (net/resp.c): each
 * input is fed to a reader in pieces whose sizes its first byte decides,
 * and every reply taken is walked and freed; then the input, cut at
 * NULs into arguments, is encoded as a command and read back, which
 * must give the same arguments.  Built with ASan and UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "net/resp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Touches every byte of a reply, so ASan sees a bad length. */
static size_t walk(const ml_resp *v) {
  size_t i, sum = (size_t)v->type;
  if (v->type == ML_RESP_ARRAY) {
    for (i = 0; i < v->len; i++)
      sum += walk(v->elements[i]);
  } else if (v->type != ML_RESP_INTEGER && v->type != ML_RESP_NIL) {
    for (i = 0; i <= v->len; i++)   /* the NUL too */
      sum += (unsigned char)v->str[i];
  }
  return sum;
}

static void parse(const uint8_t *data, size_t size) {
  ml_resp_reader *r = ml_resp_reader_new();
  size_t step = size > 0 ? (size_t)(data[0] % 16) + 1 : 1, off = 0;
  ml_resp *v;
  int rc = 0;
  volatile size_t sink = 0;
  if (r == NULL)
    return;
  while (off < size && rc >= 0) {
    size_t n = size - off < step ? size - off : step;
    if (ml_resp_feed(r, (const char *)data + off, n) != 0)
      break;
    off += n;
    while ((rc = ml_resp_next(r, &v)) == 1) {
      sink += walk(v);
      ml_resp_free(v);
    }
  }
  ml_resp_reader_free(r);
}

/* Encodes the NUL-separated pieces as a command; reading it back must
 * give one array of those pieces. */
static void roundtrip(const uint8_t *data, size_t size) {
  const char *argv[64];
  size_t lens[64], i;
  int argc = 0;
  const char *p = (const char *)data, *end = p + size;
  ml_buf out = { NULL, 0, 0 };
  ml_resp_reader *r;
  ml_resp *v = NULL;
  while (p <= end && argc < 64) {
    const char *z = memchr(p, '\0', (size_t)(end - p));
    argv[argc] = p;
    lens[argc++] = z != NULL ? (size_t)(z - p) : (size_t)(end - p);
    if (z == NULL)
      break;
    p = z + 1;
  }
  if (ml_resp_format(&out, argc, argv, lens) != 0)
    abort();
  if ((r = ml_resp_reader_new()) == NULL)
    abort();
  if (ml_resp_feed(r, out.data, out.len) != 0 || ml_resp_next(r, &v) != 1)
    abort();
  if (v->type != ML_RESP_ARRAY || v->len != (size_t)argc)
    abort();
  for (i = 0; i < (size_t)argc; i++)
    if (v->elements[i]->len != lens[i] ||
        memcmp(v->elements[i]->str, argv[i], lens[i]) != 0)
      abort();
  ml_resp_free(v);
  ml_resp_reader_free(r);
  ml_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  parse(data, size);
  roundtrip(data, size);
  return 0;
}
