/*
 * ws_deflate.h - permessage-deflate (RFC 7692) with zlib: the
 * negotiation of its parameters in the handshake, a connection's
 * inflater, and a deflater that every connection of a loop shares (the
 * runtime's side never takes its context over from one message to the
 * next, so any stream can compress any message).  ws.c calls the
 * inflater; the connection calls the deflater.
 */
#ifndef ML_WS_DEFLATE_H
#define ML_WS_DEFLATE_H

#include <stddef.h>
#include <stdint.h>
#include "base/util.h"

/* What the two sides agreed on; all zero: no compression. */
typedef struct {
  uint8_t on;                 /* permessage-deflate is in use */
  uint8_t server_bits;        /* the server compressor's window, 8-15 */
  uint8_t client_bits;        /* the client compressor's window, 8-15 */
  uint8_t server_no_takeover; /* the server resets after each message */
  uint8_t client_no_takeover; /* the client resets after each message */
} ml_ws_pmd;

/* The longest response ml_ws_pmd_accept writes, its NUL included. */
#define ML_WS_PMD_RESPONSE 128

/*
 * A server reads the client's Sec-WebSocket-Extensions (every line,
 * joined with ", ") and takes the first permessage-deflate offer it can:
 * returns 1 and fills *agreed and resp (the header value to send back),
 * or 0 when there is none (or the header does not parse).  The server
 * always resets its compressor between messages; client_max_window_bits
 * is answered with the client's own value, at most max_client_bits.
 */
int ml_ws_pmd_accept(const char *offers, size_t len, int max_client_bits,
                     ml_ws_pmd *agreed, char resp[ML_WS_PMD_RESPONSE]);

/* What a client offers: one offer with no context takeover on its side. */
extern const char ml_ws_pmd_offer[];

/*
 * A client reads the server's answer to ml_ws_pmd_offer: 0 with *agreed
 * filled, or -1 when it is not a valid answer to that offer (the client
 * must then fail the connection).
 */
int ml_ws_pmd_answer(const char *value, size_t len, ml_ws_pmd *agreed);

/*
 * A connection's decompressor; zlib's state is made at the first
 * compressed message and, when the peer resets its own between messages,
 * freed after each one, so an idle connection holds none.
 */
typedef struct ml_ws_inflater {
  void *z;                    /* z_stream, or NULL */
  uint8_t bits;               /* the peer's window */
  uint8_t no_takeover;        /* the peer resets after each message */
} ml_ws_inflater;

/* Prepares f for the peer's side of what was agreed ('server': we are). */
void ml_ws_inflater_init(ml_ws_inflater *f, const ml_ws_pmd *agreed,
                         int server);

/*
 * Inflates n bytes of a message's payload, appending to out, which may
 * not grow past 'max' bytes; 'last' ends the message (RFC 7692's
 * 00 00 ff ff tail is added).  0, or the close code to fail with: 1002
 * for data that does not inflate, 1009 past 'max', 1011 out of memory.
 */
int ml_ws_inflate(ml_ws_inflater *f, const unsigned char *in, size_t n,
                  int last, ml_buf *out, size_t max);

/* Frees zlib's state, if any. */
void ml_ws_inflater_free(ml_ws_inflater *f);

/* The loop's compressors, one per window size, made when first used. */
typedef struct ml_ws_deflater ml_ws_deflater;

/* NULL when out of memory. */
ml_ws_deflater *ml_ws_deflater_new(void);
void ml_ws_deflater_free(ml_ws_deflater *d);

/* Messages shorter than this go out as they are. */
#define ML_WS_DEFLATE_MIN 64

/*
 * Compresses a whole message for a window of 'bits', appending the
 * payload (without the tail) to out: 1 when it did, 0 when the message
 * is better sent as it is (short, incompressible, or a window zlib
 * cannot make), -1 when out of memory.  out is as it was unless 1.
 */
int ml_ws_deflate(ml_ws_deflater *d, int bits, const void *in, size_t n,
                  ml_buf *out);

#endif
