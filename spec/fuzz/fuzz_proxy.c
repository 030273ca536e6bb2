/*
 * fuzz_proxy.c - libFuzzer harness for what a proxy sends: the PROXY
 * protocol header (parsed whole, then fed in pieces whose size the first
 * byte decides, which must agree), and the Forwarded / X-Forwarded-For /
 * X-Forwarded-Proto values and a trusted-range list, cut from the input
 * at its first three NUL bytes.  Built with ASan and UBSan.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "net/forwarded.h"
#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The header fed in pieces of 1 + (data[0] % 16) bytes: the same verdict
 * and length as one parse. */
static void fuzz_proxy(const uint8_t *data, size_t size) {
  ml_proxy_header h;
  ml_proxy *px;
  size_t piece, at = 1, used = 0;
  ssize_t r = 0;
  int whole;
  if (size < 1)
    return;
  whole = ml_proxy_parse((const char *)data + 1, size - 1, &h);
  if ((px = ml_proxy_new()) == NULL)
    return;
  piece = 1 + data[0] % 16;
  while (at < size && ml_proxy_result(px) == NULL) {
    size_t n = size - at < piece ? size - at : piece;
    if ((r = ml_proxy_feed(px, (const char *)data + at, n)) < 0)
      break;
    used += (size_t)r;
    at += n;
  }
  if (whole > 0 && (ml_proxy_result(px) == NULL || used != (size_t)whole))
    abort();
  if (whole < 0 && r >= 0 && ml_proxy_result(px) != NULL)
    abort();
  ml_proxy_free(px);
}

/* The next NUL-terminated part of the input (the rest when none). */
static const char *part(const char **p, const char *end, size_t *len) {
  const char *s = *p, *z = memchr(s, '\0', (size_t)(end - s));
  *len = (size_t)((z != NULL ? z : end) - s);
  *p = z != NULL ? z + 1 : end;
  return s;
}

static void fuzz_forwarded(const uint8_t *data, size_t size) {
  const char *p = (const char *)data, *end = p + size, *spec;
  char why[80], addr[64], specz[256];
  ml_forwarded_in in;
  ml_trust *t;
  size_t slen;
  int https = -1;
  memset(&in, 0, sizeof in);
  in.forwarded = part(&p, end, &in.forwarded_len);
  in.xff = part(&p, end, &in.xff_len);
  in.xfp = part(&p, end, &in.xfp_len);
  spec = part(&p, end, &slen);
  if (slen >= sizeof specz)
    slen = sizeof specz - 1;
  memcpy(specz, spec, slen);
  specz[slen] = '\0';
  if ((t = ml_trust_parse(slen > 0 ? specz : "127.0.0.1,10.0.0.0/8", why,
                          sizeof why)) == NULL)
    return;
  ml_trust_text(t, in.xff, in.xff_len);
  ml_forwarded_client(t, &in, addr, sizeof addr, &https);
  in.forwarded = NULL;
  ml_forwarded_client(t, &in, addr, sizeof addr, &https);
  ml_trust_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_proxy(data, size);
  fuzz_forwarded(data, size);
  return 0;
}
