/*
 * pg.h - one PostgreSQL connection driven by libpq in non-blocking mode on
 * the loop: the name looked up off the loop, the handshake and every
 * query polled on libpq's socket, a query cancelled from the thread pool.
 * Pure C: pools and what Lua sees are lib_pg.c's.
 */
#ifndef ML_PG_H
#define ML_PG_H

#include <libpq-fe.h>
#include <uv.h>

typedef struct ml_pg ml_pg;

/* What the connection tells its owner (the 'event' callback). */
enum {
  ML_PG_READY,    /* connected, or a query ended: see ml_pg_take */
  ML_PG_NOTIFY,   /* notifications arrived: ml_pg_notifies */
  ML_PG_BROKEN    /* it failed (ml_pg_error says why): close it */
};

typedef void (*ml_pg_event)(ml_pg *c, int ev, void *ud);

/*
 * Starts connecting to 'conninfo' (a URL or key=value string, as libpq
 * takes).  The host is resolved with uv_getaddrinfo and given to libpq as
 * hostaddr, so nothing blocks the loop.  'event' reports READY once
 * connected, or BROKEN.  NULL when it fails at once (a bad conninfo, no
 * memory, a refused socket path), with the short reason in 'err'.
 */
ml_pg *ml_pg_open(uv_loop_t *loop, const char *conninfo, ml_pg_event event,
                  void *ud, char *err, size_t errlen);

/* The next notification (the caller PQfreemems it), or NULL. */
PGnotify *ml_pg_notifies(ml_pg *c);

/*
 * Sends one statement with text parameters (NULL entries are SQL NULL).
 * Queries may be sent while others are in flight (libpq's pipeline
 * mode): each is its own segment, so an error aborts only that query,
 * and READY follows once for each, in the order they were sent.
 * 0, or -1 (ml_pg_error: "busy" while a cancel drains, "closed").
 */
int ml_pg_send(ml_pg *c, const char *sql, int n, const char *const *vals);

/*
 * The same with a named prepared statement: 'prepare' makes it first
 * (PQsendPrepare and the execution in one segment: a failed Prepare's
 * error is the query's), else it runs the one made before.  The server
 * parses and plans the SQL once per connection.
 */
int ml_pg_send_prepared(ml_pg *c, const char *name, const char *sql,
                        int prepare, int n, const char *const *vals);

/* The finished query's result (an error result too): the caller
 * PQclears it.  NULL if the query failed without one (ml_pg_error). */
PGresult *ml_pg_take(ml_pg *c);

/* The queries sent whose READY has not come yet. */
int ml_pg_inflight(ml_pg *c);

/*
 * Abandons the one query in flight: PQcancel runs on the thread pool (it
 * blocks), the rest of its results are read and dropped, and READY comes
 * once the connection is idle again.  0, or -1 unless exactly one query
 * is in flight (PQcancel stops whatever runs: with more queued, it could
 * hit another one).
 */
int ml_pg_cancel(ml_pg *c);

/* Connected, no query in flight and outside a transaction: fit to go
 * back to a pool.  Reads nothing. */
int ml_pg_idle(ml_pg *c);

/* ml_pg_idle, and nothing waiting on the socket says the server has
 * gone: fit to lend.  Reads the socket (one recv). */
int ml_pg_sound(ml_pg *c);

/* The short reason of the last failure: "connection refused", "closed",
 * "auth: ...", "connect: ...", "dns: ...". */
const char *ml_pg_error(ml_pg *c);

/* libpq's connection (for results, notifications and escaping). */
PGconn *ml_pg_conn(ml_pg *c);

/* A new owner for the callbacks (the pool hands connections around). */
void ml_pg_set_ud(ml_pg *c, void *ud);

/*
 * Closes: the poll stops and closes, then PQfinish and free run on a
 * later turn; 'event' is never called again.  Safe from its callbacks.
 */
void ml_pg_close(ml_pg *c);

/* Keeps the loop alive for this connection (1) or not (0: idle). */
void ml_pg_ref(ml_pg *c, int on);

#endif
