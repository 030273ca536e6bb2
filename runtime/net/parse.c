/*
 * parse.c - a request from bytes: llhttp's callbacks (its parser is in
 * the request's reader) fill the ml_req with offsets into the request's
 * text, enforce the limits on URL, headers and body, and refuse what
 * llhttp lets through but we don't; then the path the request is routed
 * on is found.  The bytes, the timers and the answers are conn.c's.
 */
#include <stdlib.h>
#include <string.h>
#include "base/http.h"
#include "net/parse.h"

/*
** {======================================================
** llhttp callbacks
** =======================================================
*/

#define RD(p) container_of(p, ml_reader, parser)

/* Refuses the request being parsed: llhttp stops with HPE_USER. */
static int refuse(ml_reader *d, int status) {
  d->err_status = status;
  return -1;
}

static int on_message_begin(llhttp_t *p) {
  ml_reader *d = RD(p);
  ml_req *r = d->req;
  r->url_len = 0;
  r->nhdrs = 0;
  d->head_bytes = 0;
  d->head_end = 0;
  d->body.len = 0;
  r->responded = d->expect_continue = d->in_field = 0;
  r->status = 0;
  r->bytes = 0;
  r->streaming = r->chunked = 0;
  r->stream_ping_ms = 0;
  d->err_status = 0;
  d->head_done = d->trailers = 0;
  d->in_line = 1;
  d->line_begun = 0;
  ml_conn_request_progress(r->conn, 1);
  return 0;
}

static void extend_head(ml_reader *d, const char *at, size_t len) {
  uint32_t end = (uint32_t)(at + len - d->req->text);
  if (end > d->head_end)
    d->head_end = end;
}

static int on_url(llhttp_t *p, const char *at, size_t len) {
  ml_reader *d = RD(p);
  ml_req *r = d->req;
  if (r->url_len == 0)
    r->url_off = (uint32_t)(at - r->text);
  r->url_len += (uint32_t)len;   /* pieces are contiguous in 'in' */
  extend_head(d, at, len);
  if (r->url_len > ml_conn_limits(r->conn)->max_url)
    return refuse(d, 414);
  return 0;
}

static int count_head(ml_reader *d, size_t len) {
  d->head_bytes += (uint32_t)len;
  if (d->head_bytes > ml_conn_limits(d->req->conn)->max_headers)
    return refuse(d, 431);
  return 0;
}

/* Room for one more header: the inline ones, then a growing array. */
static int grow_hdrs(ml_reader *d) {
  ml_req *r = d->req;
  int cap = d->hdrs_cap * 2;
  ml_hdr *n = r->hdrs == d->inline_hdrs ? malloc((size_t)cap * sizeof *n)
                                        : realloc(r->hdrs, (size_t)cap *
                                                  sizeof *n);
  if (n == NULL)
    return -1;
  if (r->hdrs == d->inline_hdrs)
    memcpy(n, d->inline_hdrs, sizeof d->inline_hdrs);
  r->hdrs = n;
  d->hdrs_cap = cap;
  return 0;
}

/*
 * Header callbacks after the head are for trailers.  They are read and
 * count against max_headers, but never join req.headers: a trailer must
 * not add to, or stand in for, a field the head did not have (Host,
 * framing).
 */
static int on_header_field(llhttp_t *p, const char *at, size_t len) {
  ml_reader *d = RD(p);
  ml_req *r = d->req;
  ml_hdr *h;
  if (d->trailers)
    return count_head(d, len + 4);
  if (!d->in_field) {            /* a new header starts */
    if (r->nhdrs == d->hdrs_cap && grow_hdrs(d) != 0)
      return refuse(d, 503);
    h = &r->hdrs[r->nhdrs++];
    h->name_off = (uint32_t)(at - r->text);
    h->name_len = 0;
    h->value_off = h->name_off;
    h->value_len = 0;
    d->in_field = 1;
  }
  r->hdrs[r->nhdrs - 1].name_len += (uint32_t)len;
  extend_head(d, at, len);
  return count_head(d, len + 4);  /* ": " and CRLF count too */
}

static int on_header_value(llhttp_t *p, const char *at, size_t len) {
  ml_reader *d = RD(p);
  ml_req *r = d->req;
  ml_hdr *h = &r->hdrs[r->nhdrs - 1];
  if (d->trailers)
    return count_head(d, len);
  if (d->in_field) {
    h->value_off = (uint32_t)(at - r->text);
    d->in_field = 0;
  }
  h->value_len += (uint32_t)len;
  extend_head(d, at, len);
  return count_head(d, len);
}

static int on_header_value_complete(llhttp_t *p) {
  ml_reader *d = RD(p);
  ml_req *r = d->req;
  ml_hdr *h = &r->hdrs[r->nhdrs - 1];
  const char *t = r->text;
  if (d->trailers)
    return 0;
  d->in_field = 0;
  /* llhttp lets through a space in a name and obsolete line folding (a
   * value running on after CRLF): both are ways to smuggle, both 400 */
  if (!ml_http_name_ok(t + h->name_off, h->name_len) ||
      memchr(t + h->value_off, '\n', h->value_len) != NULL ||
      memchr(t + h->value_off, '\r', h->value_len) != NULL)
    return refuse(d, 400);
  if (ml_strieq(t + h->name_off, h->name_len, "expect")) {
    if (ml_strieq(t + h->value_off, h->value_len, "100-continue"))
      d->expect_continue = 1;
    else
      return refuse(d, 417);
  }
  return 0;
}

/*
 * An absolute-form target (RFC 9112 §3.2.2), "http://host/path": 0 and
 * where its authority lies in the text, or -1 for any other form.
 */
static int target_authority(ml_req *r, uint32_t *off, uint32_t *len) {
  const char *u = r->text + r->url_off, *end = u + r->url_len, *a;
  if (r->url_len < 7 || (u[0] != 'h' && u[0] != 'H'))
    return -1;                 /* most often "/...": no scheme */
  if (ml_strieq(u, 7, "http://"))
    a = u + 7;
  else if (r->url_len >= 8 && ml_strieq(u, 8, "https://"))
    a = u + 8;
  else
    return -1;
  *off = (uint32_t)(a - r->text);
  while (a < end && *a != '/' && *a != '?' && *a != '#')
    a++;
  *len = (uint32_t)(a - r->text) - *off;
  return 0;
}

/*
 * The target's form: origin ("/p"), asterisk ("*", for OPTIONS only),
 * authority (CONNECT's, which no route has), or absolute: then its
 * authority, which must be a valid host, is the Host the app sees, and
 * the target the app sees is its path.  0 or a status to refuse with.
 */
static int check_target(ml_req *r, ml_hdr *host) {
  const char *u = r->text + r->url_off;
  uint32_t off, len;
  if (u[0] == '/' || r->method == HTTP_CONNECT)
    return 0;
  if (r->url_len == 1 && u[0] == '*')
    return r->method == HTTP_OPTIONS ? 0 : 400;
  if (target_authority(r, &off, &len) != 0 || len == 0 ||
      !ml_http_host_ok(r->text + off, len))
    return 400;
  if (host != NULL) {
    host->value_off = off;
    host->value_len = len;
  }
  if (off + len < r->url_off + r->url_len && r->text[off + len] == '/') {
    r->url_len -= off + len - r->url_off;
    r->url_off = off + len;
  }
  return 0;
}

/* One Transfer-Encoding field: chunked is all we decode (501 for other
 * codings), and only once (400); *chunked counts it over the fields. */
static int check_codings(const char *v, size_t n, int *chunked) {
  size_t i = 0, j;
  while (i < n) {
    while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
      i++;
    for (j = i; j < n && v[j] != ',' && v[j] != ' ' && v[j] != '\t'; j++)
      ;
    if (j > i && !ml_strieq(v + i, j - i, "chunked"))
      return 501;
    if (j > i && ++*chunked > 1)
      return 400;
    i = j;
  }
  return 0;
}

/*
 * What llhttp leaves to us in a whole head (RFC 9112 §3.2, §6.1):
 * HTTP/1.1 has exactly one Host, and a Host must be valid; the target has
 * a form we serve; chunked is the only transfer coding, and HTTP/1.0
 * has none.  0 or the status to refuse with.
 */
static int check_head(ml_req *r) {
  ml_hdr *h, *host = NULL;
  int i, hosts = 0, chunked = 0, st;
  for (i = 0; i < r->nhdrs; i++) {
    h = &r->hdrs[i];
    if (h->name_len == 4 && ml_strieq(r->text + h->name_off, 4, "host")) {
      hosts++;
      host = h;
    } else if (h->name_len == 17 &&
               ml_strieq(r->text + h->name_off, 17, "transfer-encoding") &&
               (st = check_codings(r->text + h->value_off, h->value_len,
                                   &chunked)) != 0) {
      return st;
    }
  }
  if (hosts > 1 || (hosts == 0 && r->minor >= 1) ||
      (host != NULL && !ml_http_host_ok(r->text + host->value_off,
                                        host->value_len)))
    return 400;
  if (chunked > 0 && r->minor == 0)
    return 400;
  return check_target(r, host);
}

/* The head is complete: check it and the body's size before reading the
 * body, then pause, for ml_parse_execute to check how the head ended.
 * Header callbacks from now on are for trailers. */
static int on_headers_complete(llhttp_t *p) {
  ml_reader *d = RD(p);
  ml_req *r = d->req;
  int st;
  r->method = p->method;
  r->minor = p->http_minor;
  r->keep_alive = llhttp_should_keep_alive(p) && !p->upgrade;
  if (p->http_major != 1)     /* 0.9 is malformed; 2 and up unsupported */
    return refuse(d, p->http_major == 0 ? 400 : 505);
  if ((st = check_head(r)) != 0)
    return refuse(d, st);
  if ((p->flags & F_CONTENT_LENGTH) &&
      p->content_length > ml_conn_limits(r->conn)->max_body)
    return refuse(d, 413);
  d->head_done = d->trailers = 1;
  return HPE_PAUSED;
}

/* A chunk's size is known before its data: one that cannot fit under
 * max_body is refused now, not after waiting for data that never comes. */
static int on_chunk_header(llhttp_t *p) {
  ml_reader *d = RD(p);
  if (p->content_length > ml_conn_limits(d->req->conn)->max_body -
                          d->body.len)
    return refuse(d, 413);
  return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t len) {
  ml_reader *d = RD(p);
  if (d->body.len + len > ml_conn_limits(d->req->conn)->max_body)
    return refuse(d, 413);
  if (ml_buf_append(&d->body, at, len) != 0)
    return refuse(d, 503);
  ml_conn_request_progress(d->req->conn, 0);  /* a body that keeps coming */
  return 0;
}

/* Pause: the caller serves this request before parsing the next. */
static int on_message_complete(llhttp_t *p) {
  ML_UNUSED(p);
  return HPE_PAUSED;
}

const llhttp_settings_t ml_parse_settings = {
  .on_message_begin = on_message_begin,
  .on_url = on_url,
  .on_header_field = on_header_field,
  .on_header_value = on_header_value,
  .on_header_value_complete = on_header_value_complete,
  .on_headers_complete = on_headers_complete,
  .on_chunk_header = on_chunk_header,
  .on_body = on_body,
  .on_message_complete = on_message_complete,
};

/*
 * The head has been read, up to 'end' (where llhttp paused): llhttp in
 * its strict mode wants a CR before each LF of the head but the last,
 * which must have one too.  That CR is the byte before, or 'before', the
 * last byte of the previous input, when the LF came first in this one.
 * Then a client that waits for 100 Continue gets it.
 */
static int head_read(ml_reader *d, const char *start, const char *end,
                     char before) {
  ml_req *r = d->req;
  llhttp_t *p = &d->parser;
  char cr = end - start >= 2 ? end[-2] : before;
  if (cr != '\r')
    return refuse(d, 400);
  if (d->expect_continue && r->minor >= 1 &&
      ((p->flags & F_CHUNKED) || p->content_length > 0)) {
    ML_BUF_LIT(&r->out, "HTTP/1.1 100 Continue\r\n\r\n");
    ml_conn_flush(r->conn);  /* now: the client waits before the body */
  }
  return 0;
}

/*
 * The request line has one space between its parts; llhttp takes runs of
 * them ("GET  / HTTP/1.1").  Scans what llhttp took of the line, from the
 * message's first byte (past empty lines) to its LF; 'before' is the byte
 * before p.  -1 for two spaces in a row.
 */
static int scan_line(ml_reader *d, const char *p, const char *end,
                     char before) {
  for (; p < end; before = *p++) {
    if (*p == ' ') {
      if (before == ' ')
        return -1;
    } else if (*p == '\n') {
      if (d->line_begun) {
        d->in_line = 0;
        return 0;
      }
    } else if (*p != '\r') {
      d->line_begun = 1;
    }
  }
  return 0;
}

llhttp_errno_t ml_parse_execute(ml_req *r) {
  ml_reader *d = r->rd;
  const char *start, *end = r->text + d->avail, *stop;
  llhttp_errno_t err;
  char before;                 /* the last byte taken before this call */
  for (;;) {
    start = r->text + d->parsed;
    before = d->tail;
    err = llhttp_execute(&d->parser, start, (size_t)(end - start));
    if (err != HPE_OK && err != HPE_PAUSED)
      return err;
    stop = err == HPE_OK ? end : llhttp_get_error_pos(&d->parser);
    if (stop > start)
      d->tail = stop[-1];
    d->parsed = (uint32_t)(stop - r->text);
    if (d->in_line && scan_line(d, start, stop, before) != 0) {
      refuse(d, 400);
      return HPE_USER;
    }
    if (err == HPE_OK || !d->head_done)
      return err;              /* all taken, or a whole request */
    d->head_done = 0;
    if (head_read(d, start, stop, before) != 0)
      return HPE_USER;
    llhttp_resume(&d->parser);
  }
}

/* }====================================================== */

/*
** {======================================================
** The path to route on, and parse errors
** =======================================================
*/

static int hexval(char ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Whether the raw path holds %2F: a '/' that must not split a segment. */
static int has_encoded_slash(const char *u, const char *end) {
  for (; u + 2 < end; u++)
    if (u[0] == '%' && u[1] == '2' && (u[2] == 'F' || u[2] == 'f'))
      return 1;
  return 0;
}

/*
 * Finds the URL's path, the part before '?' or '#', with the scheme and
 * authority of an absolute-form URL skipped.  A plain path is routed
 * where it lies in the request's text; one with %-escapes (or none at
 * all) is decoded into r->path.  When it holds %2F, both %2F and %25 stay
 * encoded (as "%2F" and "%25"), so the router never splits a segment on a
 * '/' the client escaped, and the two can be told apart again by
 * lib_req.c.  Returns -1 for invalid percent-encoding or an
 * encoded NUL, which get a 400.
 */
int ml_parse_path(ml_req *r) {
  const char *t = r->text, *u = t + r->url_off, *end = u + r->url_len, *q;
  ml_buf *path = &r->rd->path;
  uint32_t off, len;
  char *d;
  if (target_authority(r, &off, &len) == 0)
    u = t + off + len;       /* "http://host" with no path: "/" */
  for (q = u; q < end && *q != '?' && *q != '#'; q++)
    ;
  r->enc_slash = 0;
  if (u < q && *u == '/' && memchr(u, '%', (size_t)(q - u)) == NULL) {
    r->decoded = 0;
    r->path_off = (uint32_t)(u - t);
    r->path_len = (uint32_t)(q - u);
    return 0;
  }
  r->decoded = 1;
  path->len = 0;
  r->enc_slash = (unsigned)has_encoded_slash(u, q);
  if (ml_buf_reserve(path, (size_t)(q - u) + 1) != 0)
    return -1;
  d = path->data;
  if (u == q || *u != '/')
    *d++ = '/';
  for (; u < q; u++) {
    int hi, lo;
    if (*u != '%') {
      *d++ = *u;
      continue;
    }
    if (q - u < 3 || (hi = hexval(u[1])) < 0 || (lo = hexval(u[2])) < 0 ||
        (hi == 0 && lo == 0))
      return -1;
    if (r->enc_slash && hi == 2 && (lo == 15 || lo == 5)) {
      memcpy(d, lo == 15 ? "%2F" : "%25", 3);
      d += 3;
    } else {
      *d++ = (char)(hi << 4 | lo);
    }
    u += 2;
  }
  path->len = (size_t)(d - path->data);
  r->path_len = (uint32_t)path->len;
  return 0;
}

/*
 * 501 for a method we do not know but that looks like one (a token of
 * capitals before a space); garbage also fails as a method in llhttp, and
 * gets 400.
 */
static int unknown_method_status(ml_req *r) {
  const char *p = r->text + r->rd->parsed, *end = r->text + r->rd->avail;
  int n = 0;
  while (p < end && (*p == '\r' || *p == '\n'))
    p++;
  for (; p < end && n <= 32; p++, n++) {
    if (*p == ' ')
      return n > 0 ? 501 : 400;
    if (!((*p >= 'A' && *p <= 'Z') || *p == '-' || *p == '_'))
      return 400;
  }
  return 400;
}

int ml_parse_error_status(ml_req *r, llhttp_errno_t err) {
  if (r->rd->err_status != 0)
    return r->rd->err_status;                /* a limit refused it */
  return err == HPE_INVALID_METHOD ? unknown_method_status(r) : 400;
}

/* }====================================================== */
