/*
 * forwarded.c - trusted proxies and the headers they add.  The header
 * values come from the network: every part is bounded and checked, and a
 * part that is not what it should be stops the walk (the address found so
 * far stands) rather than guess.  Which peer asked is the caller's.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "net/forwarded.h"

#define MAX_HOPS 64              /* entries of a header walked, at most */
#define MAX_NODE 64              /* an address as text, with its port */

typedef struct {
  int family;                    /* AF_INET or AF_INET6 */
  unsigned char bytes[16];
  int prefix;                    /* leading bits that must match */
} range;

struct ml_trust {
  int all;                       /* "*" */
  int n;
  range r[1];
};

/*
** {======================================================
** The trusted addresses
** =======================================================
*/

/* "10.0.0.0/8", "::1": one range; 0, or -1 when it is neither. */
static int parse_range(const char *s, size_t len, range *out) {
  char text[MAX_NODE];
  char *slash, *end;
  long bits;
  if (len == 0 || len >= sizeof text)
    return -1;
  memcpy(text, s, len);
  text[len] = '\0';
  if ((slash = strchr(text, '/')) != NULL)
    *slash = '\0';
  out->family = strchr(text, ':') != NULL ? AF_INET6 : AF_INET;
  if (inet_pton(out->family, text, out->bytes) != 1)
    return -1;
  out->prefix = out->family == AF_INET ? 32 : 128;
  if (slash == NULL)
    return 0;
  bits = strtol(slash + 1, &end, 10);
  if (end == slash + 1 || *end != '\0' || bits < 0 || bits > out->prefix)
    return -1;
  out->prefix = (int)bits;
  return 0;
}

static const char *trim(const char *s, const char *end, size_t *len) {
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  while (end > s && (end[-1] == ' ' || end[-1] == '\t'))
    end--;
  *len = (size_t)(end - s);
  return s;
}

ml_trust *ml_trust_parse(const char *spec, char *why, size_t n) {
  size_t parts = 1, len;
  const char *p, *comma, *s;
  ml_trust *t;
  for (p = spec; *p != '\0'; p++)
    parts += *p == ',';
  if ((t = calloc(1, sizeof *t + parts * sizeof(range))) == NULL) {
    snprintf(why, n, "out of memory");
    return NULL;
  }
  for (p = spec;; p = comma + 1) {
    comma = strchr(p, ',');
    s = trim(p, comma != NULL ? comma : p + strlen(p), &len);
    if (len == 1 && *s == '*')
      t->all = 1;
    else if (parse_range(s, len, &t->r[t->n++]) != 0) {
      snprintf(why, n, "%.*s", (int)(len < 64 ? len : 64), s);
      free(t);
      return NULL;
    }
    if (comma == NULL)
      return t;
  }
}

void ml_trust_free(ml_trust *t) {
  free(t);
}

static int in_range(const range *r, int family, const unsigned char *b) {
  int full = r->prefix / 8, rest = r->prefix % 8;
  if (r->family != family || memcmp(r->bytes, b, (size_t)full) != 0)
    return 0;
  return rest == 0 ||
         ((r->bytes[full] ^ b[full]) & (0xff << (8 - rest)) & 0xff) == 0;
}

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is its IPv4 one. */
static int trusted(const ml_trust *t, int family, const unsigned char *b) {
  static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                            0xff, 0xff };
  int i;
  if (t->all)
    return 1;
  if (family == AF_INET6 && memcmp(b, mapped, 12) == 0) {
    family = AF_INET;
    b += 12;
  }
  for (i = 0; i < t->n; i++)
    if (in_range(&t->r[i], family, b))
      return 1;
  return 0;
}

int ml_trust_addr(const ml_trust *t, const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return trusted(t, AF_INET, (const unsigned char *)
                   &((const struct sockaddr_in *)sa)->sin_addr);
  if (sa->sa_family == AF_INET6)
    return trusted(t, AF_INET6, (const unsigned char *)
                   &((const struct sockaddr_in6 *)sa)->sin6_addr);
  return 0;
}

int ml_trust_text(const ml_trust *t, const char *ip, size_t len) {
  range r;
  return memchr(ip, '/', len) == NULL && parse_range(ip, len, &r) == 0 &&
         trusted(t, r.family, r.bytes);
}

/* }====================================================== */

/*
** {======================================================
** The headers
** =======================================================
*/

/* One hop as a header names it. */
typedef struct {
  const char *node;             /* for=, or an X-Forwarded-For item */
  size_t node_len;
  const char *proto;            /* proto=, or NULL */
  size_t proto_len;
} hop;

/*
 * A node as the headers write it ("192.0.2.1", "192.0.2.1:4711",
 * "[2001:db8::1]:4711", "2001:db8::1") into its address's bytes;
 * "unknown", "_hidden" and anything else: -1.
 */
static int parse_node(const char *s, size_t len, int *family,
                      unsigned char *b) {
  char text[MAX_NODE];
  const char *colon;
  if (s == NULL || len == 0)
    return -1;                  /* a hop with no for= */
  if (s[0] == '[') {
    const char *close = memchr(s, ']', len);
    if (close == NULL)
      return -1;
    len = (size_t)(close - s - 1);
    s++;
    *family = AF_INET6;
  } else {
    colon = memchr(s, ':', len);
    *family = colon != NULL && memchr(colon + 1, ':', len - (size_t)(colon -
              s) - 1) != NULL ? AF_INET6 : AF_INET;
    if (*family == AF_INET && colon != NULL)
      len = (size_t)(colon - s);             /* drop ":port" */
  }
  if (len == 0 || len >= sizeof text)
    return -1;
  memcpy(text, s, len);
  text[len] = '\0';
  return inet_pton(*family, text, b) == 1 ? 0 : -1;
}

/* "https" or "http", any case: 1 or 0; -1 for anything else. */
static int parse_proto(const char *s, size_t len) {
  if (len == 5 && strncasecmp(s, "https", 5) == 0)
    return 1;
  if (len == 4 && strncasecmp(s, "http", 4) == 0)
    return 0;
  return -1;
}

static const char *skip_space(const char *s, const char *end) {
  while (s < end && (*s == ' ' || *s == '\t'))
    s++;
  return s;
}

/* A value, quoted or not, from s: where it ends (at ';', ',', or after
 * the closing quote). */
static const char *value_end(const char *s, const char *end) {
  if (s < end && *s == '"') {
    for (s++; s < end && *s != '"'; s++)
      if (*s == '\\' && s + 1 < end)
        s++;
    return s < end ? s + 1 : end;
  }
  while (s < end && *s != ';' && *s != ',')
    s++;
  return s;
}

/* name=value in p[0..end): sets the hop's node or proto. */
static void forwarded_pair(const char *p, const char *end, hop *h) {
  const char *eq = memchr(p, '=', (size_t)(end - p)), *name, *v;
  size_t nlen, vlen;
  if (eq == NULL)
    return;
  name = trim(p, eq, &nlen);
  v = trim(eq + 1, end, &vlen);
  if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
    v++;                                 /* no escapes in an address */
    vlen -= 2;
  }
  if (nlen == 3 && strncasecmp(name, "for", 3) == 0) {
    h->node = v;
    h->node_len = vlen;
  } else if (nlen == 5 && strncasecmp(name, "proto", 5) == 0) {
    h->proto = v;
    h->proto_len = vlen;
  }
}

/* Forwarded: "for=a;proto=https, for=b": its hops, at most MAX_HOPS of
 * the last ones.  A pair ends at ';' (the same hop goes on) or ',' (the
 * next hop begins). */
static int forwarded_hops(const char *p, size_t len, hop *hops) {
  const char *end = p + len, *eq, *q;
  int n = 0;
  memset(&hops[0], 0, sizeof hops[0]);
  while (p < end) {
    eq = memchr(p, '=', (size_t)(end - p));
    q = eq == NULL ? end
        : skip_space(value_end(skip_space(eq + 1, end), end), end);
    forwarded_pair(p, q, &hops[n]);
    if (q < end && *q == ',') {
      if (++n == MAX_HOPS) {             /* keep the nearest ones */
        memmove(hops, hops + 1, (MAX_HOPS - 1) * sizeof *hops);
        n--;
      }
      memset(&hops[n], 0, sizeof hops[n]);
    }
    p = q < end ? q + 1 : end;
  }
  return n + 1;
}

/* X-Forwarded-For: "client, proxy1, proxy2". */
static int xff_hops(const char *p, size_t len, hop *hops) {
  const char *end = p + len, *comma;
  int n = 0;
  while (p <= end) {
    comma = memchr(p, ',', (size_t)(end - p));
    if (comma == NULL)
      comma = end;
    if (n == MAX_HOPS) {
      memmove(hops, hops + 1, (MAX_HOPS - 1) * sizeof *hops);
      n--;
    }
    memset(&hops[n], 0, sizeof hops[n]);
    hops[n].node = trim(p, comma, &hops[n].node_len);
    n++;
    p = comma + 1;
  }
  return n;
}

/* The last value of X-Forwarded-Proto, set by the nearest proxy. */
static int xfp_last(const char *p, size_t len) {
  const char *end = p + len, *s = end;
  size_t vlen;
  while (s > p && s[-1] != ',')
    s--;
  s = trim(s, end, &vlen);
  return parse_proto(s, vlen);
}

int ml_forwarded_client(const ml_trust *t, const ml_forwarded_in *in,
                        char *addr, size_t n, int *https) {
  hop hops[MAX_HOPS];
  unsigned char b[16];
  int nh, i, family, found = 0, proto;
  if (in->forwarded != NULL)
    nh = forwarded_hops(in->forwarded, in->forwarded_len, hops);
  else if (in->xff != NULL)
    nh = xff_hops(in->xff, in->xff_len, hops);
  else
    nh = 0;
  for (i = nh - 1; i >= 0; i--) {
    if (parse_node(hops[i].node, hops[i].node_len, &family, b) != 0 ||
        inet_ntop(family, b, addr, (socklen_t)n) == NULL)
      break;                             /* unknown, hidden or bad */
    found = 1;
    if (hops[i].proto != NULL &&
        (proto = parse_proto(hops[i].proto, hops[i].proto_len)) >= 0)
      *https = proto;
    if (!trusted(t, family, b))
      break;                             /* the client */
  }
  if (in->forwarded == NULL && in->xfp != NULL &&
      (proto = xfp_last(in->xfp, in->xfp_len)) >= 0)
    *https = proto;
  return found;
}

/* }====================================================== */
