/*
 * static.h - app:static's files on the wire: a file under a directory
 * (never outside it), its conditions and ranges, the head, the body with
 * sendfile(2) as the socket takes it.  No Lua: lib_static.c binds it.
 */
#ifndef ML_STATIC_H
#define ML_STATIC_H

#include <stddef.h>
#include <uv.h>
#include "net/conn.h"

typedef struct ml_static_transfer ml_static_transfer;

/* How ml_static_send went; negative codes are failures of ours. */
enum {
  ML_STATIC_SENT = 0,        /* the whole response is queued */
  ML_STATIC_PENDING = 1,     /* its body is being sent: 'done' follows */
  ML_STATIC_NOT_FOUND = 2,   /* no such file: nothing was queued */
  ML_STATIC_REDIRECT = 3,    /* a directory asked for without its slash */
  ML_STATIC_CLOSED = 4       /* the connection failed, and is closing */
};

/*
 * A pending send ended: the body is out (status 0), or the send failed
 * (negative: UV_ECANCELED when the connection closed first), and the
 * connection closes once this returns.  The send is freed after it.
 */
typedef void (*ml_static_done)(ml_static_transfer *s, int status, void *ud);

typedef struct ml_static_lookup ml_static_lookup;

/* A lookup has ended, on the loop: hand it to ml_static_answer. */
typedef void (*ml_static_found)(ml_static_lookup *l, void *ud);

/*
 * Looks for the file 'rel' (n bytes, decoded) under 'root' on libuv's
 * thread pool, so that realpath, stat and open never stall the loop;
 * 'slash' says the request's path ended with '/', which asks for a
 * directory's index.html.  Never a file outside root.  0, and found(*out,
 * ud) follows on the loop unless ml_static_lookup_cancel comes first; or
 * UV_ENOMEM (nothing started).
 */
int ml_static_lookup_start(uv_loop_t *loop, const char *root,
                           const char *rel, size_t n, int slash,
                           ml_static_found found, void *ud,
                           ml_static_lookup **out);

/* Gives up on a lookup (its client left): 'found' never comes; the
 * lookup is freed, with the file it opened, now or when its thread is
 * done. */
void ml_static_lookup_cancel(ml_static_lookup *l);

/*
 * Answers c's request, not answered yet, with the file lookup l found
 * (and frees l): 200, 206, 304 or 416 from the request's conditions and
 * Range; the head goes to c's output, the body follows with sendfile(2).
 * One of the ML_STATIC_ codes; with ML_STATIC_PENDING, *out is the send
 * and done(*out, status, ud) comes once, unless ml_static_cancel comes
 * first.  A negative code is a failure that is not the client's:
 * UV_ENOMEM (the connection closes if the head was queued), or -errno
 * from finding or opening the file (EMFILE ...), with nothing queued.
 */
int ml_static_answer(ml_conn *c, ml_static_lookup *l, ml_static_done done,
                     void *ud, ml_static_transfer **out);

/* Stops a pending send (its client left): the file is closed, the send
 * freed at once, and 'done' never called. */
void ml_static_cancel(ml_static_transfer *s);

#endif
