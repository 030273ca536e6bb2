/*
 * lib_crypto.h - libcrypto for moonlet.session (lib_crypto.c).
 */
#ifndef ML_LIB_CRYPTO_H
#define ML_LIB_CRYPTO_H

#include <lua.h>

/* Adds core.hmac_sha256, core.random_bytes, core.equal,
 * core.b64url_encode and core.b64url_decode to the table on top. */
void ml_lib_crypto_register(lua_State *L);

#endif
