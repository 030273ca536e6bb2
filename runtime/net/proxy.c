/*
 * proxy.c - HAProxy's PROXY protocol, versions 1 (a text line) and 2
 * (binary, with TLVs), read off the start of a connection.  Every length
 * is checked against the bytes at hand before it is used: the input is
 * whatever a peer sent.  Which peers may send one is conn.c's question.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include "net/proxy.h"

#define V1_MAX 107              /* "PROXY TCP6 " + two addresses ... CRLF */
#define V2_HEAD 16
#define PP2_TYPE_SSL 0x20
#define PP2_CLIENT_SSL 0x01

static const char v2_sig[12] = "\r\n\r\n\0\r\nQUIT\n";

struct ml_proxy {
  ml_proxy_header h;
  int done;
  size_t len;                   /* bytes kept in buf */
  char *buf;                    /* a header that came in pieces */
};

/*
** {======================================================
** Version 1: "PROXY TCP4 SRC DST SPORT DPORT\r\n"
** =======================================================
*/

/* A port: decimal, 0 to 65535, no sign and no leading zero. */
static int parse_port(const char *s) {
  long v = 0;
  const char *q;
  if (*s == '\0' || (s[0] == '0' && s[1] != '\0'))
    return -1;
  for (q = s; *q != '\0'; q++) {
    if (*q < '0' || *q > '9' || q - s >= 5)
      return -1;
    v = v * 10 + (*q - '0');
  }
  return v <= 65535 ? (int)v : -1;
}

/* Splits 'line' at single spaces into at most 'max' words; the count. */
static int split_words(char *line, char **w, int max) {
  int n = 0;
  char *s = line;
  for (;;) {
    if (n == max)
      return max + 1;
    w[n++] = s;
    if ((s = strchr(s, ' ')) == NULL)
      return n;
    *s++ = '\0';
  }
}

/* The source address of a TCP4/TCP6 line: words are proto, src, dst,
 * sport, dport. */
static int v1_source(char **w, ml_proxy_header *out) {
  int af = strcmp(w[0], "TCP4") == 0 ? AF_INET
         : strcmp(w[0], "TCP6") == 0 ? AF_INET6 : 0;
  unsigned char dst[16];
  int sport;
  if (af == 0 || inet_pton(af, w[2], dst) != 1 ||
      (sport = parse_port(w[3])) < 0 || parse_port(w[4]) < 0)
    return -1;
  memset(&out->src, 0, sizeof out->src);
  if (af == AF_INET) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->src;
    sin->sin_family = AF_INET;
    sin->sin_port = htons((unsigned short)sport);
    return inet_pton(AF_INET, w[1], &sin->sin_addr) == 1 ? 0 : -1;
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->src;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons((unsigned short)sport);
    return inet_pton(AF_INET6, w[1], &sin6->sin6_addr) == 1 ? 0 : -1;
  }
}

static int parse_v1(const char *p, size_t n, ml_proxy_header *out) {
  const char *nl = memchr(p, '\n', n < V1_MAX ? n : V1_MAX);
  char line[V1_MAX + 1], *w[6];
  size_t len;
  int nw;
  if (nl == NULL)
    return n >= V1_MAX ? -1 : 0;
  len = (size_t)(nl - p);
  if (len < 7 || p[len - 1] != '\r')
    return -1;
  memcpy(line, p + 6, len - 7);            /* after "PROXY ", before CR */
  line[len - 7] = '\0';
  if (memchr(line, '\0', len - 7) != NULL)
    return -1;
  nw = split_words(line, w, 5);
  memset(out, 0, sizeof *out);
  if (strcmp(w[0], "UNKNOWN") == 0)
    out->local = 1;                         /* the rest is ignored */
  else if (nw != 5 || v1_source(w, out) != 0)
    return -1;
  return (int)(len + 1);
}

/* }====================================================== */

/*
** {======================================================
** Version 2: a signature, then binary fields and TLVs
** =======================================================
*/

static size_t get16(const unsigned char *p) {
  return (size_t)p[0] << 8 | p[1];
}

/* The TLVs after the addresses: each must fit; only SSL is read. */
static int v2_tlvs(const unsigned char *p, size_t n, ml_proxy_header *out) {
  while (n > 0) {
    size_t len;
    if (n < 3 || (len = get16(p + 1)) > n - 3)
      return -1;
    if (p[0] == PP2_TYPE_SSL && len >= 1 && (p[3] & PP2_CLIENT_SSL))
      out->ssl = 1;
    p += 3 + len;
    n -= 3 + len;
  }
  return 0;
}

/* The source address of a PROXY command over TCP. */
static void v2_source(const unsigned char *a, int family,
                      ml_proxy_header *out) {
  if (family == 1) {
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->src;
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, a, 4);
    memcpy(&sin->sin_port, a + 8, 2);       /* network order both */
  } else {
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->src;
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, a, 16);
    memcpy(&sin6->sin6_port, a + 32, 2);
  }
}

static int parse_v2(const unsigned char *p, size_t n,
                    ml_proxy_header *out) {
  static const size_t addr_len[4] = { 0, 12, 36, 216 };
  size_t len = get16(p + 14);
  int cmd = p[12] & 0x0f, family = p[13] >> 4, proto = p[13] & 0x0f;
  if ((p[12] >> 4) != 2 || cmd > 1 || family > 3 || proto > 2 ||
      len > ML_PROXY_MAX - V2_HEAD)
    return -1;
  if (n < V2_HEAD + len)
    return 0;
  if (len < addr_len[family])
    return -1;
  memset(out, 0, sizeof *out);
  if (cmd == 0 || family == 0 || family == 3)
    out->local = 1;              /* LOCAL (health checks), or no IP */
  else if (proto != 1)
    return -1;                   /* datagrams on a TCP connection */
  else
    v2_source(p + V2_HEAD, family, out);
  if (v2_tlvs(p + V2_HEAD + addr_len[family], len - addr_len[family],
              out) != 0)
    return -1;
  return (int)(V2_HEAD + len);
}

/* }====================================================== */

int ml_proxy_parse(const char *p, size_t n, ml_proxy_header *out) {
  size_t k;
  if (n == 0)
    return 0;
  if (p[0] == '\r') {
    k = n < sizeof v2_sig ? n : sizeof v2_sig;
    if (memcmp(p, v2_sig, k) != 0)
      return -1;
    return n < V2_HEAD ? 0 : parse_v2((const unsigned char *)p, n, out);
  }
  k = n < 6 ? n : 6;
  if (memcmp(p, "PROXY ", k) != 0)
    return -1;
  return n < 6 ? 0 : parse_v1(p, n, out);
}

/*
** {======================================================
** A connection's header as it arrives
** =======================================================
*/

ml_proxy *ml_proxy_new(void) {
  return calloc(1, sizeof(ml_proxy));
}

void ml_proxy_free(ml_proxy *px) {
  if (px != NULL)
    free(px->buf);
  free(px);
}

const ml_proxy_header *ml_proxy_result(const ml_proxy *px) {
  return px->done ? &px->h : NULL;
}

/* The bytes of a header that came in pieces, kept until it is whole. */
static ssize_t feed_more(ml_proxy *px, const char *p, size_t n) {
  size_t take = n < ML_PROXY_MAX - px->len ? n : ML_PROXY_MAX - px->len;
  int rc;
  memcpy(px->buf + px->len, p, take);
  rc = ml_proxy_parse(px->buf, px->len + take, &px->h);
  if (rc < 0 || (rc == 0 && px->len + take == ML_PROXY_MAX))
    return -1;
  if (rc == 0) {
    px->len += take;
    return (ssize_t)take;
  }
  take = (size_t)rc - px->len;            /* of p, what was the header's */
  px->done = 1;
  free(px->buf);
  px->buf = NULL;
  return (ssize_t)take;
}

ssize_t ml_proxy_feed(ml_proxy *px, const char *p, size_t n) {
  int rc;
  if (px->done)
    return 0;
  if (px->buf != NULL)
    return feed_more(px, p, n);
  rc = ml_proxy_parse(p, n, &px->h);     /* most come whole, in one read */
  if (rc != 0) {
    px->done = rc > 0;
    return rc > 0 ? rc : -1;
  }
  if ((px->buf = malloc(ML_PROXY_MAX)) == NULL)
    return -1;
  memcpy(px->buf, p, n);                   /* n < ML_PROXY_MAX: parse said */
  px->len = n;
  return (ssize_t)n;
}

/* }====================================================== */
