/*
 * log.h - the error log (stderr, with levels) and the access log (one line
 * per response, to a file or stdout).  Process-wide: one per process.
 */
#ifndef ML_LOG_H
#define ML_LOG_H

#include <stddef.h>
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

/*
 * One access log line in the combined style:
 * ADDR - - [time] "METHOD URL HTTP/x.y" STATUS BYTES SECONDS
 */
void ml_log_access(const char *addr, const char *method, const char *url,
                   size_t url_len, int minor, int status, size_t bytes,
                   double seconds);

/* Level names: "debug" ... "error"; -1 for an unknown name. */
int ml_log_level_from_name(const char *name);

#endif
