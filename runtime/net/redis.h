/*
 * redis.h - one connection to a Redis server: commands queued in a loop
 * turn go out in one write, replies (net/resp.c) are matched to them in
 * order, AUTH and SELECT go first, and the oldest reply has a deadline.
 * Pure C: sharing, pools and Lua values are lib_redis.c's.
 */
#ifndef ML_REDIS_H
#define ML_REDIS_H

#include <stdint.h>
#include <uv.h>
#include "base/clock.h"
#include "net/resp.h"

typedef struct ml_redis ml_redis;
typedef struct ml_redis_slot ml_redis_slot;

typedef struct {
  /*
   * The reply for a command (a pipeline's n replies as one ARRAY), or
   * NULL and why ("timeout", "closed", "connection refused", "auth: ..."):
   * 'v' is the callee's to free.  Not called for a forgotten slot.
   */
  void (*reply)(ml_redis *c, void *slot_ud, ml_resp *v, const char *err);
  /* A reply no command waits for: a subscribed connection's messages
   * ('v' is the callee's). */
  void (*push)(ml_redis *c, ml_resp *v, void *ud);
  /* The connection failed or was closed; every slot has been told. */
  void (*broken)(ml_redis *c, const char *err, void *ud);
} ml_redis_cbs;

typedef struct {
  const char *host;             /* a name or an address; copied */
  int port;
  const char *user, *password;  /* AUTH, when password is not NULL */
  int db;                       /* SELECT, when not 0 */
  uint64_t connect_ms;          /* bounds connecting and AUTH */
  struct ml_tls *tls;           /* a client TLS context (rediss://), or
                                   NULL; the owner keeps it alive */
} ml_redis_opts;

/*
 * Starts connecting ('clock' carries the deadlines).  Commands may be
 * sent at once: they wait for the connection.  NULL when out of memory.
 */
ml_redis *ml_redis_new(uv_loop_t *loop, ml_clock *clock,
                       const ml_redis_opts *o, const ml_redis_cbs *cb,
                       void *ud);

/*
 * Queues a command's RESP bytes (copied), expecting 'n' replies (a
 * pipeline; 0: none, for SUBSCRIBE, whose replies are pushes).  They go
 * out with everything else queued this loop turn.  'timeout_ms' (0:
 * none) bounds its reply once it is the oldest: past it, every command
 * fails with "timeout" and the connection closes.  The slot, or NULL
 * when out of memory or closed.
 */
ml_redis_slot *ml_redis_send(ml_redis *c, const char *cmd, size_t len,
                             int n, uint64_t timeout_ms, void *slot_ud);

/* The caller of a slot is gone: its reply is read and dropped. */
void ml_redis_forget(ml_redis_slot *s);

/* Replies beyond the slots go to 'push' (a subscribed connection). */
void ml_redis_set_push(ml_redis *c, int on);

/* Closes: pending slots get "closed" (from here), the socket closes,
 * and the connection is freed later.  Idempotent. */
void ml_redis_close(ml_redis *c);

/* Still usable: not failed or closing. */
int ml_redis_ok(ml_redis *c);

/* Connected and AUTH/SELECT done. */
int ml_redis_ready(ml_redis *c);

/* Commands sent or queued whose replies have not all come. */
int ml_redis_waiting(ml_redis *c);

/* Keeps the loop alive (1) or not (0: an idle connection). */
void ml_redis_ref(ml_redis *c, int on);

#endif
