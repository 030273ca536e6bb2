/*
 * log.h - the error log (stderr, with levels) and the access log (one line
 * per response, to a file or stdout).  Process-wide: one per process.
 */
#ifndef ML_LOG_H
#define ML_LOG_H

#include <stddef.h>
#include <stdint.h>
#include "moonlet.h"

/* Messages below 'level' are dropped. */
void ml_log_set_level(int level);
int ml_log_enabled(int level);

/* printf-style line to the error log, prefixed with time and level. */
void ml_log(int level, const char *fmt, ...)
#if defined(__GNUC__)
  __attribute__((format(printf, 2, 3)))
#endif
  ;

/* The same line with one write(2), bypassing stdio: for a thread that
 * must not wait on a lock a stuck thread may hold (the watchdog's). */
void ml_log_direct(int level, const char *msg);

/* While on, ml_log's lines are kept in a buffer instead of going to
 * stderr (ml_log_direct's still go to stderr: it runs on other threads).
 * ml_log_take returns that buffer (malloc'd, the caller frees; NULL when
 * empty) and its length, and starts a new one. */
void ml_log_capture(int on);
char *ml_log_take(size_t *len);

/* Opens the access log ("-" is stdout); 0 or a negative errno. */
int ml_log_access_open(const char *path);
void ml_log_access_close(void);
int ml_log_access_enabled(void);

/* The access log's format: "combined" (or NULL) or "json"; -1 for any
 * other name. */
int ml_log_access_format(const char *name);

/* Opens the access log's file again (SIGUSR1, after logrotate moved it);
 * 0, or a negative errno with the old file kept. */
int ml_log_access_reopen(void);

/* One response, for the access log. */
typedef struct ml_access {
  const char *addr, *method;
  const char *url;             /* as received, with the query */
  size_t url_len;
  int minor, status;           /* HTTP/1.<minor> */
  size_t bytes;                /* body bytes sent */
  double seconds;              /* from the complete head to the response */
  const char *referer, *agent; /* NULL when absent */
  size_t referer_len, agent_len;
  uint64_t id;                 /* the request id, in the error log too */
} ml_access;

/*
 * One access log line.  Combined (nginx's and Apache's), then the request
 * id and the seconds:
 *   ADDR - - [time] "METHOD URL HTTP/1.x" STATUS BYTES "REFERER" "AGENT" ID S
 * or one JSON object a line (time, remote_addr, method, url, version,
 * status, bytes, referer, user_agent, request_id, duration).
 */
void ml_log_access(const ml_access *a);

/* The request id as the logs write it: 16 hex digits. */
void ml_log_request_id(uint64_t id, char out[17]);

/* The levels' names, by MOONLET_LOG_*, then NULL (for luaL_checkoption
 * and the command line). */
extern const char *const ml_log_levels[];

#endif
