/*
 * ws.c - WebSocket frames (RFC 6455 section 5): the parser that turns a
 * peer's bytes into whole messages, checking each rule as early as the
 * bytes allow, and the encoder for ours.  Compression is ws_deflate.c's;
 * sockets, queues and timers belong to the connection that feeds us.
 */
#include <stdlib.h>
#include <string.h>
#include "net/ws.h"

#define SCRATCH 4096   /* unmasked bytes on their way to the inflater */

/*
** {======================================================
** UTF-8 and masking
** =======================================================
*/

/*
 * The state packs the continuation bytes still due (bits 16 and up) and
 * the range the next one must fall in (lo in bits 8-15, hi in 0-7): the
 * second byte of E0, ED, F0 and F4 sequences has a narrower range, which
 * is how overlong forms, surrogates and code points past U+10FFFF fail
 * at the byte that makes them so.
 */
int ml_ws_utf8(uint32_t *state, const unsigned char *s, size_t n) {
  uint32_t need = *state >> 16, lo = (*state >> 8) & 0xff, hi = *state & 0xff;
  size_t i = 0;
  uint64_t w;
  while (i < n) {
    unsigned c;
    if (need == 0) {
      for (; i + 8 <= n; i += 8) {   /* ASCII, a word at a time */
        memcpy(&w, s + i, 8);
        if (w & 0x8080808080808080ull)
          break;
      }
      if (i == n)
        break;
      if ((c = s[i++]) < 0x80)
        continue;
      if (c < 0xc2 || c > 0xf4)
        return -1;                   /* a continuation, overlong or past
                                        U+10FFFF as a lead byte */
      need = c < 0xe0 ? 1 : c < 0xf0 ? 2 : 3;
      lo = c == 0xe0 ? 0xa0 : c == 0xf0 ? 0x90 : 0x80;
      hi = c == 0xed ? 0x9f : c == 0xf4 ? 0x8f : 0xbf;
      continue;
    }
    c = s[i++];
    if (c < lo || c > hi)
      return -1;
    need--;
    lo = 0x80;
    hi = 0xbf;
  }
  *state = need == 0 ? 0 : need << 16 | lo << 8 | hi;
  return 0;
}

void ml_ws_unmask(unsigned char *data, size_t n, const uint8_t key[4],
                  size_t off) {
  unsigned char k[8];
  uint64_t m, w;
  size_t i;
  for (i = 0; i < 8; i++)
    k[i] = key[(off + i) & 3];
  memcpy(&m, k, 8);
  for (i = 0; i + 8 <= n; i += 8) {  /* memcpy: any alignment, one load */
    memcpy(&w, data + i, 8);
    w ^= m;
    memcpy(data + i, &w, 8);
  }
  for (; i < n; i++)
    data[i] ^= k[i & 7];
}

/* }====================================================== */

/*
** {======================================================
** The parser
** =======================================================
*/

void ml_ws_parser_init(ml_ws_parser *p, int masked, size_t max_message,
                       ml_ws_inflater *inflate) {
  memset(p, 0, sizeof *p);
  p->masked = masked != 0;
  p->max_message = max_message;
  p->inflate = inflate;
  p->close_code = ML_WS_NO_STATUS;
}

void ml_ws_parser_free(ml_ws_parser *p) {
  ml_buf_free(&p->msg);
  free(p->ctl);
  p->ctl = NULL;
}

void ml_ws_parser_take(ml_ws_parser *p, ml_buf *out) {
  *out = p->msg;
  memset(&p->msg, 0, sizeof p->msg);
}

const char *ml_ws_close_reason(const ml_ws_parser *p, size_t *len) {
  *len = p->ctl_len > 2 ? (size_t)p->ctl_len - 2 : 0;
  return *len > 0 ? (const char *)p->ctl + 2 : "";
}

int ml_ws_close_code_ok(int code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
         (code >= 3000 && code <= 4999);
}

static ml_ws_result fail(ml_ws_parser *p, int code, const char *why) {
  p->error_code = (uint16_t)code;
  p->error = why;
  return ML_WS_ERROR;
}

/* How long the head is, from its first two bytes. */
static size_t head_size(const uint8_t *h) {
  size_t n = 2, len7 = h[1] & 0x7f;
  if (len7 == 126)
    n += 2;
  else if (len7 == 127)
    n += 8;
  return n + ((h[1] & 0x80) ? 4 : 0);
}

/* Takes head bytes from [*d, end); 1 once the head is whole. */
static int read_head(ml_ws_parser *p, const unsigned char **d,
                     const unsigned char *end) {
  for (;;) {
    size_t need = p->head_len < 2 ? 2 : head_size(p->head), n;
    if (p->head_len == need)
      return 1;
    if (*d == end)
      return 0;
    n = need - p->head_len;
    if (n > (size_t)(end - *d))
      n = (size_t)(end - *d);
    memcpy(p->head + p->head_len, *d, n);
    p->head_len = (uint8_t)(p->head_len + n);
    *d += n;
  }
}

static uint64_t payload_length(const uint8_t *h) {
  uint64_t len = h[1] & 0x7f;
  int i;
  if (len == 126)
    return (uint64_t)h[2] << 8 | h[3];
  if (len == 127)
    for (len = 0, i = 2; i < 10; i++)
      len = len << 8 | h[i];
  return len;
}

/* A control frame's head: final, short, unextended. */
static ml_ws_result begin_control(ml_ws_parser *p, int op, int rsv1) {
  if (op > ML_WS_PONG)
    return fail(p, ML_WS_PROTOCOL, "unknown opcode");
  if (!p->fin)
    return fail(p, ML_WS_PROTOCOL, "fragmented control frame");
  if (p->left > ML_WS_MAX_CONTROL)
    return fail(p, ML_WS_PROTOCOL, "control frame over 125 bytes");
  if (rsv1)
    return fail(p, ML_WS_PROTOCOL, "RSV1 set on a control frame");
  if (p->ctl == NULL && (p->ctl = malloc(ML_WS_MAX_CONTROL)) == NULL)
    return fail(p, ML_WS_INTERNAL, "out of memory");
  p->ctl_len = 0;
  return ML_WS_MORE;
}

/* A data frame's head: it starts a message or continues the one open. */
static ml_ws_result begin_data(ml_ws_parser *p, int op, int rsv1) {
  if (op > ML_WS_BINARY)
    return fail(p, ML_WS_PROTOCOL, "unknown opcode");
  if (op == ML_WS_CONT) {
    if (p->msg_op == 0)
      return fail(p, ML_WS_PROTOCOL, "continuation frame outside a "
                                     "message");
    if (rsv1)
      return fail(p, ML_WS_PROTOCOL, "RSV1 set on a continuation frame");
  } else {
    if (p->msg_op != 0)
      return fail(p, ML_WS_PROTOCOL, "new message inside a fragmented "
                                     "one");
    if (rsv1 && p->inflate == NULL)
      return fail(p, ML_WS_PROTOCOL, "RSV1 set with no extension "
                                     "agreed");
    p->msg_op = (unsigned)op;
    p->compressed = rsv1 != 0;
    p->utf8 = 0;
    p->msg.len = 0;
  }
  if (p->left >> 63)
    return fail(p, ML_WS_PROTOCOL, "frame length over 2^63");
  if (!p->compressed && p->left > p->max_message - p->msg.len)
    return fail(p, ML_WS_TOO_BIG, "message over max_message");
  return ML_WS_MORE;
}

/* The head is whole: check it before any of the payload is read. */
static ml_ws_result begin_frame(ml_ws_parser *p) {
  uint8_t b0 = p->head[0], b1 = p->head[1];
  int op = b0 & 0x0f, rsv1 = b0 & 0x40;
  p->fin = b0 >> 7;
  p->frame_op = (unsigned)op;
  p->has_mask = b1 >> 7;
  p->left = payload_length(p->head);
  p->mask_off = 0;
  if (b0 & 0x30)
    return fail(p, ML_WS_PROTOCOL, "RSV2 or RSV3 set");
  if (p->has_mask != p->masked)
    return fail(p, ML_WS_PROTOCOL, p->masked ? "unmasked client frame"
                                             : "masked server frame");
  if (p->has_mask)
    memcpy(p->mask, p->head + p->head_len - 4, 4);
  p->in_payload = 1;
  return (op & 8) ? begin_control(p, op, rsv1) : begin_data(p, op, rsv1);
}

/* Checks the text just added to the message (from 'from' on). */
static ml_ws_result check_text(ml_ws_parser *p, size_t from) {
  if (p->msg_op == ML_WS_TEXT &&
      ml_ws_utf8(&p->utf8, (unsigned char *)p->msg.data + from,
                 p->msg.len - from) != 0)
    return fail(p, ML_WS_BAD_DATA, "invalid UTF-8 in a text message");
  return ML_WS_MORE;
}

/* Inflates n bytes (or the tail, when 'last') onto the message and
 * checks the text that came out. */
static ml_ws_result inflate_more(ml_ws_parser *p, const unsigned char *in,
                                size_t n, int last) {
  size_t from = p->msg.len;
  int rc = ml_ws_inflate(p->inflate, in, n, last, &p->msg, p->max_message);
  if (rc != 0)
    return fail(p, rc, rc == ML_WS_TOO_BIG ? "message over max_message"
                : rc == ML_WS_PROTOCOL ? "compressed data does not inflate"
                : "out of memory");
  return check_text(p, from);
}

/* Compressed payload: unmasked into a scratch buffer, then inflated. */
static ml_ws_result inflate_payload(ml_ws_parser *p, const unsigned char *d,
                                    size_t n) {
  unsigned char tmp[SCRATCH];
  const unsigned char *in = d;
  size_t k;
  while (n > 0) {
    k = n < SCRATCH ? n : SCRATCH;
    if (p->has_mask) {
      memcpy(tmp, d, k);
      ml_ws_unmask(tmp, k, p->mask, p->mask_off);
      p->mask_off = (p->mask_off + k) & 3;
      in = tmp;
    }
    if (inflate_more(p, in, k, 0) != ML_WS_MORE)
      return ML_WS_ERROR;
    d += k;
    in = d;
    n -= k;
  }
  return ML_WS_MORE;
}

/* n payload bytes of the current frame. */
static ml_ws_result payload(ml_ws_parser *p, const unsigned char *d,
                            size_t n) {
  unsigned char *to;
  size_t from = p->msg.len;
  if (p->frame_op & 8) {
    to = p->ctl + p->ctl_len;
    p->ctl_len = (uint8_t)(p->ctl_len + n);
  } else if (p->compressed) {
    return inflate_payload(p, d, n);
  } else {
    if (ml_buf_reserve(&p->msg, n) != 0)
      return fail(p, ML_WS_INTERNAL, "out of memory");
    to = (unsigned char *)p->msg.data + p->msg.len;
    p->msg.len += n;
  }
  memcpy(to, d, n);
  if (p->has_mask) {
    ml_ws_unmask(to, n, p->mask, p->mask_off);
    p->mask_off = (p->mask_off + n) & 3;
  }
  return (p->frame_op & 8) ? ML_WS_MORE : check_text(p, from);
}

/* A close frame's payload: none, or a valid code and a UTF-8 reason. */
static ml_ws_result end_close(ml_ws_parser *p) {
  uint32_t st = 0;
  p->close_code = ML_WS_NO_STATUS;
  if (p->ctl_len == 0)
    return ML_WS_CONTROL;
  if (p->ctl_len == 1)
    return fail(p, ML_WS_PROTOCOL, "close frame of 1 byte");
  p->close_code = (uint16_t)(p->ctl[0] << 8 | p->ctl[1]);
  if (!ml_ws_close_code_ok(p->close_code))
    return fail(p, ML_WS_PROTOCOL, "invalid close code");
  if (ml_ws_utf8(&st, p->ctl + 2, p->ctl_len - 2u) != 0 || st != 0)
    return fail(p, ML_WS_BAD_DATA, "close reason is not UTF-8");
  return ML_WS_CONTROL;
}

/* The frame's payload is all here. */
static ml_ws_result end_frame(ml_ws_parser *p) {
  p->in_payload = 0;
  p->head_len = 0;
  if (p->frame_op & 8) {
    p->opcode = p->frame_op;
    return p->frame_op == ML_WS_CLOSE ? end_close(p) : ML_WS_CONTROL;
  }
  if (!p->fin)
    return ML_WS_MORE;
  if (p->compressed && inflate_more(p, NULL, 0, 1) != ML_WS_MORE)
    return ML_WS_ERROR;
  if (p->msg_op == ML_WS_TEXT && p->utf8 != 0)
    return fail(p, ML_WS_BAD_DATA, "text message ends inside a character");
  p->opcode = p->msg_op;
  p->msg_op = 0;
  return ML_WS_MESSAGE;
}

ml_ws_result ml_ws_parse(ml_ws_parser *p, const char *data, size_t len,
                         size_t *used) {
  const unsigned char *d = (const unsigned char *)data, *end = d + len;
  ml_ws_result r = ML_WS_MORE;
  size_t n;
  if (p->error_code != 0) {
    *used = 0;
    return ML_WS_ERROR;
  }
  if (p->ctl != NULL && !(p->in_payload && (p->frame_op & 8))) {
    free(p->ctl);                /* the last control frame was taken */
    p->ctl = NULL;
    p->ctl_len = 0;
  }
  for (;;) {
    if (!p->in_payload) {
      if (!read_head(p, &d, end))
        break;
      if ((r = begin_frame(p)) != ML_WS_MORE)
        break;
    }
    n = p->left < (uint64_t)(end - d) ? (size_t)p->left : (size_t)(end - d);
    if (n > 0 && (r = payload(p, d, n)) != ML_WS_MORE)
      break;
    d += n;
    p->left -= n;
    if (p->left > 0)
      break;                     /* the rest of it comes later */
    if ((r = end_frame(p)) != ML_WS_MORE)
      break;
  }
  *used = (size_t)(d - (const unsigned char *)data);
  return r;
}

/* }====================================================== */

/*
** {======================================================
** The encoder
** =======================================================
*/

size_t ml_ws_head(unsigned char *out, int opcode, int fin, int rsv1,
                  uint64_t len, const uint8_t *key) {
  size_t n = 2;
  int i;
  out[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode);
  if (len < 126) {
    out[1] = (unsigned char)len;
  } else if (len <= 0xffff) {
    out[1] = 126;
    out[2] = (unsigned char)(len >> 8);
    out[3] = (unsigned char)len;
    n = 4;
  } else {
    out[1] = 127;
    for (i = 0; i < 8; i++)
      out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    n = 10;
  }
  if (key != NULL) {
    out[1] |= 0x80;
    memcpy(out + n, key, 4);
    n += 4;
  }
  return n;
}

int ml_ws_frame(ml_buf *out, int opcode, int rsv1, const void *data,
                size_t len, const uint8_t *key) {
  unsigned char h[ML_WS_MAX_HEAD];
  size_t hn = ml_ws_head(h, opcode, 1, rsv1, len, key);
  unsigned char *to;
  if (ml_buf_reserve(out, hn + len) != 0)
    return -1;
  to = (unsigned char *)out->data + out->len;
  memcpy(to, h, hn);
  if (len > 0)
    memcpy(to + hn, data, len);
  if (key != NULL)
    ml_ws_unmask(to + hn, len, key, 0);
  out->len += hn + len;
  return 0;
}

size_t ml_ws_close_payload(unsigned char out[ML_WS_MAX_CONTROL], int code,
                           const char *reason, size_t len) {
  out[0] = (unsigned char)(code >> 8);
  out[1] = (unsigned char)code;
  if (len > ML_WS_MAX_CONTROL - 2) {
    len = ML_WS_MAX_CONTROL - 2;  /* back to the start of the character */
    while (len > 0 && ((unsigned char)reason[len] & 0xc0) == 0x80)
      len--;
  }
  if (len > 0)
    memcpy(out + 2, reason, len);
  return 2 + len;
}

/* }====================================================== */
