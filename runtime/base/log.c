/*
 * log.c - the error and access logs.  The error log goes to stderr, one
 * line per message; the access log is buffered and flushed once per line
 * only when it is a terminal, so heavy traffic costs no syscall per line.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "base/log.h"

static int min_level = MOONLET_LOG_INFO;
static FILE *access_file;
static int access_owned;    /* we opened it, so we close it */
static int access_flush;    /* flush each line (a terminal, or a pipe) */

const char *const ml_log_levels[] = { "debug", "info", "warn", "error",
                                      NULL };

/* While on, error log lines go to this buffer instead of stderr (the Lua
 * module's test client reads them as client.log). */
static struct {
  int on;
  char *p;
  size_t len, cap;
} capture;

void ml_log_set_level(int level) {
  min_level = level;
}

int ml_log_enabled(int level) {
  return level >= min_level;
}

/* "2026-01-01T10:00:00Z [warn] " into buf (an unknown level is an
 * error); its length. */
static size_t line_head(int level, char *buf, size_t size) {
  char stamp[32];
  time_t now = time(NULL);
  struct tm tm;
  int n;
  if (level < MOONLET_LOG_DEBUG || level > MOONLET_LOG_ERROR)
    level = MOONLET_LOG_ERROR;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
  n = snprintf(buf, size, "%s [%s] ", stamp, ml_log_levels[level]);
  return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* Appends one line to the capture buffer; -1 (and nothing kept) when
 * memory runs out, so that the caller writes it to stderr instead. */
static int capture_line(const char *head, const char *fmt, va_list ap) {
  va_list ap2;
  size_t hlen = strlen(head), need;
  int n;
  va_copy(ap2, ap);
  n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0)
    return -1;
  need = capture.len + hlen + (size_t)n + 2;
  if (need > capture.cap) {
    size_t cap = capture.cap ? capture.cap : 4096;
    char *p;
    while (cap < need)
      cap *= 2;
    if ((p = realloc(capture.p, cap)) == NULL)
      return -1;
    capture.p = p;
    capture.cap = cap;
  }
  memcpy(capture.p + capture.len, head, hlen);
  vsnprintf(capture.p + capture.len + hlen, (size_t)n + 1, fmt, ap);
  capture.len += hlen + (size_t)n;
  capture.p[capture.len++] = '\n';
  return 0;
}

void ml_log_capture(int on) {
  capture.on = on;
}

char *ml_log_take(size_t *len) {
  char *p = capture.p;
  *len = capture.len;
  capture.p = NULL;
  capture.len = capture.cap = 0;
  return p;
}

void ml_log(int level, const char *fmt, ...) {
  char head[64];
  va_list ap;
  if (level < min_level)
    return;
  line_head(level, head, sizeof head);
  if (capture.on) {
    int rc;
    va_start(ap, fmt);
    rc = capture_line(head, fmt, ap);
    va_end(ap);
    if (rc == 0)
      return;
  }
  fputs(head, stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
}

void ml_log_direct(int level, const char *msg) {
  char line[1024];
  size_t n;
  if (level < min_level)
    return;
  n = line_head(level, line, sizeof line);
  n += (size_t)snprintf(line + n, sizeof line - n, "%s\n", msg);
  if (n >= sizeof line) {             /* cut, but still one whole line */
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  if (write(STDERR_FILENO, line, n) < 0) {
    /* nowhere left to say it */
  }
}

/*
** {======================================================
** The access log
** =======================================================
*/

static char *access_path;    /* for SIGUSR1's reopen; NULL for stdout */
static int access_json;      /* JSON lines, else the combined format */

int ml_log_access_format(const char *name) {
  if (name == NULL || strcmp(name, "combined") == 0)
    access_json = 0;
  else if (strcmp(name, "json") == 0)
    access_json = 1;
  else
    return -1;
  return 0;
}

int ml_log_access_open(const char *path) {
  ml_log_access_close();
  if (path == NULL)
    return 0;
  if (strcmp(path, "-") == 0) {
    access_file = stdout;
    access_owned = 0;
  } else {
    if ((access_file = fopen(path, "a")) == NULL)
      return -errno;
    access_owned = 1;
    if ((access_path = malloc(strlen(path) + 1)) != NULL)
      strcpy(access_path, path);
  }
  /* Tests and `tail -f` read it as it grows: flush per line unless it is
   * a regular file, where the stdio buffer is flushed at exit. */
  access_flush = 1;
  return 0;
}

int ml_log_access_reopen(void) {
  FILE *f;
  if (access_file == NULL || !access_owned || access_path == NULL)
    return 0;                       /* off, or stdout: nothing to do */
  if ((f = fopen(access_path, "a")) == NULL)
    return -errno;                  /* keep writing to the old one */
  fclose(access_file);
  access_file = f;
  return 0;
}

void ml_log_access_close(void) {
  if (access_file != NULL) {
    fflush(access_file);
    if (access_owned)
      fclose(access_file);
  }
  access_file = NULL;
  free(access_path);
  access_path = NULL;
}

int ml_log_access_enabled(void) {
  return access_file != NULL;
}

void ml_log_request_id(uint64_t id, char out[17]) {
  snprintf(out, 17, "%08lx%08lx", (unsigned long)(id >> 32),
           (unsigned long)(id & 0xFFFFFFFFu));
}

/* Writes s[0..n) for the log: '"', '\\' and bytes that are not
 * printable ASCII escaped (\xHH in the combined format, \u00HH in JSON),
 * so that a header cannot forge a line or break a parser. */
static void put_escaped(FILE *f, const char *s, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20 || c >= 0x7F)
      fprintf(f, access_json ? "\\u%04x" : "\\x%02X", c);
    else
      putc(c, f);
  }
}

static void put_quoted(FILE *f, const char *s, size_t n) {
  putc('"', f);
  put_escaped(f, s, n);
  putc('"', f);
}

static void access_combined(const ml_access *a, const char *stamp,
                            const char *id) {
  FILE *f = access_file;
  fprintf(f, "%s - - [%s] \"%s ", a->addr, stamp, a->method);
  put_escaped(f, a->url, a->url_len);  /* the client's bytes */
  fprintf(f, " HTTP/1.%d\" %d %zu ", a->minor, a->status, a->bytes);
  put_quoted(f, a->referer ? a->referer : "-", a->referer ? a->referer_len
                                                          : 1);
  putc(' ', f);
  put_quoted(f, a->agent ? a->agent : "-", a->agent ? a->agent_len : 1);
  fprintf(f, " %s %.3f\n", id, a->seconds);
}

static void access_json_line(const ml_access *a, const char *stamp,
                             const char *id) {
  FILE *f = access_file;
  fprintf(f, "{\"time\":\"%s\",\"remote_addr\":\"%s\",\"method\":\"%s\","
          "\"url\":", stamp, a->addr, a->method);
  put_quoted(f, a->url, a->url_len);
  fprintf(f, ",\"version\":\"1.%d\",\"status\":%d,\"bytes\":%zu,"
          "\"referer\":", a->minor, a->status, a->bytes);
  if (a->referer)
    put_quoted(f, a->referer, a->referer_len);
  else
    fputs("null", f);
  fputs(",\"user_agent\":", f);
  if (a->agent)
    put_quoted(f, a->agent, a->agent_len);
  else
    fputs("null", f);
  fprintf(f, ",\"request_id\":\"%s\",\"duration\":%.3f}\n", id, a->seconds);
}

void ml_log_access(const ml_access *a) {
  static time_t last;
  static int last_json = -1;
  static char stamp[40];
  char id[17];
  time_t now;
  if (access_file == NULL)
    return;
  now = time(NULL);
  if (now != last || last_json != access_json) {  /* one strftime a second */
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, access_json ? "%Y-%m-%dT%H:%M:%SZ"
                                              : "%d/%b/%Y:%H:%M:%S +0000",
             &tm);
    last = now;
    last_json = access_json;
  }
  ml_log_request_id(a->id, id);
  if (access_json)
    access_json_line(a, stamp, id);
  else
    access_combined(a, stamp, id);
  if (access_flush)
    fflush(access_file);
}

/* }====================================================== */
