/*
 * static.c - app:static's files on the wire: find one under its directory
 * (never outside it), answer conditions and ranges, write the head, send
 * the body with sendfile(2), or in pieces through the output over TLS.
 * No Lua: core.static_send is lib_static.c's; the routes, the 404 page
 * and the 308 to a directory's slash are moonlet.app's; the socket and
 * its write queue are conn.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/sendfile.h>
#endif
#include "net/conn.h"
#include "net/static.h"
#include "base/http.h"
#include "base/log.h"

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define PIECE 65536              /* one read through the write queue */
#define TLS_PIECE 16384          /* one TLS record's plaintext: the piece
                                    size without sendfile */
#define SENDFILE_MAX 0x7ffff000  /* Linux's most for one call */

/*
 * Finding the file (realpath, stat, open) runs on libuv's thread pool,
 * so a slow disk stalls only the requests for its files, not the loop.
 * The read of a piece when the socket is full runs on the loop, as the
 * kernel's own reads inside sendfile do.
 */

/*
** {======================================================
** Content types, by extension
** =======================================================
*/

typedef struct { const char *ext, *type; } ctype;

static const ctype ctypes[] = {
  {"7z", "application/x-7z-compressed"}, {"avif", "image/avif"},
  {"bmp", "image/bmp"}, {"css", "text/css; charset=utf-8"},
  {"csv", "text/csv; charset=utf-8"}, {"gif", "image/gif"},
  {"gz", "application/gzip"}, {"htm", "text/html; charset=utf-8"},
  {"html", "text/html; charset=utf-8"}, {"ico", "image/x-icon"},
  {"jpeg", "image/jpeg"}, {"jpg", "image/jpeg"},
  {"js", "text/javascript; charset=utf-8"}, {"json", "application/json"},
  {"map", "application/json"}, {"md", "text/markdown; charset=utf-8"},
  {"mjs", "text/javascript; charset=utf-8"}, {"mp3", "audio/mpeg"},
  {"mp4", "video/mp4"}, {"oga", "audio/ogg"}, {"ogg", "audio/ogg"},
  {"ogv", "video/ogg"}, {"otf", "font/otf"}, {"pdf", "application/pdf"},
  {"png", "image/png"}, {"svg", "image/svg+xml"},
  {"tar", "application/x-tar"}, {"ttf", "font/ttf"},
  {"txt", "text/plain; charset=utf-8"}, {"wasm", "application/wasm"},
  {"wav", "audio/wav"}, {"webm", "video/webm"},
  {"webmanifest", "application/manifest+json"}, {"webp", "image/webp"},
  {"woff", "font/woff"}, {"woff2", "font/woff2"},
  {"xml", "text/xml; charset=utf-8"}, {"zip", "application/zip"},
};

/* The type for a file name, by its extension in any case. */
static const char *content_type(const char *name) {
  const char *dot = strrchr(name, '.');
  size_t i, n;
  if (dot == NULL || dot == name)    /* no extension, or ".profile" */
    return "application/octet-stream";
  n = strlen(++dot);
  for (i = 0; i < sizeof ctypes / sizeof ctypes[0]; i++)
    if (ml_strieq(dot, n, ctypes[i].ext))
      return ctypes[i].type;
  return "application/octet-stream";
}

/* }====================================================== */

/*
** {======================================================
** Validators: ETag and Last-Modified
** =======================================================
*/

static const char days[7][4] = {
  "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
};
static const char months[12][4] = {
  "Jan", "Feb", "Mar", "Apr", "May", "Jun",
  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
};

typedef struct {
  char etag[64];        /* W/"<size hex>-<mtime ns hex>" */
  char modified[32];    /* the mtime as an IMF-fixdate */
  int64_t mtime;        /* seconds */
  uint64_t size;
} validators;

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; H. Hinnant's). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  int64_t era, yoe, doy;
  y -= m <= 2;
  era = (y >= 0 ? y : y - 399) / 400;
  yoe = y - era * 400;
  doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  return era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468;
}

/* Reads n digits at s; -1 if they are not all digits. */
static int digits(const char *s, int n) {
  int v = 0;
  for (; n > 0; n--, s++) {
    if (*s < '0' || *s > '9')
      return -1;
    v = v * 10 + (*s - '0');
  }
  return v;
}

/*
 * Seconds since the epoch of an IMF-fixdate, "Sun, 06 Nov 1994 08:49:37
 * GMT"; -1 when v is not one (the obsolete forms are not accepted: the
 * condition is then ignored, as RFC 9110 asks for an invalid date).
 */
static int64_t parse_date(const char *v, size_t n) {
  int d, m, y, hh, mm, ss;
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  if (n != 29 || memcmp(v + 3, ", ", 2) != 0 || v[7] != ' ' ||
      v[11] != ' ' || v[16] != ' ' || v[19] != ':' || v[22] != ':' ||
      memcmp(v + 25, " GMT", 4) != 0)
    return -1;
  for (m = 0; m < 12 && memcmp(v + 8, months[m], 3) != 0; m++)
    ;
  d = digits(v + 5, 2);
  y = digits(v + 12, 4);
  hh = digits(v + 17, 2);
  mm = digits(v + 20, 2);
  ss = digits(v + 23, 2);
  if (m == 12 || d < 1 || d > 31 || y < 0 || hh < 0 || hh > 23 || mm < 0 ||
      mm > 59 || ss < 0 || ss > 60)
    return -1;
  return days_from_civil(y, m + 1, d) * 86400 + hh * 3600 + mm * 60 + ss;
}

static void make_validators(validators *v, const struct stat *st) {
  struct tm tm;
  time_t t = st->st_mtime;
  uint64_t ns = (uint64_t)st->st_mtim.tv_sec * 1000000000u +
                (uint64_t)st->st_mtim.tv_nsec;
  v->size = (uint64_t)st->st_size;
  v->mtime = (int64_t)t;
  snprintf(v->etag, sizeof v->etag, "W/\"%llx-%llx\"",
           (unsigned long long)v->size, (unsigned long long)ns);
  gmtime_r(&t, &tm);           /* our own names: no locale in a header */
  snprintf(v->modified, sizeof v->modified,
           "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday],
           tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour,
           tm.tm_min, tm.tm_sec);
}

/*
 * Whether the If-None-Match list v holds our tag: "*", or an entity-tag
 * equal to ours by the weak comparison (W/ ignored on both sides).  A
 * malformed list stops the search: no match.
 */
static int etag_listed(const char *v, size_t n, const char *etag) {
  const char *opaque = etag + 2;         /* ours without its W/ */
  size_t olen = strlen(opaque), i = 0, j;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    if (i == n)
      break;
    if (v[i] == '*')
      return 1;
    if (n - i >= 2 && v[i] == 'W' && v[i + 1] == '/')
      i += 2;
    if (i == n || v[i] != '"')
      return 0;
    for (j = i + 1; j < n && v[j] != '"'; j++)
      ;
    if (j == n)
      return 0;
    if (j + 1 - i == olen && memcmp(v + i, opaque, olen) == 0)
      return 1;
    i = j + 1;
  }
  return 0;
}

/* }====================================================== */

/*
** {======================================================
** Conditions and ranges from the request's headers
** =======================================================
*/

/* The value of the request's first header called 'name', or NULL. */
static const char *header(ml_conn *c, const char *name, size_t *len) {
  ml_req *r = ml_conn_req(c);
  size_t nlen;
  int i;
  for (i = 0; i < r->nhdrs; i++) {
    const char *n = ml_conn_header_name(c, i, &nlen);
    if (ml_strieq(n, nlen, name))
      return ml_conn_header_value(c, i, len);
  }
  return NULL;
}

/*
 * Whether the client's copy is current: If-None-Match (every such header)
 * decides when present; If-Modified-Since only without it, and only with
 * a valid date no later than now (RFC 9110 §13.1.3).
 */
static int not_modified(ml_conn *c, const validators *v) {
  ml_req *r = ml_conn_req(c);
  const char *val;
  size_t nlen, vlen;
  int i, seen = 0;
  int64_t since;
  for (i = 0; i < r->nhdrs; i++) {
    const char *n = ml_conn_header_name(c, i, &nlen);
    if (!ml_strieq(n, nlen, "if-none-match"))
      continue;
    seen = 1;
    val = ml_conn_header_value(c, i, &vlen);
    if (etag_listed(val, vlen, v->etag))
      return 1;
  }
  if (seen || (val = header(c, "if-modified-since", &vlen)) == NULL)
    return 0;
  since = parse_date(val, vlen);    /* a date past now is invalid too */
  return since >= 0 && since <= (int64_t)time(NULL) && v->mtime <= since;
}

/* Whether If-Range (if any) lets Range apply: an entity-tag never does
 * (ours are weak, and If-Range compares strongly); a date must be the
 * Last-Modified we send, to the second. */
static int range_applies(ml_conn *c, const validators *v) {
  size_t n;
  const char *val = header(c, "if-range", &n);
  if (val == NULL)
    return 1;
  while (n > 0 && (*val == ' ' || *val == '\t'))
    val++, n--;
  if ((n > 0 && *val == '"') || (n > 1 && val[0] == 'W' && val[1] == '/'))
    return 0;
  return parse_date(val, n) == v->mtime;
}

enum { RANGE_NONE, RANGE_ONE, RANGE_BAD };

/* Reads decimal digits at v[*i..n), saturating; -1 if there are none. */
static int number(const char *v, size_t n, size_t *i, uint64_t *out) {
  size_t start = *i;
  uint64_t x = 0;
  for (; *i < n && v[*i] >= '0' && v[*i] <= '9'; (*i)++) {
    unsigned d = (unsigned)(v[*i] - '0');
    x = x > (UINT64_MAX - 9) / 10 ? UINT64_MAX : x * 10 + d;
  }
  *out = x;
  return *i > start ? 0 : -1;
}

/*
 * Parses "bytes=a-b", "bytes=a-" or "bytes=-n" against a file of 'size'
 * bytes into [*first, *last].  RANGE_NONE: serve the whole file (no
 * header, another unit, bad syntax, or several ranges, which we answer
 * with the whole file rather than multipart); RANGE_BAD: unsatisfiable,
 * a 416.
 */
static int parse_range(const char *v, size_t n, uint64_t size,
                       uint64_t *first, uint64_t *last) {
  size_t i = 0;
  uint64_t a, b;
  while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
    n--;
  while (i < n && (v[i] == ' ' || v[i] == '\t'))
    i++;
  if (n - i < 6 || !ml_strieq(v + i, 5, "bytes") || v[i + 5] != '=')
    return RANGE_NONE;
  i += 6;
  if (memchr(v + i, ',', n - i) != NULL)
    return RANGE_NONE;
  while (i < n && (v[i] == ' ' || v[i] == '\t'))
    i++;
  if (i < n && v[i] == '-') {                     /* the last n bytes */
    i++;
    if (number(v, n, &i, &b) != 0 || i != n)
      return RANGE_NONE;
    if (b == 0 || size == 0)
      return RANGE_BAD;
    *first = b >= size ? 0 : size - b;
    *last = size - 1;
    return RANGE_ONE;
  }
  if (number(v, n, &i, &a) != 0 || i == n || v[i++] != '-')
    return RANGE_NONE;
  b = UINT64_MAX;
  if (i < n && (number(v, n, &i, &b) != 0 || b < a))
    return RANGE_NONE;
  if (i != n)
    return RANGE_NONE;
  if (a >= size)
    return RANGE_BAD;
  *first = a;
  *last = b >= size ? size - 1 : b;
  return RANGE_ONE;
}

/* }====================================================== */

/*
** {======================================================
** Finding the file
** =======================================================
*/

enum { FOUND, NOT_FOUND, REDIRECT, FAILED };

typedef struct {
  char root[PATH_MAX];   /* the directory, resolved */
  char path[PATH_MAX];   /* root and the request's segments */
  char real[PATH_MAX];   /* 'path' with every symlink resolved */
  const char *name;      /* the last segment of 'path' */
  struct stat st;
  int fd;
  int err;               /* errno, for FAILED */
} lookup;

/*
 * root + "/" + each segment of rel, but empty and "." ones.  -1 for a
 * ".." segment, a NUL, or a path too long: never served, whatever the
 * file system has.
 */
static int join(lookup *k, const char *rel, size_t n) {
  size_t len = strlen(k->root), i = 0, j, seg;
  memcpy(k->path, k->root, len + 1);
  k->name = k->path + len;
  while (i < n) {
    for (j = i; j < n && rel[j] != '/'; j++)
      if (rel[j] == '\0')
        return -1;
    seg = j - i;
    if (seg == 2 && rel[i] == '.' && rel[i + 1] == '.')
      return -1;
    if (seg > 0 && !(seg == 1 && rel[i] == '.')) {
      if (len + 1 + seg >= PATH_MAX)
        return -1;
      if (k->path[len - 1] != '/')
        k->path[len++] = '/';
      k->name = k->path + len;
      memcpy(k->path + len, rel + i, seg);
      len += seg;
      k->path[len] = '\0';
    }
    i = j + 1;
  }
  return 0;
}

/* Whether the resolved path p is root or under it. */
static int inside(const char *root, const char *p) {
  size_t n = strlen(root);
  return strncmp(p, root, n) == 0 &&
         (p[n] == '\0' || p[n] == '/' || root[n - 1] == '/');
}

/* Resolves k->path into k->real and stats it: FOUND only inside root. */
static int locate(lookup *k) {
  if (realpath(k->path, k->real) == NULL) {
    k->err = errno;
    return errno == ENOMEM || errno == EIO ? FAILED : NOT_FOUND;
  }
  if (!inside(k->root, k->real) || stat(k->real, &k->st) != 0)
    return NOT_FOUND;                      /* a symlink out, or a race */
  return FOUND;
}

/*
 * The file for 'rel' under 'root', opened in k->fd: a regular file, or a
 * directory's index.html when the request ended with '/' ('slash').  A
 * directory asked for without the slash is REDIRECT.
 */
static int find_file(lookup *k, const char *root, const char *rel,
                     size_t n, int slash) {
  int rc;
  k->fd = -1;
  if (realpath(root, k->root) == NULL || join(k, rel, n) != 0)
    return NOT_FOUND;
  if ((rc = locate(k)) != FOUND)
    return rc;
  if (S_ISDIR(k->st.st_mode)) {
    size_t len = strlen(k->path);
    if (!slash)
      return REDIRECT;
    if (len + sizeof "/index.html" > PATH_MAX)
      return NOT_FOUND;
    memcpy(k->path + len, "/index.html", sizeof "/index.html");
    k->name = k->path + len + 1;
    if ((rc = locate(k)) != FOUND)
      return rc;
  } else if (slash) {
    return NOT_FOUND;                     /* "file.txt/" */
  }
  if (!S_ISREG(k->st.st_mode))
    return NOT_FOUND;
  /* O_NONBLOCK: a FIFO swapped in since the stat must not hang us */
  k->fd = open(k->real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (k->fd < 0) {
    k->err = errno;
    return errno == EMFILE || errno == ENFILE || errno == ENOMEM
             ? FAILED : NOT_FOUND;
  }
  if (fstat(k->fd, &k->st) != 0 || !S_ISREG(k->st.st_mode)) {
    close(k->fd);
    k->fd = -1;
    return NOT_FOUND;
  }
  return FOUND;
}

/* }====================================================== */

/*
** {======================================================
** The head
** =======================================================
*/

/* Appends "Name: value\r\n"; 0 or -1 (memory). */
static int put(ml_buf *o, const char *name, const char *value) {
  size_t n = strlen(name), v = strlen(value);
  if (ml_buf_reserve(o, n + v + 4) != 0)
    return -1;
  memcpy(o->data + o->len, name, n);
  memcpy(o->data + o->len + n, ": ", 2);
  memcpy(o->data + o->len + n + 2, value, v);
  memcpy(o->data + o->len + n + 2 + v, "\r\n", 2);
  o->len += n + v + 4;
  return 0;
}

/* What one response is: the status, the body's part of the file. */
typedef struct {
  int status;            /* 200, 206, 304 or 416 */
  uint64_t first, len;   /* the bytes of the file in the body */
  int close;             /* Connection: close */
} answer;

#define TEXT_416 "416 Range Not Satisfiable\n"

/*
 * Appends the head of the answer to 'o' (and the short body of a 416);
 * 0 or -1 (memory: the caller takes back what was appended).
 */
static int put_head(ml_conn *c, ml_buf *o, const answer *a,
                    const validators *v, const char *type) {
  char num[96];
  int rc = ml_http_status_line(o, a->status);
  if (a->status == 416) {
    snprintf(num, sizeof num, "bytes */%llu", (unsigned long long)v->size);
    rc |= put(o, "Content-Range", num);
    rc |= put(o, "Content-Type", "text/plain; charset=utf-8");
  } else {
    rc |= put(o, "ETag", v->etag);
    rc |= put(o, "Last-Modified", v->modified);
  }
  if (a->status == 200 || a->status == 206)
    rc |= put(o, "Content-Type", type);
  if (a->status == 206) {
    snprintf(num, sizeof num, "bytes %llu-%llu/%llu",
             (unsigned long long)a->first,
             (unsigned long long)(a->first + a->len - 1),
             (unsigned long long)v->size);
    rc |= put(o, "Content-Range", num);
  }
  if (a->status != 304) {
    rc |= put(o, "Accept-Ranges", "bytes");
    snprintf(num, sizeof num, "%llu", a->status == 416
             ? (unsigned long long)(sizeof TEXT_416 - 1)
             : (unsigned long long)a->len);
    rc |= put(o, "Content-Length", num);
  }
  if (a->close)
    rc |= ML_BUF_LIT(o, "Connection: close\r\n");
  else if (ml_conn_req(c)->minor == 0)
    rc |= ML_BUF_LIT(o, "Connection: keep-alive\r\n");
  rc |= ML_BUF_LIT(o, "\r\n");
  if (a->status == 416 && ml_conn_req(c)->method != HTTP_HEAD)
    rc |= ML_BUF_LIT(o, TEXT_416);
  return rc != 0 ? -1 : 0;
}

/* Decides the answer from the request's conditions and Range. */
static void decide(ml_conn *c, const validators *v, answer *a) {
  size_t n;
  const char *range;
  uint64_t first = 0, last = 0;
  a->status = 200;
  a->first = 0;
  a->len = v->size;
  a->close = !ml_conn_keep_alive(c);
  if (not_modified(c, v)) {
    a->status = 304;
    a->len = 0;
    return;
  }
  range = header(c, "range", &n);
  if (range == NULL || !range_applies(c, v))
    return;
  switch (parse_range(range, n, v->size, &first, &last)) {
  case RANGE_ONE:
    a->status = 206;
    a->first = first;
    a->len = last - first + 1;
    break;
  case RANGE_BAD:
    a->status = 416;
    a->len = 0;
    break;
  default:
    break;
  }
}

/* }====================================================== */

/*
** {======================================================
** The transfer: sendfile, and one piece at a time when the socket is full
** =======================================================
*/

/*
 * A body being sent.  It never holds more than one PIECE of the file in
 * the connection's output.  Freed by finish once the body is out or the
 * send failed, or at once by ml_static_cancel.
 */
struct ml_static_transfer {
  ml_drain drain;        /* waits for the socket to take the output */
  ml_ctimer turn;        /* gives the loop a turn between bursts */
  ml_conn *c;
  int fd;                /* the file */
  off_t off, end;        /* what is left of the file's bytes */
  answer a;
  ml_static_done done;
  void *ud;
  unsigned pieces : 1;   /* no sendfile (TLS): every byte is read and
                            goes through the output, in TLS_PIECEs */
  unsigned busy : 1;     /* inside step: a cancel leaves the free to it */
  unsigned cancelled : 1;
};

enum { STEP_DONE, STEP_WAIT, STEP_FAIL };

static void on_drained(ml_drain *d, int status);
static void on_turn(ml_ctimer *t);

/* Reads the next piece of the file (up to 'size' bytes) into the
 * connection's output. */
static int read_piece(ml_static_transfer *s, size_t size) {
  ml_buf *o = ml_conn_out(s->c);
  size_t want = s->end - s->off < (off_t)size ? (size_t)(s->end - s->off)
                                              : size;
  ssize_t n;
  if (ml_buf_reserve(o, want) != 0)
    return -1;
  do
    n = pread(s->fd, o->data + o->len, want, s->off);
  while (n < 0 && errno == EINTR);
  if (n <= 0) {                        /* an error, or the file shrank */
    ml_log(MOONLET_LOG_WARN, "static: reading a file: %s",
           n < 0 ? strerror(errno) : "it is shorter than its size");
    return -1;
  }
  o->len += (size_t)n;
  s->off += n;
  return 0;
}

/* sendfile's count, or -1 with errno; EAGAIN where there is none. */
static ssize_t send_file(ml_static_transfer *s) {
#ifdef __linux__
  off_t left = s->end - s->off;
  return sendfile(ml_conn_fd(s->c), s->fd, &s->off,
                  left > SENDFILE_MAX ? SENDFILE_MAX : (size_t)left);
#else
  ML_UNUSED(s);
  errno = EAGAIN;         /* every piece goes through the write queue */
  return -1;
#endif
}

/*
 * Sends as much as the socket takes now, up to TURN_BYTES.  Nothing is
 * sent around bytes still queued (the head, the last piece): they go
 * first.  When sendfile finds the socket full (EAGAIN, or it took only
 * part), one piece is read into the output, which libuv writes when it
 * can, and the send waits for the output to drain: a slow reader never
 * makes us buffer more than that piece.  Without sendfile (TLS) every
 * piece goes that way, a record's worth at a time.  A fast reader gets
 * TURN_BYTES, then the loop serves the others for a turn.  STEP_FAIL:
 * the connection must close (it may be closed already).
 */
#define TURN_BYTES (8 << 20)

static int step(ml_static_transfer *s) {
  ml_conn *c = s->c;
  off_t start = s->off;
  ssize_t n;
  for (;;) {
    if (ml_conn_pending(c) > 0) {
      ml_conn_flush(c);
      if (ml_conn_closing(c))
        return STEP_FAIL;                 /* the write failed */
      if (ml_conn_pending(c) > 0) {
        ml_conn_drain_wait(c, &s->drain, 0, on_drained);
        return STEP_WAIT;
      }
    }
    if (s->off >= s->end)
      return STEP_DONE;
    if (s->off - start >= TURN_BYTES) {   /* the others' turn: the */
      if (ml_clock_timer_start(&s->turn, on_turn, 0, 0) != 0)
        return STEP_FAIL;                 /* connection may close */
      ml_conn_drain_wait(c, &s->drain, (size_t)-1, on_drained);
      return STEP_WAIT;                   /* meanwhile: hear of it */
    }
    if (s->pieces) {                      /* through SSL_write */
      if (read_piece(s, TLS_PIECE) != 0)
        return STEP_FAIL;
      continue;
    }
    n = send_file(s);
    if (n < 0 && errno == EINTR)
      continue;
    if (n > 0 && s->off >= s->end)
      return STEP_DONE;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
        errno != EINVAL && errno != ENOSYS) {  /* the last two: no
                                                  sendfile for this pair */
      ml_log(MOONLET_LOG_DEBUG, "static: sendfile: %s", strerror(errno));
      return STEP_FAIL;                   /* EPIPE, ECONNRESET ... */
    }
    if (n == 0) {
      ml_log(MOONLET_LOG_WARN, "static: a file is shorter than its size");
      return STEP_FAIL;
    }
    if (read_piece(s, PIECE) != 0)        /* socket full: one piece */
      return STEP_FAIL;
  }
}

/* Runs a step; 1 when a cancel came meanwhile (then s is freed). */
static int guarded_step(ml_static_transfer *s, int *rc) {
  s->busy = 1;
  *rc = step(s);
  s->busy = 0;
  if (!s->cancelled)
    return 0;
  close(s->fd);
  free(s);
  return 1;
}

/*
 * The transfer ended: the body is out (the response counts for the
 * access log and keep-alive), or it failed and the connection closes,
 * after the caller has heard of it.  'done' may resume the handler,
 * which may end the connection: nothing touches c after it but a close
 * on failure, when 'done' resumes nothing at once.
 */
static void finish(ml_static_transfer *s, int status) {
  ml_conn *c = s->c;
  close(s->fd);
  if (status == 0)
    ml_conn_responded(c, s->a.status, (size_t)s->a.len, s->a.close);
  s->done(s, status, s->ud);
  if (status != 0 && !ml_conn_closing(c))
    ml_conn_close(c);
  free(s);
}

/* Goes on once the output has drained or the loop has had its turn. */
static void pump(ml_static_transfer *s) {
  int rc;
  if (guarded_step(s, &rc) || rc == STEP_WAIT)
    return;
  finish(s, rc == STEP_DONE ? 0 : UV_EPIPE);
}

/* The output drained: go on.  Or the connection closed under a send
 * its abort did not cancel: it fails.  Whichever of the drain and the
 * turn calls first stops the other. */
static void on_drained(ml_drain *d, int status) {
  ml_static_transfer *s = container_of(d, ml_static_transfer, drain);
  ml_clock_timer_stop(&s->turn);
  if (status == 0)
    pump(s);
  else
    finish(s, status);
}

static void on_turn(ml_ctimer *t) {
  ml_static_transfer *s = container_of(t, ml_static_transfer, turn);
  ml_conn_drain_stop(&s->drain);
  pump(s);
}

void ml_static_cancel(ml_static_transfer *s) {
  ml_log(MOONLET_LOG_DEBUG, "static: client gone, transfer cancelled "
         "with %lld of %llu bytes left", (long long)(s->end - s->off),
         (unsigned long long)s->a.len);
  ml_conn_drain_stop(&s->drain);
  ml_clock_timer_stop(&s->turn);
  if (s->busy) {            /* inside step: it frees */
    s->cancelled = 1;
    return;
  }
  close(s->fd);
  free(s);
}

/*
 * Starts sending the body of the head already in the output: done at
 * once when the socket takes it all, pending otherwise.
 */
static int transfer(ml_conn *c, int fd, const answer *a,
                    ml_static_done done, void *ud, ml_static_transfer **out) {
  ml_static_transfer *s = calloc(1, sizeof *s);
  int rc;
  if (s == NULL) {
    close(fd);
    ml_conn_close(c);           /* the head is queued: cannot take it back */
    return UV_ENOMEM;
  }
  s->c = c;
  s->fd = fd;
  s->off = (off_t)a->first;
  s->end = (off_t)(a->first + a->len);
  s->a = *a;
  s->pieces = ml_conn_fd(c) < 0;
  s->done = done;
  s->ud = ud;
  ml_clock_timer_init_on(ml_conn_clock(c), &s->turn);
  if (guarded_step(s, &rc))
    return ML_STATIC_CLOSED;    /* cannot happen: the caller runs */
  if (rc == STEP_WAIT) {
    *out = s;
    return ML_STATIC_PENDING;
  }
  if (rc == STEP_DONE)
    ml_conn_responded(c, a->status, (size_t)a->len, a->close);
  else if (!ml_conn_closing(c))
    ml_conn_close(c);
  close(fd);
  free(s);
  return rc == STEP_DONE ? ML_STATIC_SENT : ML_STATIC_CLOSED;
}

/* }====================================================== */

/*
** {======================================================
** Off the loop
** =======================================================
*/

/* A lookup on the thread pool: the request's names, copied (the loop may
 * free theirs meanwhile), and what the thread found. */
struct ml_static_lookup {
  uv_work_t work;
  lookup k;
  char *root, *rel;        /* one allocation: root, NUL, rel */
  size_t n;
  int slash;
  int rc;                  /* find_file's answer */
  int cancelled;           /* its owner gave up: the loop frees it */
  ml_static_found found;
  void *ud;
};

static void lookup_free(ml_static_lookup *l) {
  if (l->rc == FOUND && l->k.fd >= 0)
    close(l->k.fd);
  free(l->root);
  free(l);
}

static void lookup_work(uv_work_t *w) {        /* on a pool thread */
  ml_static_lookup *l = container_of(w, ml_static_lookup, work);
  l->rc = find_file(&l->k, l->root, l->rel, l->n, l->slash);
}

static void lookup_done(uv_work_t *w, int status) {
  ml_static_lookup *l = container_of(w, ml_static_lookup, work);
  if (l->cancelled) {
    lookup_free(l);
    return;
  }
  if (status != 0) {                  /* cannot be: only cancel fails it */
    l->rc = FAILED;
    l->k.err = -status;
  }
  l->found(l, l->ud);
}

int ml_static_lookup_start(uv_loop_t *loop, const char *root,
                           const char *rel, size_t n, int slash,
                           ml_static_found found, void *ud,
                           ml_static_lookup **out) {
  size_t rlen = strlen(root);
  ml_static_lookup *l = malloc(sizeof *l);  /* 12 KiB: not on the stack */
  int rc;
  if (l == NULL || (l->root = malloc(rlen + n + 2)) == NULL) {
    free(l);
    return UV_ENOMEM;
  }
  memcpy(l->root, root, rlen + 1);
  l->rel = l->root + rlen + 1;
  memcpy(l->rel, rel, n);
  l->rel[n] = '\0';
  l->n = n;
  l->slash = slash;
  l->rc = NOT_FOUND;
  l->k.fd = -1;
  l->k.err = 0;
  l->cancelled = 0;
  l->found = found;
  l->ud = ud;
  if ((rc = uv_queue_work(loop, &l->work, lookup_work, lookup_done)) != 0) {
    lookup_free(l);
    return rc;
  }
  *out = l;
  return 0;
}

void ml_static_lookup_cancel(ml_static_lookup *l) {
  l->cancelled = 1;
  uv_cancel((uv_req_t *)&l->work);  /* or it finishes: lookup_done frees */
}

/* }====================================================== */

int ml_static_answer(ml_conn *c, ml_static_lookup *l, ml_static_done done,
                     void *ud, ml_static_transfer **out) {
  size_t mark;
  int rc, fd;
  ml_buf *o;
  validators v;
  answer a;
  lookup *k = &l->k;
  ml_req *r = ml_conn_req(c);
  if (l->rc != FOUND) {
    int err = k->err;
    rc = l->rc;
    lookup_free(l);
    return rc == FAILED ? -err : rc == REDIRECT ? ML_STATIC_REDIRECT
                                                : ML_STATIC_NOT_FOUND;
  }
  make_validators(&v, &k->st);
  decide(c, &v, &a);
  o = ml_conn_out(c);
  mark = o->len;
  rc = put_head(c, o, &a, &v, content_type(k->name));
  fd = k->fd;
  k->fd = -1;
  lookup_free(l);
  if (rc != 0) {
    o->len = mark;
    close(fd);
    return UV_ENOMEM;
  }
  if (a.len == 0 || r->method == HTTP_HEAD) {
    close(fd);
    ml_conn_responded(c, a.status, a.status == 416 && r->method != HTTP_HEAD
                                     ? sizeof TEXT_416 - 1 : 0, a.close);
    return ML_STATIC_SENT;
  }
  return transfer(c, fd, &a, done, ud, out);
}
