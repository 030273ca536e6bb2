/*
 * resp.h - the Redis protocol (RESP2): replies parsed by hiredis's reader
 * into small C trees, commands encoded by hiredis's redisFormatCommandArgv.
 * No sockets and no Lua: redis.c moves the bytes, lib_redis.c turns the
 * trees into Lua values.
 */
#ifndef ML_RESP_H
#define ML_RESP_H

#include <stddef.h>
#include "base/util.h"

/* hiredis's reply types, by the same numbers. */
enum {
  ML_RESP_STRING = 1, ML_RESP_ARRAY = 2, ML_RESP_INTEGER = 3,
  ML_RESP_NIL = 4, ML_RESP_STATUS = 5, ML_RESP_ERROR = 6
};

#define ML_RESP_MAX_ELEMENTS (1 << 24)   /* per array: larger is refused */
#define ML_RESP_MAX_PENDING (512u << 20) /* unparsed bytes: more is refused */

/*
 * One reply, in one allocation (an array's element list is a second).
 * Owned by whoever took it from the reader; ml_resp_free frees it with
 * its elements.
 */
typedef struct ml_resp ml_resp;
struct ml_resp {
  int type;
  size_t len;              /* a string's bytes, an array's elements */
  long long integer;
  ml_resp **elements;      /* an array's, each non-NULL once complete */
  char str[];              /* STRING, STATUS, ERROR: len bytes and a NUL */
};

typedef struct ml_resp_reader ml_resp_reader;

/* A reader; NULL when out of memory. */
ml_resp_reader *ml_resp_reader_new(void);
void ml_resp_reader_free(ml_resp_reader *r);

/* Adds bytes read from the server; 0, or -1 (out of memory, or more
 * than ML_RESP_MAX_PENDING unparsed bytes). */
int ml_resp_feed(ml_resp_reader *r, const char *buf, size_t len);

/* The next complete reply: 1 and *out (the caller's), 0 when more bytes
 * are needed, -1 when the bytes are not RESP (the connection cannot be
 * used again; ml_resp_error says why). */
int ml_resp_next(ml_resp_reader *r, ml_resp **out);

const char *ml_resp_error(ml_resp_reader *r);

void ml_resp_free(ml_resp *v);

/* Appends the command argv[0..argc) as RESP to out; 0, or -1 when out
 * of memory. */
int ml_resp_format(ml_buf *out, int argc, const char **argv,
                   const size_t *lens);

#endif
