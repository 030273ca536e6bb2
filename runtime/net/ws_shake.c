/*
 * ws_shake.c - the handshake's values: a key is checked, its accept
 * value computed with libcrypto's SHA1() and EVP_EncodeBlock (no SHA-1
 * or base64 of our own), a client's key drawn from RAND_bytes; and the
 * token lists the handshake's headers carry.
 */
#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include "net/ws_shake.h"
#include "base/util.h"

static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* Trims spaces and tabs off both ends. */
static const char *trim(const char *s, size_t *len) {
  while (*len > 0 && (*s == ' ' || *s == '\t')) {
    s++;
    (*len)--;
  }
  while (*len > 0 && (s[*len - 1] == ' ' || s[*len - 1] == '\t'))
    (*len)--;
  return s;
}

static int is_b64(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
         (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* 16 bytes are 22 characters and "=="; the 22nd carries 2 bits, so its
 * low 4 must be zero: A, Q, g or w. */
int ml_ws_key_ok(const char *key, size_t len) {
  int i;
  key = trim(key, &len);
  if (len != ML_WS_KEY_LEN || key[22] != '=' || key[23] != '=' ||
      key[21] == '\0' || strchr("AQgw", key[21]) == NULL)
    return 0;
  for (i = 0; i < 21; i++)
    if (!is_b64(key[i]))
      return 0;
  return 1;
}

void ml_ws_accept(const char *key, size_t len,
                  char out[ML_WS_ACCEPT_LEN + 1]) {
  unsigned char in[ML_WS_KEY_LEN + sizeof guid], md[SHA_DIGEST_LENGTH];
  key = trim(key, &len);
  if (len > ML_WS_KEY_LEN)
    len = ML_WS_KEY_LEN;
  memcpy(in, key, len);
  memcpy(in + len, guid, sizeof guid - 1);
  SHA1(in, len + sizeof guid - 1, md);
  EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
}

int ml_ws_new_key(char out[ML_WS_KEY_LEN + 1]) {
  unsigned char raw[16];
  if (RAND_bytes(raw, sizeof raw) != 1)
    return -1;
  EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
  return 0;
}

int ml_ws_mask_key(uint8_t key[4]) {
  return RAND_bytes(key, 4) == 1 ? 0 : -1;
}

const char *ml_ws_list_next(const char **p, const char *end, size_t *len) {
  const char *s, *e;
  while (*p < end) {
    s = *p;
    e = memchr(s, ',', (size_t)(end - s));
    if (e == NULL)
      e = end;
    *p = e < end ? e + 1 : end;
    *len = (size_t)(e - s);
    s = trim(s, len);
    if (*len > 0)
      return s;
  }
  return NULL;
}

int ml_ws_list_has(const char *list, size_t len, const char *token) {
  const char *p = list, *t;
  size_t n;
  while ((t = ml_ws_list_next(&p, list + len, &n)) != NULL)
    if (ml_strieq(t, n, token))
      return 1;
  return 0;
}
