/*
 * http.h - wire helpers shared by the server and (later) the client: status
 * lines, the cached Date header, header name and value checks.
 */
#ifndef ML_HTTP_H
#define ML_HTTP_H

#include <stddef.h>
#include "base/util.h"

/* "OK", "Not Found" ...; "Unknown" for codes we have no text for. */
const char *ml_http_reason(int status);

/*
 * Appends "HTTP/1.1 <status> <reason>\r\nDate: <date>\r\n" to 'out'.  The
 * date string is rebuilt at most once a second.  Returns 0 or -1 (memory).
 */
int ml_http_status_line(ml_buf *out, int status);

/* 1 when s[0..n) is a valid header name (an RFC 9110 token). */
int ml_http_name_ok(const char *s, size_t n);

/* 1 when s[0..n) is a valid Host value (RFC 9110 §7.2): a name, an IPv4
 * address or an IP literal in brackets, then maybe ':' and a port.  Empty
 * is valid (a target with no authority). */
int ml_http_host_ok(const char *s, size_t n);

/* 1 when a header value has no CR, LF or NUL (it could split the head). */
int ml_http_value_ok(const char *s, size_t n);

/* Writes v in decimal at p (room for 20 digits); returns the end. */
char *ml_http_put_size(char *p, size_t v);

/* Appends the decimal form of v; 0 or -1. */
int ml_http_append_size(ml_buf *out, size_t v);

#endif
