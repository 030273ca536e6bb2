/*
 * lib_crypto.c - what moonlet.session needs from libcrypto: HMAC-SHA256,
 * random bytes, a comparison in constant time, and base64url.  The
 * session format and its cookie are Lua (lua/moonlet/session.lua).
 */
#include <string.h>
#include <lauxlib.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include "vm/lib_crypto.h"

#define MAX_RANDOM 1024

/* hmac_sha256(key, data) -> the 32-byte MAC. */
static int crypto_hmac_sha256(lua_State *L) {
  size_t klen, dlen;
  const char *key = luaL_checklstring(L, 1, &klen);
  const char *data = luaL_checklstring(L, 2, &dlen);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)data, dlen,
           mac, &n) == NULL)
    return luaL_error(L, "hmac_sha256: libcrypto failed");
  lua_pushlstring(L, (const char *)mac, n);
  return 1;
}

/* random_bytes(n) -> n bytes from the system's CSPRNG. */
static int crypto_random_bytes(lua_State *L) {
  lua_Integer n = luaL_checkinteger(L, 1);
  unsigned char buf[MAX_RANDOM];
  luaL_argcheck(L, n > 0 && n <= MAX_RANDOM, 1, "1 to 1024 bytes");
  if (RAND_bytes(buf, (int)n) != 1)
    return luaL_error(L, "random_bytes: libcrypto has no entropy");
  lua_pushlstring(L, (const char *)buf, (size_t)n);
  return 1;
}

/* equal(a, b) -> whether two strings are equal, in a time that does not
 * depend on where they differ (for MACs and tokens). */
static int crypto_equal(lua_State *L) {
  size_t alen, blen;
  const char *a = luaL_checklstring(L, 1, &alen);
  const char *b = luaL_checklstring(L, 2, &blen);
  lua_pushboolean(L, alen == blen && CRYPTO_memcmp(a, b, alen) == 0);
  return 1;
}

static const char b64url[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* b64url_encode(s) -> s in base64url, without padding. */
static int crypto_b64url_encode(lua_State *L) {
  size_t n, i;
  const unsigned char *s =
    (const unsigned char *)luaL_checklstring(L, 1, &n);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (i = 0; i + 2 < n; i += 3) {
    unsigned long v = (unsigned long)s[i] << 16 | s[i + 1] << 8 | s[i + 2];
    luaL_addchar(&b, b64url[v >> 18]);
    luaL_addchar(&b, b64url[(v >> 12) & 63]);
    luaL_addchar(&b, b64url[(v >> 6) & 63]);
    luaL_addchar(&b, b64url[v & 63]);
  }
  if (i < n) {
    unsigned long v = (unsigned long)s[i] << 16 |
                      (i + 1 < n ? s[i + 1] << 8 : 0);
    luaL_addchar(&b, b64url[v >> 18]);
    luaL_addchar(&b, b64url[(v >> 12) & 63]);
    if (i + 1 < n)
      luaL_addchar(&b, b64url[(v >> 6) & 63]);
  }
  luaL_pushresult(&b);
  return 1;
}

static int b64_value(int c) {
  const char *p = c ? strchr(b64url, c) : NULL;
  return p ? (int)(p - b64url) : -1;
}

/* b64url_decode(s) -> the bytes, or nil if s is not base64url (no
 * padding, no other characters, no stray bits). */
static int crypto_b64url_decode(lua_State *L) {
  size_t n, i;
  const char *s = luaL_checklstring(L, 1, &n);
  unsigned long acc = 0;
  int bits = 0;
  luaL_Buffer b;
  if (n % 4 == 1) {
    lua_pushnil(L);
    return 1;
  }
  luaL_buffinit(L, &b);
  for (i = 0; i < n; i++) {
    int v = b64_value((unsigned char)s[i]);
    if (v < 0) {
      lua_pushnil(L);
      return 1;
    }
    acc = (acc << 6 | (unsigned long)v) & 0xFFFFFF;
    if ((bits += 6) >= 8) {
      bits -= 8;
      luaL_addchar(&b, (char)((acc >> bits) & 0xFF));
    }
  }
  if (bits > 0 && (acc & ((1ul << bits) - 1)) != 0) {
    lua_pushnil(L);            /* leftover bits must be zero */
    return 1;
  }
  luaL_pushresult(&b);
  return 1;
}

static const luaL_Reg crypto_funcs[] = {
  {"hmac_sha256", crypto_hmac_sha256},
  {"random_bytes", crypto_random_bytes},
  {"equal", crypto_equal},
  {"b64url_encode", crypto_b64url_encode},
  {"b64url_decode", crypto_b64url_decode},
  {NULL, NULL}
};

void ml_lib_crypto_register(lua_State *L) {
  luaL_setfuncs(L, crypto_funcs, 0);
}
