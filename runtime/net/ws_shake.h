/*
 * ws_shake.h - the opening handshake's pieces (RFC 6455 section 4): the
 * client's key and the server's accept value (SHA-1 and base64 from
 * libcrypto), and the comma-separated token lists of Connection,
 * Upgrade and Sec-WebSocket-Protocol.  The request and response around
 * them are their callers'.
 */
#ifndef ML_WS_SHAKE_H
#define ML_WS_SHAKE_H

#include <stddef.h>
#include <stdint.h>

#define ML_WS_KEY_LEN 24      /* base64 of 16 bytes */
#define ML_WS_ACCEPT_LEN 28   /* base64 of a SHA-1 */

/* Whether a Sec-WebSocket-Key value (spaces around it allowed) is the
 * base64 of 16 bytes. */
int ml_ws_key_ok(const char *key, size_t len);

/* The Sec-WebSocket-Accept value for a valid key, NUL-terminated. */
void ml_ws_accept(const char *key, size_t len,
                  char out[ML_WS_ACCEPT_LEN + 1]);

/* A new random key, NUL-terminated; 0, or -1 when the random source
 * fails. */
int ml_ws_new_key(char out[ML_WS_KEY_LEN + 1]);

/* A client's masking key for one frame; 0, or -1 when the random
 * source fails. */
int ml_ws_mask_key(uint8_t key[4]);

/*
 * The next token of a comma-separated list at *p (before end), spaces
 * trimmed and empty elements skipped: its start, with *len; NULL at the
 * end.  *p moves past it.
 */
const char *ml_ws_list_next(const char **p, const char *end, size_t *len);

/* Whether the list holds the token, compared without case. */
int ml_ws_list_has(const char *list, size_t len, const char *token);

#endif
