/*
 * ws.h - WebSocket frames (RFC 6455): a parser that turns bytes into
 * whole messages and control frames, checking every rule a peer must
 * keep, and the encoder for frames we send.  No sockets, no Lua: the
 * connection feeds bytes in and writes what the encoder appends.
 */
#ifndef ML_WS_H
#define ML_WS_H

#include <stddef.h>
#include <stdint.h>
#include "base/util.h"
#include "net/ws_deflate.h"

/* Opcodes. */
enum {
  ML_WS_CONT = 0, ML_WS_TEXT = 1, ML_WS_BINARY = 2,
  ML_WS_CLOSE = 8, ML_WS_PING = 9, ML_WS_PONG = 10
};

/* Close codes the runtime sends or reports. */
enum {
  ML_WS_NORMAL = 1000, ML_WS_GOING_AWAY = 1001, ML_WS_PROTOCOL = 1002,
  ML_WS_NO_STATUS = 1005, ML_WS_ABNORMAL = 1006, ML_WS_BAD_DATA = 1007,
  ML_WS_TOO_BIG = 1009, ML_WS_INTERNAL = 1011
};

#define ML_WS_MAX_CONTROL 125   /* a control frame's payload, at most */
#define ML_WS_MAX_HEAD 14       /* a frame head, at most */

/* What ml_ws_parse stopped at. */
typedef enum {
  ML_WS_MORE,      /* every byte given was used: more are needed */
  ML_WS_MESSAGE,   /* a whole message is in 'msg', 'opcode' says which */
  ML_WS_CONTROL,   /* a ping, pong or close: 'opcode', 'ctl' */
  ML_WS_ERROR      /* the peer broke a rule: 'error_code', 'error' */
} ml_ws_result;

/*
 * A parser, owned by its connection; all zero but for the settings is
 * its start (ml_ws_parser_init).  The message buffer grows as a message
 * arrives; the caller may take it (ml_ws_parser_take) or leave it to be
 * reused.  After an error every call returns the same error.
 */
typedef struct ml_ws_parser {
  /* settings */
  size_t max_message;      /* a message's bytes, after inflating */
  ml_ws_inflater *inflate; /* permessage-deflate was agreed, or NULL */
  /* the result */
  const char *error;       /* why, for the log */
  ml_buf msg;              /* the message being assembled */
  uint8_t *ctl;            /* a control frame's payload (125 bytes, made
                              for it and freed at the next call, so an
                              idle connection holds none) */
  uint16_t close_code;     /* a close frame's code; 1005 when none */
  uint16_t error_code;     /* 1002, 1007, 1009 or 1011 (out of memory) */
  uint8_t ctl_len;
  /* the frame being read (in an order that leaves no padding) */
  uint8_t head_len;
  uint8_t head[ML_WS_MAX_HEAD];
  uint8_t mask[4];
  uint64_t left;           /* payload bytes still to come */
  uint32_t utf8;           /* the text validator's state */
  unsigned masked : 1;     /* frames must be masked (a server reading a
                              client), else must not be */
  unsigned opcode : 4;     /* of the message or control frame */
  unsigned frame_op : 4;
  unsigned fin : 1;
  unsigned has_mask : 1;
  unsigned in_payload : 1;
  unsigned msg_op : 4;     /* the message in progress; 0: none */
  unsigned compressed : 1; /* ... arrives deflated */
  unsigned mask_off : 2;   /* payload bytes unmasked so far, mod 4 */
} ml_ws_parser;

/* Starts a parser: 'masked' for a server's (a client must mask), with a
 * message limit; 'inflate' when permessage-deflate was agreed. */
void ml_ws_parser_init(ml_ws_parser *p, int masked, size_t max_message,
                       ml_ws_inflater *inflate);

/* Frees what the parser holds (not the inflater, its owner's). */
void ml_ws_parser_free(ml_ws_parser *p);

/*
 * Reads frames from data[0..len) until something happens: returns what,
 * and sets *used to the bytes taken (the caller gives the rest again
 * after handling the event).  A message or control payload stays valid
 * until the next call.
 */
ml_ws_result ml_ws_parse(ml_ws_parser *p, const char *data, size_t len,
                         size_t *used);

/* Moves the last message's bytes into 'out' (which the caller then owns
 * and frees); the parser starts its next message with a new buffer. */
void ml_ws_parser_take(ml_ws_parser *p, ml_buf *out);

/* The reason text of the last close frame, and its length. */
const char *ml_ws_close_reason(const ml_ws_parser *p, size_t *len);

/*
 * Checks UTF-8 incrementally: *state is 0 at the start and between
 * characters; a sequence cut between two calls carries over in it.
 * Fails (-1) at the first byte that cannot be valid, whatever follows:
 * overlong forms, surrogates and code points past U+10FFFF included.
 */
int ml_ws_utf8(uint32_t *state, const unsigned char *s, size_t n);

/*
 * XORs n bytes with the masking key, the first byte taking key byte
 * 'off' % 4; a word at a time.
 */
void ml_ws_unmask(unsigned char *data, size_t n, const uint8_t key[4],
                  size_t off);

/*
 * Writes a frame head for 'len' payload bytes into out (ML_WS_MAX_HEAD
 * bytes of room) and returns its size.  rsv1 marks a compressed message;
 * key is the masking key (a client's frames) or NULL.
 */
size_t ml_ws_head(unsigned char *out, int opcode, int fin, int rsv1,
                  uint64_t len, const uint8_t *key);

/*
 * Appends a whole frame (head and payload, masked with key unless NULL).
 * 0, or -1 when out of memory (out is then as it was).
 */
int ml_ws_frame(ml_buf *out, int opcode, int rsv1, const void *data,
                size_t len, const uint8_t *key);

/*
 * A close frame's payload: the code, then the reason cut to fit 125
 * bytes on a character boundary.  Returns its length.
 */
size_t ml_ws_close_payload(unsigned char out[ML_WS_MAX_CONTROL], int code,
                           const char *reason, size_t len);

/* Whether a peer may send this close code (1000-1003, 1007-1014,
 * 3000-4999). */
int ml_ws_close_code_ok(int code);

#endif
