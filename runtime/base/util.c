/*
 * util.c - the byte buffer and string helpers declared in util.h.
 */
#include <limits.h>
#include <stdlib.h>
#include "base/util.h"

int ml_buf_reserve(ml_buf *b, size_t extra) {
  size_t cap;
  char *p;
  if (b->cap - b->len >= extra)
    return 0;
  cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) {
    if (cap > ((size_t)-1) / 2)
      return -1;
    cap *= 2;
  }
  if ((p = realloc(b->data, cap)) == NULL)
    return -1;
  b->data = p;
  b->cap = cap;
  return 0;
}

int ml_buf_reserve_exact(ml_buf *b, size_t extra) {
  char *p;
  if (b->cap > 0 || extra == 0)
    return ml_buf_reserve(b, extra);
  if ((p = malloc(extra)) == NULL)
    return -1;
  b->data = p;
  b->cap = extra;
  return 0;
}

int ml_buf_append(ml_buf *b, const void *p, size_t n) {
  if (ml_buf_reserve(b, n) != 0)
    return -1;
  if (n > 0)
    memcpy(b->data + b->len, p, n);
  b->len += n;
  return 0;
}

void ml_buf_free(ml_buf *b) {
  free(b->data);
  b->data = NULL;
  b->len = b->cap = 0;
}

int ml_strieq(const char *a, size_t n, const char *lit) {
  size_t i;
  for (i = 0; i < n; i++) {
    char c = a[i];
    if (lit[i] == '\0')
      return 0;
    if (c >= 'A' && c <= 'Z')
      c = (char)(c + 32);
    if (c != lit[i])
      return 0;
  }
  return lit[n] == '\0';
}

int ml_fmt_int(char *buf, long long v) {
  char rev[ML_INT_BUFSIZE];
  unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v
                               : (unsigned long long)v;
  int n = 0, len = 0;
  do {
    rev[n++] = (char)('0' + (int)(u % 10));
    u /= 10;
  } while (u != 0);
  if (v < 0)
    buf[len++] = '-';
  while (n > 0)
    buf[len++] = rev[--n];
  buf[len] = '\0';
  return len;
}

int ml_parse_int(const char *s, long long *out) {
  unsigned long long u = 0, max = (unsigned long long)LLONG_MAX;
  int neg = *s == '-';
  s += neg;
  if (*s == '\0')
    return -1;
  for (; *s != '\0'; s++) {
    if (*s < '0' || *s > '9' || u > (ULLONG_MAX - 9) / 10)
      return -1;                 /* u * 10 + 9 would wrap */
    u = u * 10 + (unsigned)(*s - '0');
  }
  if (u > max + (unsigned)neg)
    return -1;
  *out = !neg ? (long long)u : u == max + 1 ? LLONG_MIN : -(long long)u;
  return 0;
}
