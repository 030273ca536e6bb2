/*
 * pg.c - a PostgreSQL connection on the loop.  libpq speaks the protocol;
 * this file only feeds it: the host is resolved off the loop and given as
 * hostaddr (libpq's own lookup blocks), PQconnectPoll and the query calls
 * run when a uv_poll_t on PQsocket says so, and PQcancel, which blocks,
 * runs on the thread pool.  Deadlines and pools are the caller's.
 *
 * A connection (ml_pg) is owned by whoever opened it (lib_pg.c's pool).
 * Its poll handles are separate allocations: during the handshake libpq
 * may close its socket and open another, so each step gets a fresh
 * handle and the old one closes on its own.  ml_pg_close stops and
 * closes the poll before PQfinish, which runs once every handle, lookup
 * and cancel request has called back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "net/pg.h"
#include "base/log.h"
#include "base/util.h"

enum { ST_RESOLVING, ST_CONNECTING, ST_IDLE, ST_BUSY, ST_CANCELLING,
       ST_BROKEN };

typedef struct pgpoll {
  uv_poll_t h;
  ml_pg *pg;
} pgpoll;

struct ml_pg {
  uv_loop_t *loop;
  PGconn *conn;
  PQconninfoOption *opts;        /* the parsed conninfo, until connected */
  ml_pg_event event;
  void *ud;
  pgpoll *poll;                  /* on the current socket, or NULL */
  int events;                    /* what 'poll' watches */
  int state;
  int pending;                   /* lookups, cancels, handle closes */
  uv_getaddrinfo_t dns;
  uv_work_t work;                /* PQcancel on the thread pool */
  PGcancel *cancel;
  PGresult *result;              /* the query's result so far */
  PGnotify *held;                /* a notification read, not yet taken */
  int inflight;                  /* queries sent, their Sync not yet in */
  unsigned copy_out : 1;         /* reading a COPY TO STDOUT to drop it */
  unsigned closed : 1;
  unsigned refd : 1;             /* keeps the loop alive */
  unsigned resolving : 1;        /* 'dns' in flight */
  unsigned cancelling : 1;       /* 'work' in flight */
  unsigned drained : 1;          /* a cancelled query's results are read */
  char addr[64];                 /* the resolved hostaddr */
  char err[256];
};

static void on_poll(uv_poll_t *h, int status, int events);
static void fail(ml_pg *c, const char *err);

/*
** {======================================================
** Lifetime and the poll
** =======================================================
*/

/* Frees a closed connection once nothing of it is in flight. */
static void maybe_free(ml_pg *c) {
  if (!c->closed || c->pending > 0)
    return;
  if (c->conn != NULL)
    PQfinish(c->conn);
  PQclear(c->result);
  if (c->held != NULL)
    PQfreemem(c->held);
  if (c->opts != NULL)
    PQconninfoFree(c->opts);
  free(c);
}

static void poll_closed(uv_handle_t *h) {
  pgpoll *p = container_of((uv_poll_t *)h, pgpoll, h);
  ml_pg *c = p->pg;
  free(p);
  c->pending--;
  maybe_free(c);
}

/* Stops and closes the current poll handle, if any. */
static void poll_drop(ml_pg *c) {
  pgpoll *p = c->poll;
  if (p == NULL)
    return;
  c->poll = NULL;
  c->events = 0;
  uv_poll_stop(&p->h);
  c->pending++;
  uv_close((uv_handle_t *)&p->h, poll_closed);
}

/* A new handle on libpq's current socket; 0 or -1. */
static int poll_new(ml_pg *c) {
  int fd = PQsocket(c->conn);
  pgpoll *p;
  poll_drop(c);
  if (fd < 0 || (p = malloc(sizeof *p)) == NULL)
    return -1;
  if (uv_poll_init_socket(c->loop, &p->h, fd) != 0) {
    free(p);
    return -1;
  }
  p->pg = c;
  c->poll = p;
  if (!c->refd)
    uv_unref((uv_handle_t *)&p->h);
  return 0;
}

/* Watches for 'events' on the current handle; 0 or -1. */
static int watch(ml_pg *c, int events) {
  if (c->poll == NULL && poll_new(c) != 0)
    return -1;
  if (events == c->events)
    return 0;
  c->events = events;
  return uv_poll_start(&c->poll->h, events, on_poll) == 0 ? 0 : -1;
}

/* Tells the owner; 1 if it closed the connection meanwhile (then c may
 * be freed: the caller returns at once). */
static int emit(ml_pg *c, int ev) {
  int closed;
  c->pending++;                  /* no free inside the callback */
  c->event(c, ev, c->ud);
  c->pending--;
  closed = c->closed;
  maybe_free(c);
  return closed;
}

void ml_pg_close(ml_pg *c) {
  if (c->closed)
    return;
  c->closed = 1;
  poll_drop(c);
  if (c->resolving)
    uv_cancel((uv_req_t *)&c->dns);  /* its callback frees */
  maybe_free(c);
}

void ml_pg_ref(ml_pg *c, int on) {
  c->refd = on != 0;
  if (c->poll == NULL)
    return;
  if (on)
    uv_ref((uv_handle_t *)&c->poll->h);
  else
    uv_unref((uv_handle_t *)&c->poll->h);
}

PGconn *ml_pg_conn(ml_pg *c) {
  return c->conn;
}

void ml_pg_set_ud(ml_pg *c, void *ud) {
  c->ud = ud;
}

const char *ml_pg_error(ml_pg *c) {
  return c->err[0] != '\0' ? c->err : "closed";
}

/* }====================================================== */

/*
** {======================================================
** Errors
** =======================================================
*/

/* libpq's message, first line, without "connection to server ... failed:"
 * and the severity prefix. */
static void first_line(const char *msg, char *out, size_t n) {
  const char *p = strstr(msg, "failed: "), *q;
  size_t len;
  p = p != NULL ? p + 8 : msg;
  if (strncmp(p, "FATAL:  ", 8) == 0)
    p += 8;
  q = strchr(p, '\n');
  len = q != NULL ? (size_t)(q - p) : strlen(p);
  if (len >= n)
    len = n - 1;
  memcpy(out, p, len);
  out[len] = '\0';
}

/* The short error for libpq's message while connecting or connected. */
static void set_error(ml_pg *c, const char *msg) {
  char line[200];
  first_line(msg, line, sizeof line);
  if (strstr(msg, "Connection refused") != NULL)
    snprintf(c->err, sizeof c->err, "connection refused");
  else if (strstr(msg, "timeout expired") != NULL)
    snprintf(c->err, sizeof c->err, "timeout");
  else if (strstr(msg, "authentication") != NULL ||
           strstr(msg, "password") != NULL)
    snprintf(c->err, sizeof c->err, "auth: %s", line);
  else if (c->state < ST_IDLE)
    snprintf(c->err, sizeof c->err, "connect: %s", line);
  else
    snprintf(c->err, sizeof c->err, "closed");
}

/* The connection is unusable: tell the owner, who closes it. */
static void fail(ml_pg *c, const char *err) {
  if (c->state == ST_BROKEN)
    return;
  if (err != NULL && err != c->err)
    snprintf(c->err, sizeof c->err, "%s", err);
  else if (c->err[0] == '\0')
    set_error(c, c->conn != NULL ? PQerrorMessage(c->conn) : "closed");
  c->state = ST_BROKEN;
  poll_drop(c);
  emit(c, ML_PG_BROKEN);
}

/* }====================================================== */

/*
** {======================================================
** Connecting
** =======================================================
*/

/* One PQconnectPoll step, then a fresh handle on whatever socket libpq
 * uses now, watching what it asked for. */
static void connect_step(ml_pg *c, PostgresPollingStatusType st) {
  switch (st) {
  case PGRES_POLLING_OK:
    if (PQsetnonblocking(c->conn, 1) != 0 ||
        !PQenterPipelineMode(c->conn)) {
      fail(c, NULL);
      return;
    }
    PQconninfoFree(c->opts);
    c->opts = NULL;
    c->state = ST_IDLE;
    if (poll_new(c) != 0 || watch(c, UV_READABLE) != 0) {
      fail(c, "closed");
      return;
    }
    emit(c, ML_PG_READY);
    return;
  case PGRES_POLLING_READING:
  case PGRES_POLLING_WRITING:
    if (poll_new(c) != 0 ||
        watch(c, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE))
      fail(c, NULL);
    return;
  default:
    fail(c, NULL);
  }
}

/* The server's notices ("relation already exists, skipping") go to the
 * debug log, not to libpq's default of stderr. */
static void on_notice(void *arg, const char *msg) {
  size_t n = strlen(msg);
  ML_UNUSED(arg);
  if (ml_log_enabled(MOONLET_LOG_DEBUG))
    ml_log(MOONLET_LOG_DEBUG, "postgresql: %.*s", (int)(n > 0 ? n - 1 : 0),
           msg);
}

/* Starts libpq with the parsed options and 'hostaddr' (NULL: none). */
static int start(ml_pg *c, const char *hostaddr) {
  const char *keys[64], *vals[64];
  PQconninfoOption *o;
  int n = 0, has_gss = 0;
  for (o = c->opts; o->keyword != NULL && n < 60; o++) {
    if (o->val == NULL || strcmp(o->keyword, "hostaddr") == 0)
      continue;
    has_gss |= strcmp(o->keyword, "gssencmode") == 0;
    keys[n] = o->keyword;
    vals[n++] = o->val;
  }
  if (hostaddr != NULL) {
    keys[n] = "hostaddr";
    vals[n++] = hostaddr;
  }
  if (!has_gss) {          /* no Kerberos probing unless asked for */
    keys[n] = "gssencmode";
    vals[n++] = "disable";
  }
  keys[n] = vals[n] = NULL;
  c->conn = PQconnectStartParams(keys, vals, 0);
  if (c->conn == NULL) {
    snprintf(c->err, sizeof c->err, "not enough memory");
    return -1;
  }
  if (PQstatus(c->conn) == CONNECTION_BAD) {
    set_error(c, PQerrorMessage(c->conn));
    return -1;
  }
  PQsetNoticeProcessor(c->conn, on_notice, NULL);
  c->state = ST_CONNECTING;
  return 0;
}

static void on_resolved(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  ml_pg *c = container_of(req, ml_pg, dns);
  c->resolving = 0;
  c->pending--;
  if (c->closed) {
    uv_freeaddrinfo(res);
    maybe_free(c);
    return;
  }
  if (status < 0 || res == NULL) {
    snprintf(c->err, sizeof c->err, "dns: %s", uv_strerror(status));
    uv_freeaddrinfo(res);
    fail(c, c->err);
    return;
  }
  uv_ip_name(res->ai_addr, c->addr, sizeof c->addr);
  uv_freeaddrinfo(res);
  if (start(c, c->addr) != 0)
    fail(c, c->err);
  else
    connect_step(c, PGRES_POLLING_WRITING);
}

/* The option 'key' of the parsed conninfo, or NULL. */
static const char *option(ml_pg *c, const char *key) {
  PQconninfoOption *o;
  for (o = c->opts; o->keyword != NULL; o++)
    if (strcmp(o->keyword, key) == 0)
      return o->val;
  return NULL;
}

/* Connects to a numeric address or a socket path now, or looks the
 * name up first; 0, or -1 with c->err set. */
static int resolve(ml_pg *c) {
  const char *host = option(c, "host"), *port = option(c, "port");
  struct sockaddr_in6 a6;
  struct sockaddr_in a4;
  struct addrinfo hints;
  if (option(c, "hostaddr") != NULL)
    return start(c, option(c, "hostaddr"));
  if (host == NULL || host[0] == '/' || host[0] == '@' ||
      uv_ip4_addr(host, 0, &a4) == 0 || uv_ip6_addr(host, 0, &a6) == 0)
    return start(c, host != NULL && host[0] != '/' && host[0] != '@' ?
                    host : NULL);
  if (strchr(host, ',') != NULL) {
    snprintf(c->err, sizeof c->err, "connect: one host per URL");
    return -1;
  }
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  if (uv_getaddrinfo(c->loop, &c->dns, on_resolved, host,
                     port != NULL ? port : "5432", &hints) != 0) {
    snprintf(c->err, sizeof c->err, "dns: cannot start a lookup");
    return -1;
  }
  c->resolving = 1;
  c->pending++;
  c->state = ST_RESOLVING;
  return 0;
}

ml_pg *ml_pg_open(uv_loop_t *loop, const char *conninfo, ml_pg_event event,
                  void *ud, char *err, size_t errlen) {
  ml_pg *c = calloc(1, sizeof *c);
  char *msg = NULL;
  if (c == NULL) {
    snprintf(err, errlen, "not enough memory");
    return NULL;
  }
  c->loop = loop;
  c->event = event;
  c->ud = ud;
  c->refd = 1;
  if ((c->opts = PQconninfoParse(conninfo, &msg)) == NULL) {
    snprintf(err, errlen, "bad url: %s", msg != NULL ? msg : "no memory");
    if (msg != NULL)
      PQfreemem(msg);
    free(c);
    return NULL;
  }
  if (resolve(c) != 0 ||
      (c->state == ST_CONNECTING && watch(c, UV_WRITABLE) != 0)) {
    snprintf(err, errlen, "%s", c->err[0] ? c->err : "closed");
    ml_pg_close(c);
    return NULL;
  }
  return c;
}

/* }====================================================== */

/*
** {======================================================
** Queries
** =======================================================
*/

/*
 * The connection stays in libpq's pipeline mode: each query goes out as
 * its own segment (Parse/Bind/Execute, then a Sync), so a query may be
 * sent while others are still in flight, the server answers them in
 * order, and an error aborts only its own segment.
 */

/* Sends what libpq has buffered; watches for writable while some is
 * left.  0 or -1. */
static int flush(ml_pg *c) {
  int r = PQflush(c->conn);
  if (r < 0)
    return -1;
  return watch(c, r == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

/* Whether a query may be sent now; if not, c->err says why. */
static int can_send(ml_pg *c) {
  if (c->state == ST_IDLE || c->state == ST_BUSY)
    return 1;
  snprintf(c->err, sizeof c->err, "%s",
           c->state == ST_BROKEN ? "closed" : "busy");
  return 0;
}

/* The segment's statements are queued in libpq ('ok' says whether they
 * all were): end it with a Sync and send it.  0 or -1. */
static int segment_end(ml_pg *c, int ok) {
  if (!ok || !PQpipelineSync(c->conn)) {
    snprintf(c->err, sizeof c->err, "%s",
             PQstatus(c->conn) != CONNECTION_OK ? "closed" : "busy");
    return -1;
  }
  c->inflight++;
  c->state = ST_BUSY;
  if (flush(c) != 0) {
    snprintf(c->err, sizeof c->err, "closed");
    return -1;
  }
  return 0;
}

int ml_pg_send(ml_pg *c, const char *sql, int n, const char *const *vals) {
  if (!can_send(c))
    return -1;
  return segment_end(c, PQsendQueryParams(c->conn, sql, n, NULL, vals, NULL,
                                          NULL, 0));
}

int ml_pg_send_prepared(ml_pg *c, const char *name, const char *sql,
                        int prepare, int n, const char *const *vals) {
  int ok = 1;
  if (!can_send(c))
    return -1;
  if (prepare)             /* in the same segment: a failed Prepare
                              aborts the execution, and is its error */
    ok = PQsendPrepare(c->conn, name, sql, n, NULL);
  ok = ok && PQsendQueryPrepared(c->conn, name, n, vals, NULL, NULL, 0);
  return segment_end(c, ok);
}

int ml_pg_inflight(ml_pg *c) {
  return c->inflight;
}

PGresult *ml_pg_take(ml_pg *c) {
  PGresult *r = c->result;
  c->result = NULL;
  return r;
}

/* Keeps the first error result, else the last result. */
static void keep(ml_pg *c, PGresult *r) {
  ExecStatusType st = c->result ? PQresultStatus(c->result) : PGRES_EMPTY_QUERY;
  if (c->result != NULL && (st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE)) {
    PQclear(r);
    return;
  }
  PQclear(c->result);
  c->result = r;
}

/* Reads and drops a COPY TO STDOUT's rows; 1 once it has ended, 0 to
 * wait for more, -1 on a failure. */
static int drop_copy(ml_pg *c) {
  char *buf;
  int n;
  while ((n = PQgetCopyData(c->conn, &buf, 1)) > 0)
    PQfreemem(buf);
  if (n == 0)
    return 0;
  c->copy_out = 0;
  return n == -1 ? 1 : -1;
}

/* Tells the owner a query has ended; 1 if it closed the connection
 * meanwhile. */
static int finish(ml_pg *c) {
  if (c->inflight == 0)
    c->state = ST_IDLE;
  return emit(c, ML_PG_READY);
}

/* A query's segment has ended (its Sync is in); 1 if the owner closed
 * the connection meanwhile.  A cancelled one's result is dropped, and
 * it ends once PQcancel has returned too. */
static int query_end(ml_pg *c) {
  c->inflight--;
  if (c->state == ST_CANCELLING) {
    PQclear(c->result);
    c->result = NULL;
    c->drained = 1;
    if (c->cancelling)
      return 0;
  }
  return finish(c);
}

/* Takes every result that is complete; 'query_end' after each query's
 * Sync.  libpq gives a NULL after each statement's results. */
static void read_results(ml_pg *c) {
  PGresult *r;
  int nulls = 0;
  while (!c->closed && c->inflight > 0 && c->state != ST_BROKEN) {
    if (c->copy_out) {
      int d = drop_copy(c);
      if (d <= 0) {
        if (d < 0)
          fail(c, "closed");
        return;
      }
    }
    if (PQisBusy(c->conn))
      return;
    if ((r = PQgetResult(c->conn)) == NULL) {
      if (++nulls > 1)
        return;                  /* nothing more until input comes */
      continue;
    }
    nulls = 0;
    switch (PQresultStatus(r)) {
    case PGRES_PIPELINE_SYNC:
      PQclear(r);
      if (query_end(c))
        return;                  /* c may be gone */
      break;
    case PGRES_COPY_IN:    /* no rows to give: end it, the error follows */
      PQclear(r);
      if (PQputCopyEnd(c->conn, "COPY FROM STDIN is not supported") < 0 ||
          flush(c) != 0) {
        fail(c, "closed");
        return;
      }
      break;
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
      PQclear(r);
      c->copy_out = 1;
      break;
    default:
      keep(c, r);
    }
  }
}

/* Notifications came with the last input: libpq has no peek, so the
 * first is held here for ml_pg_notifies, and the owner told.  1 if the
 * owner closed the connection meanwhile. */
static int notify(ml_pg *c) {
  if (c->held == NULL && (c->held = PQnotifies(c->conn)) == NULL)
    return 0;
  return emit(c, ML_PG_NOTIFY);
}

PGnotify *ml_pg_notifies(ml_pg *c) {
  PGnotify *n = c->held;
  if (n != NULL) {
    c->held = NULL;
    return n;
  }
  return c->conn != NULL ? PQnotifies(c->conn) : NULL;
}

static void on_poll(uv_poll_t *h, int status, int events) {
  ml_pg *c = container_of(h, pgpoll, h)->pg;
  if (c->closed || c->poll == NULL || &c->poll->h != h)
    return;
  if (status < 0) {
    /* libuv stopped the handle (a socket error, as a refused connect
     * shows): libpq reads the error itself, from SO_ERROR or a read */
    c->events = 0;
    events = UV_READABLE | UV_WRITABLE;
  }
  if (c->state == ST_CONNECTING) {
    connect_step(c, PQconnectPoll(c->conn));
    return;
  }
  if ((events & UV_WRITABLE) && c->state != ST_IDLE && flush(c) != 0) {
    fail(c, "closed");
    return;
  }
  if (!(events & UV_READABLE))
    return;
  if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK) {
    fail(c, "closed");
    return;
  }
  if (notify(c))
    return;
  read_results(c);
  /* libpq parses what came with the results (a NOTIFY of the session's
   * own, one in the same packet) while they are read */
  if (c->closed || c->state == ST_BROKEN || notify(c))
    return;
  if (c->state == ST_IDLE && c->events == 0 &&
      watch(c, UV_READABLE) != 0)
    fail(c, "closed");
}

/* }====================================================== */

/*
** {======================================================
** Cancelling
** =======================================================
*/

static void cancel_work(uv_work_t *w) {
  ml_pg *c = container_of(w, ml_pg, work);
  char buf[256];
  PQcancel(c->cancel, buf, sizeof buf);   /* blocks: a connection of its own */
}

static void cancel_done(uv_work_t *w, int status) {
  ml_pg *c = container_of(w, ml_pg, work);
  ML_UNUSED(status);
  PQfreeCancel(c->cancel);
  c->cancel = NULL;
  c->cancelling = 0;
  c->pending--;
  if (c->closed) {
    maybe_free(c);
    return;
  }
  if (c->state == ST_CANCELLING && c->drained)
    finish(c);
}

int ml_pg_cancel(ml_pg *c) {
  if (c->state != ST_BUSY || c->inflight != 1)
    return -1;
  c->state = ST_CANCELLING;
  c->drained = 0;
  if ((c->cancel = PQgetCancel(c->conn)) == NULL)
    return 0;              /* no cancel: the drain alone ends it */
  if (uv_queue_work(c->loop, &c->work, cancel_work, cancel_done) != 0) {
    PQfreeCancel(c->cancel);
    c->cancel = NULL;
    return 0;
  }
  c->cancelling = 1;
  c->pending++;
  return 0;
}

int ml_pg_idle(ml_pg *c) {
  return c->state == ST_IDLE && !c->closed &&
         PQtransactionStatus(c->conn) == PQTRANS_IDLE;
}

int ml_pg_sound(ml_pg *c) {
  if (!ml_pg_idle(c))
    return 0;
  /* read what is waiting: an EOF or a FATAL from a terminated backend
   * shows here, before a query is lent the connection (the poll would
   * see it too, but maybe not before this turn lends it) */
  if (!PQconsumeInput(c->conn) || PQstatus(c->conn) != CONNECTION_OK)
    return 0;
  return PQtransactionStatus(c->conn) == PQTRANS_IDLE;
}

/* }====================================================== */
