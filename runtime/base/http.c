/*
 * http.c - status texts, the per-second Date cache, header checks.  Pure
 * helpers over a byte buffer: no I/O, no Lua.
 */
#include <stdint.h>
#include <stdio.h>
#include <time.h>
#include "base/http.h"

typedef struct { int code; const char *text; } reason;

static const reason reasons[] = {
  {100, "Continue"}, {101, "Switching Protocols"},
  {200, "OK"}, {201, "Created"}, {202, "Accepted"},
  {203, "Non-Authoritative Information"}, {204, "No Content"},
  {205, "Reset Content"}, {206, "Partial Content"},
  {300, "Multiple Choices"}, {301, "Moved Permanently"}, {302, "Found"},
  {303, "See Other"}, {304, "Not Modified"}, {307, "Temporary Redirect"},
  {308, "Permanent Redirect"},
  {400, "Bad Request"}, {401, "Unauthorized"}, {402, "Payment Required"},
  {403, "Forbidden"}, {404, "Not Found"}, {405, "Method Not Allowed"},
  {406, "Not Acceptable"}, {408, "Request Timeout"}, {409, "Conflict"},
  {410, "Gone"}, {411, "Length Required"}, {412, "Precondition Failed"},
  {413, "Content Too Large"}, {414, "URI Too Long"},
  {415, "Unsupported Media Type"}, {416, "Range Not Satisfiable"},
  {417, "Expectation Failed"}, {418, "I'm a teapot"},
  {421, "Misdirected Request"}, {422, "Unprocessable Content"},
  {425, "Too Early"}, {426, "Upgrade Required"},
  {428, "Precondition Required"}, {429, "Too Many Requests"},
  {431, "Request Header Fields Too Large"},
  {451, "Unavailable For Legal Reasons"},
  {500, "Internal Server Error"}, {501, "Not Implemented"},
  {502, "Bad Gateway"}, {503, "Service Unavailable"},
  {504, "Gateway Timeout"}, {505, "HTTP Version Not Supported"},
};

const char *ml_http_reason(int status) {
  size_t lo = 0, hi = sizeof reasons / sizeof reasons[0];
  while (lo < hi) {            /* the table is sorted by code */
    size_t mid = (lo + hi) / 2;
    if (reasons[mid].code == status)
      return reasons[mid].text;
    if (reasons[mid].code < status)
      lo = mid + 1;
    else
      hi = mid;
  }
  return "Unknown";
}

/* The Date line, rebuilt when the second changes. */
static const char *date_line(size_t *len) {
  static time_t last = -1;
  static char line[64];
  static size_t line_len;
  time_t now = time(NULL);
  if (now != last) {
    struct tm tm;
    gmtime_r(&now, &tm);
    line_len = strftime(line, sizeof line,
                        "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
    last = now;
  }
  *len = line_len;
  return line;
}

/* Writes v in decimal at the end of buf (which has room); returns the
 * start of the digits. */
static char *format_size(char *end, size_t v) {
  do {
    *--end = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  return end;
}

/*
 * "HTTP/1.1 200 OK\r\n" for the common codes, built once; the others are
 * formatted each time.
 */
static const char *status_text(int status, size_t *len) {
  static char cache[600][48];
  static unsigned char cache_len[600];
  static char other[64];
  char *line = (status >= 100 && status < 600) ? cache[status] : other;
  if (line == other || cache_len[status] == 0) {
    int n = snprintf(line, 48, "HTTP/1.1 %d %s\r\n", status,
                     ml_http_reason(status));
    if (n < 0 || n >= 48)
      n = snprintf(line, 48, "HTTP/1.1 %d Unknown\r\n", status);
    if (line == other) {
      *len = (size_t)n;
      return line;
    }
    cache_len[status] = (unsigned char)n;
  }
  *len = cache_len[status];
  return line;
}

int ml_http_status_line(ml_buf *out, int status) {
  size_t slen, dlen;
  const char *head = status_text(status, &slen);
  const char *date = date_line(&dlen);
  if (ml_buf_reserve(out, slen + dlen) != 0)
    return -1;
  memcpy(out->data + out->len, head, slen);
  memcpy(out->data + out->len + slen, date, dlen);
  out->len += slen + dlen;
  return 0;
}

static int is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
         (c >= 'A' && c <= 'F');
}

/* Whether c may stand as itself in a reg-name (RFC 3986: unreserved and
 * sub-delims, "-._~!$&'()*+,;=" and alphanumerics): a bit map, as this
 * runs for every request's Host. */
static int reg_name_char(unsigned char c) {
  static const uint64_t low = 0x2bff7fd200000000u;    /* 0 to 63 */
  static const uint64_t high = 0x47fffffe87fffffeu;   /* 64 to 127 */
  return c < 64 ? (int)(low >> c & 1) : c < 128 ? (int)(high >> (c - 64) & 1)
                                                 : 0;
}

/* Where the name part of a host ends: a reg-name or IPv4 address (RFC
 * 3986: unreserved, %-escapes, sub-delims), or an IP literal in
 * brackets; n + 1 when it is not one. */
static size_t host_name_end(const char *s, size_t n) {
  size_t i = 0;
  if (n > 0 && s[0] == '[') {
    for (i = 1; i < n && (is_hex(s[i]) || s[i] == ':' || s[i] == '.'); i++)
      ;
    return i < n && s[i] == ']' && i > 1 ? i + 1 : n + 1;
  }
  for (; i < n; i++) {
    if (reg_name_char((unsigned char)s[i]))
      continue;                /* the common case first */
    if (s[i] == ':')
      break;
    if (s[i] != '%' || i + 2 >= n || !is_hex(s[i + 1]) || !is_hex(s[i + 2]))
      return n + 1;
    i += 2;
  }
  return i;
}

int ml_http_host_ok(const char *s, size_t n) {
  size_t i = host_name_end(s, n);
  if (i > n)
    return 0;
  if (i < n && s[i++] != ':')
    return 0;
  for (; i < n; i++)
    if (s[i] < '0' || s[i] > '9')
      return 0;
  return 1;
}

/* Whether c is an RFC 9110 tchar (alphanumerics and
 * "!#$%&'*+-.^_`|~"): a bit map, as this runs for every header a
 * request brings and every header a handler sends. */
static int tchar(unsigned char c) {
  static const uint64_t low = 0x03ff6cfa00000000u;    /* 0 to 63 */
  static const uint64_t high = 0x57ffffffc7fffffeu;   /* 64 to 127 */
  return c < 64 ? (int)(low >> c & 1) : c < 128 ? (int)(high >> (c - 64) & 1)
                                                 : 0;
}

int ml_http_name_ok(const char *s, size_t n) {
  size_t i;
  if (n == 0)
    return 0;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if ((unsigned)((c | 0x20) - 'a') < 26u || (unsigned)(c - '0') < 10u)
      continue;                 /* most of any name */
    if (!tchar(c))
      return 0;
  }
  return 1;
}

/* The bytes no header value may hold: a table, one load per byte. */
static const unsigned char value_bad[256] = {
  ['\0'] = 1, ['\n'] = 1, ['\r'] = 1
};

int ml_http_value_ok(const char *s, size_t n) {
  const unsigned char *u = (const unsigned char *)s;
  size_t i;
  for (i = 0; i < n; i++)
    if (value_bad[u[i]])
      return 0;
  return 1;
}

char *ml_http_put_size(char *p, size_t v) {
  char tmp[24], *end = tmp + sizeof tmp, *q = format_size(end, v);
  size_t n = (size_t)(end - q);
  memcpy(p, q, n);
  return p + n;
}

int ml_http_append_size(ml_buf *out, size_t v) {
  char tmp[24], *end = tmp + sizeof tmp;
  char *p = format_size(end, v);
  return ml_buf_append(out, p, (size_t)(end - p));
}
