/*
 * ws_deflate.c - permessage-deflate (RFC 7692): reading offers and
 * answers in Sec-WebSocket-Extensions, inflating a peer's messages as
 * their frames arrive, and compressing ours whole with zlib.  Frames are
 * ws.c's; the handshake around the header is its caller's.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "net/ws_deflate.h"

#define INFLATE_STEP 16384   /* output room asked for at a time */
#define MEM_LEVEL 8          /* zlib's default: 128 KiB of hash */

static const unsigned char tail[4] = { 0x00, 0x00, 0xff, 0xff };

/*
** {======================================================
** Reading Sec-WebSocket-Extensions (RFC 6455 9.1)
** =======================================================
*/

typedef struct {
  const char *p, *end;
} scan;

/* One offer's (or answer's) parameters; -1: absent. */
typedef struct {
  int server_nt, client_nt;   /* 1 when present */
  int server_bits;            /* 8-15 */
  int client_bits;            /* 8-15, or 0: present without a value */
  int bad;                    /* unknown, repeated or out of range */
} params;

static int is_tchar(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
         (c >= '0' && c <= '9') || (c != 0 && strchr("!#$%&'*+-.^_`|~", c));
}

static void ows(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t'))
    s->p++;
}

static size_t token(scan *s, const char **t) {
  *t = s->p;
  while (s->p < s->end && is_tchar((unsigned char)*s->p))
    s->p++;
  return (size_t)(s->p - *t);
}

/* A parameter's value, a token or a quoted string, unquoted into v;
 * its length, or -1 when it does not parse or does not fit. */
static int value(scan *s, char *v, size_t size) {
  const char *t;
  size_t n = 0;
  if (s->p < s->end && *s->p == '"') {
    for (s->p++; s->p < s->end && *s->p != '"'; s->p++) {
      if (*s->p == '\\' && ++s->p == s->end)
        return -1;
      if (n + 1 >= size)
        return -1;
      v[n++] = *s->p;
    }
    if (s->p == s->end)
      return -1;
    s->p++;
    v[n] = '\0';
    return (int)n;
  }
  if ((n = token(s, &t)) == 0 || n >= size)
    return -1;
  memcpy(v, t, n);
  v[n] = '\0';
  return (int)n;
}

/* A window size: "8" to "15"; else -1. */
static int window_bits(const char *v, int n) {
  if (n == 1 && v[0] == '8')
    return 8;
  if (n == 1 && v[0] == '9')
    return 9;
  if (n == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
    return 10 + (v[1] - '0');
  return -1;
}

/* Records one parameter of a permessage-deflate element; 'answer' when
 * it is the server's reply, where client_max_window_bits needs a value. */
static void apply(params *o, const char *name, size_t nlen, const char *v,
                  int vlen, int answer) {
  int *flag = NULL;
  if (ml_strieq(name, nlen, "server_no_context_takeover"))
    flag = &o->server_nt;
  else if (ml_strieq(name, nlen, "client_no_context_takeover"))
    flag = &o->client_nt;
  if (flag != NULL) {
    o->bad |= *flag != -1 || vlen >= 0;
    *flag = 1;
  } else if (ml_strieq(name, nlen, "server_max_window_bits")) {
    o->bad |= o->server_bits != -1 || vlen < 0;
    o->server_bits = vlen < 0 ? -1 : window_bits(v, vlen);
    o->bad |= o->server_bits < 0;
  } else if (ml_strieq(name, nlen, "client_max_window_bits")) {
    o->bad |= o->client_bits != -1 || (answer && vlen < 0);
    o->client_bits = vlen < 0 ? 0 : window_bits(v, vlen);
    o->bad |= o->client_bits < 0;
  } else {
    o->bad = 1;
  }
}

/*
 * Reads an element's parameters, up to the ',' that ends it or the end:
 * 0, or -1 when the header does not parse.  Only a permessage-deflate
 * element's ('o' not NULL) are recorded.
 */
static int read_params(scan *s, params *o, int answer) {
  const char *name;
  char v[16];
  size_t nlen;
  int vlen;
  for (;;) {
    ows(s);
    if (s->p == s->end || *s->p == ',')
      return 0;
    if (*s->p++ != ';')
      return -1;
    ows(s);
    if ((nlen = token(s, &name)) == 0)
      return -1;
    ows(s);
    vlen = -1;
    if (s->p < s->end && *s->p == '=') {
      s->p++;
      ows(s);
      if ((vlen = value(s, v, sizeof v)) < 0)
        return -1;
    }
    if (o != NULL)
      apply(o, name, nlen, v, vlen, answer);
  }
}

/* The next element's name (length 0 at the end); -1 when malformed. */
static int next_element(scan *s, const char **name, size_t *nlen) {
  for (;;) {
    ows(s);
    if (s->p == s->end) {
      *nlen = 0;
      return 0;
    }
    if (*s->p != ',')
      break;
    s->p++;                      /* empty elements are allowed */
  }
  *nlen = token(s, name);
  return *nlen == 0 ? -1 : 0;
}

static void params_init(params *o) {
  o->server_nt = o->client_nt = -1;
  o->server_bits = o->client_bits = -1;
  o->bad = 0;
}

/* The response to an offer we take, and what it agrees to. */
static void answer_offer(const params *o, int max_client_bits,
                         ml_ws_pmd *agreed, char *resp) {
  int n;
  agreed->on = 1;
  agreed->server_no_takeover = 1;
  agreed->client_no_takeover = o->client_nt == 1;
  agreed->server_bits = (uint8_t)(o->server_bits > 0 ? o->server_bits : 15);
  agreed->client_bits = 15;
  n = snprintf(resp, ML_WS_PMD_RESPONSE,
               "permessage-deflate; server_no_context_takeover%s",
               agreed->client_no_takeover ? "; client_no_context_takeover"
                                          : "");
  if (o->server_bits > 0)
    n += snprintf(resp + n, ML_WS_PMD_RESPONSE - (size_t)n,
                  "; server_max_window_bits=%d", o->server_bits);
  if (o->client_bits >= 0) {     /* offered: we may set it */
    int bits = o->client_bits > 0 ? o->client_bits : 15;
    if (bits > max_client_bits)
      bits = max_client_bits;
    agreed->client_bits = (uint8_t)bits;
    snprintf(resp + n, ML_WS_PMD_RESPONSE - (size_t)n,
             "; client_max_window_bits=%d", bits);
  }
}

int ml_ws_pmd_accept(const char *offers, size_t len, int max_client_bits,
                     ml_ws_pmd *agreed, char resp[ML_WS_PMD_RESPONSE]) {
  scan s;
  const char *name;
  size_t nlen;
  params o;
  int is_pmd;
  s.p = offers;
  s.end = offers + len;
  memset(agreed, 0, sizeof *agreed);
  resp[0] = '\0';
  if (max_client_bits < 8 || max_client_bits > 15)
    max_client_bits = 15;
  for (;;) {
    if (next_element(&s, &name, &nlen) != 0)
      return 0;
    if (nlen == 0)
      return 0;
    is_pmd = ml_strieq(name, nlen, "permessage-deflate");
    params_init(&o);
    if (read_params(&s, is_pmd ? &o : NULL, 0) != 0)
      return 0;
    if (is_pmd && !o.bad) {
      answer_offer(&o, max_client_bits, agreed, resp);
      return 1;
    }
  }
}

const char ml_ws_pmd_offer[] =
  "permessage-deflate; client_no_context_takeover; client_max_window_bits";

int ml_ws_pmd_answer(const char *value, size_t len, ml_ws_pmd *agreed) {
  scan s;
  const char *name;
  size_t nlen;
  params o;
  s.p = value;
  s.end = value + len;
  memset(agreed, 0, sizeof *agreed);
  params_init(&o);
  if (next_element(&s, &name, &nlen) != 0 || nlen == 0 ||
      !ml_strieq(name, nlen, "permessage-deflate") ||
      read_params(&s, &o, 1) != 0 || o.bad)
    return -1;
  if (next_element(&s, &name, &nlen) != 0 || nlen != 0)
    return -1;                   /* one extension only: the one offered */
  agreed->on = 1;
  agreed->server_no_takeover = o.server_nt == 1;
  agreed->client_no_takeover = 1;  /* offered, so always ours */
  agreed->server_bits = (uint8_t)(o.server_bits > 0 ? o.server_bits : 15);
  agreed->client_bits = (uint8_t)(o.client_bits > 0 ? o.client_bits : 15);
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** Inflating a peer's messages
** =======================================================
*/

void ml_ws_inflater_init(ml_ws_inflater *f, const ml_ws_pmd *agreed,
                         int server) {
  f->z = NULL;
  f->bits = server ? agreed->client_bits : agreed->server_bits;
  if (f->bits < 9)       /* zlib makes no 8-bit window; a wider one */
    f->bits = 9;         /* reads any narrower stream */
  f->no_takeover = server ? agreed->client_no_takeover
                          : agreed->server_no_takeover;
}

void ml_ws_inflater_free(ml_ws_inflater *f) {
  if (f->z != NULL) {
    inflateEnd(f->z);
    free(f->z);
    f->z = NULL;
  }
}

/* Runs inflate over n bytes; see ml_ws_inflate for the results. */
static int feed(z_stream *z, const unsigned char *in, size_t n, ml_buf *out,
                size_t max) {
  int rc;
  size_t want;
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  do {
    want = max + 1 - out->len;   /* one more: enough to see "too big" */
    if (want > INFLATE_STEP)
      want = INFLATE_STEP;
    if (ml_buf_reserve(out, want) != 0)
      return 1011;
    z->next_out = (Bytef *)out->data + out->len;
    z->avail_out = (uInt)want;
    rc = inflate(z, Z_SYNC_FLUSH);
    out->len += want - z->avail_out;
    if (out->len > max)
      return 1009;
    if (rc == Z_STREAM_END && inflateReset(z) != Z_OK)
      return 1011;
    else if (rc == Z_MEM_ERROR)
      return 1011;
    else if (rc == Z_BUF_ERROR && z->avail_out > 0)
      break;                     /* nothing more to do with this input */
    else if (rc != Z_OK && rc != Z_BUF_ERROR && rc != Z_STREAM_END)
      return 1002;
  } while (z->avail_in > 0 || z->avail_out == 0);
  return 0;
}

int ml_ws_inflate(ml_ws_inflater *f, const unsigned char *in, size_t n,
                  int last, ml_buf *out, size_t max) {
  z_stream *z = f->z;
  int rc = 0;
  if (z == NULL) {
    if ((z = calloc(1, sizeof *z)) == NULL)
      return 1011;
    if (inflateInit2(z, -(int)f->bits) != Z_OK) {
      free(z);
      return 1011;
    }
    f->z = z;
  }
  while (rc == 0 && n > 0) {     /* avail_in is an unsigned int */
    size_t step = n > UINT_MAX / 2 ? UINT_MAX / 2 : n;
    rc = feed(z, in, step, out, max);
    in += step;
    n -= step;
  }
  if (rc == 0 && last)
    rc = feed(z, tail, sizeof tail, out, max);
  if (rc != 0 || (last && f->no_takeover))
    ml_ws_inflater_free(f);      /* nothing to keep for the next one */
  return rc;
}

/* }====================================================== */

/*
** {======================================================
** Compressing whole messages
** =======================================================
*/

struct ml_ws_deflater {
  z_stream *z[7];                /* windows of 9 to 15 bits */
};

ml_ws_deflater *ml_ws_deflater_new(void) {
  return calloc(1, sizeof(ml_ws_deflater));
}

void ml_ws_deflater_free(ml_ws_deflater *d) {
  int i;
  if (d == NULL)
    return;
  for (i = 0; i < 7; i++) {
    if (d->z[i] != NULL) {
      deflateEnd(d->z[i]);
      free(d->z[i]);
    }
  }
  free(d);
}

/* The stream for a window of 'bits', reset; NULL when out of memory. */
static z_stream *stream_for(ml_ws_deflater *d, int bits) {
  z_stream *z = d->z[bits - 9];
  if (z != NULL)
    return deflateReset(z) == Z_OK ? z : NULL;
  if ((z = calloc(1, sizeof *z)) == NULL)
    return NULL;
  if (deflateInit2(z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -bits, MEM_LEVEL,
                   Z_DEFAULT_STRATEGY) != Z_OK) {
    free(z);
    return NULL;
  }
  d->z[bits - 9] = z;
  return z;
}

/*
 * The output may take as many bytes as the message plus the tail: a
 * result that does not fit, or is no shorter, is not worth sending.
 */
int ml_ws_deflate(ml_ws_deflater *d, int bits, const void *in, size_t n,
                  ml_buf *out) {
  z_stream *z;
  size_t room = n + sizeof tail, made;
  int rc;
  if (n < ML_WS_DEFLATE_MIN || bits < 9 || bits > 15 || n > UINT_MAX / 2)
    return 0;
  if ((z = stream_for(d, bits)) == NULL || ml_buf_reserve(out, room) != 0)
    return -1;
  z->next_in = (Bytef *)in;
  z->avail_in = (uInt)n;
  z->next_out = (Bytef *)out->data + out->len;
  z->avail_out = (uInt)room;
  rc = deflate(z, Z_SYNC_FLUSH);
  if (rc == Z_MEM_ERROR)
    return -1;
  if (rc != Z_OK || z->avail_in != 0 || z->avail_out == 0)
    return 0;
  made = room - z->avail_out;
  if (made < sizeof tail + 1 ||
      memcmp(out->data + out->len + made - sizeof tail, tail,
             sizeof tail) != 0 ||
      made - sizeof tail >= n)
    return 0;
  out->len += made - sizeof tail;
  return 1;
}

/* }====================================================== */
