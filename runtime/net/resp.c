/*
 * resp.c - RESP2 through hiredis: its reader, given our object functions,
 * builds each reply as a tree of ml_resp nodes (one allocation per
 * value, the string inline), and redisFormatCommandArgv encodes commands.
 *
 * Why a C tree rather than Lua values built by the reader's callbacks:
 * the reader runs in a loop callback where no Lua error may unwind
 * (a longjmp through hiredis would skip its bookkeeping), a reply for a
 * caller that was cancelled is dropped without touching Lua, and this
 * file stays below the Lua layer, so the fuzzer drives it alone.
 */
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <hiredis/read.h>
#include "net/resp.h"

struct ml_resp_reader {
  redisReader *r;
};

/* Links v into its parent array, if it has one. */
static void *attach(const redisReadTask *task, ml_resp *v) {
  if (v != NULL && task->parent != NULL) {
    ml_resp *parent = task->parent->obj;
    parent->elements[task->idx] = v;
  }
  return v;
}

static ml_resp *node(int type, size_t extra) {
  ml_resp *v = malloc(sizeof *v + extra);
  if (v == NULL)
    return NULL;
  v->type = type;
  v->len = 0;
  v->integer = 0;
  v->elements = NULL;
  return v;
}

static void *create_string(const redisReadTask *task, char *s, size_t len) {
  ml_resp *v = node(task->type, len + 1);
  if (v == NULL)
    return NULL;
  memcpy(v->str, s, len);
  v->str[len] = '\0';
  v->len = len;
  return attach(task, v);
}

static void *create_array(const redisReadTask *task, int n) {
  ml_resp *v;
  if (n < 0 || n > ML_RESP_MAX_ELEMENTS || (v = node(ML_RESP_ARRAY, 0)) == NULL)
    return NULL;               /* hiredis calls that out of memory */
  if (n > 0 && (v->elements = calloc((size_t)n, sizeof *v->elements)) == NULL) {
    free(v);
    return NULL;
  }
  v->len = (size_t)n;
  return attach(task, v);
}

static void *create_integer(const redisReadTask *task, long long x) {
  ml_resp *v = node(ML_RESP_INTEGER, 0);
  if (v == NULL)
    return NULL;
  v->integer = x;
  return attach(task, v);
}

static void *create_nil(const redisReadTask *task) {
  return attach(task, node(ML_RESP_NIL, 0));
}

void ml_resp_free(ml_resp *v) {
  size_t i;
  if (v == NULL)
    return;
  if (v->type == ML_RESP_ARRAY) {
    for (i = 0; i < v->len; i++)
      ml_resp_free(v->elements[i]);  /* NULL for an unfinished array */
    free(v->elements);
  }
  free(v);
}

static void free_object(void *p) {
  ml_resp_free(p);
}

static redisReplyObjectFunctions functions = {
  create_string, create_array, create_integer, create_nil, free_object
};

ml_resp_reader *ml_resp_reader_new(void) {
  ml_resp_reader *r = malloc(sizeof *r);
  if (r == NULL)
    return NULL;
  if ((r->r = redisReaderCreateWithFunctions(&functions)) == NULL) {
    free(r);
    return NULL;
  }
  return r;
}

void ml_resp_reader_free(ml_resp_reader *r) {
  if (r == NULL)
    return;
  redisReaderFree(r->r);
  free(r);
}

int ml_resp_feed(ml_resp_reader *r, const char *buf, size_t len) {
  if (r->r->len - r->r->pos + len > ML_RESP_MAX_PENDING)
    return -1;
  return redisReaderFeed(r->r, buf, len) == REDIS_OK ? 0 : -1;
}

int ml_resp_next(ml_resp_reader *r, ml_resp **out) {
  void *reply = NULL;
  *out = NULL;
  if (redisReaderGetReply(r->r, &reply) != REDIS_OK)
    return -1;
  if (reply == NULL)
    return 0;
  *out = reply;
  return 1;
}

const char *ml_resp_error(ml_resp_reader *r) {
  return r->r->err ? r->r->errstr : "bad reply";
}

int ml_resp_format(ml_buf *out, int argc, const char **argv,
                   const size_t *lens) {
  char *cmd = NULL;
  int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
  int rc;
  if (n < 0)
    return -1;
  rc = ml_buf_append(out, cmd, (size_t)n);
  redisFreeCommand(cmd);
  return rc;
}
