/*
 * conn.h - the server side of HTTP/1.1: a server's connections
 * (ml_hserver), and per connection bytes in, llhttp, the request being
 * served, responses out, keep-alive and timeouts.  No Lua: the layer
 * above serves requests and hears of them through callbacks it
 * registers (ml_conn_cbs).
 */
#ifndef ML_CONN_H
#define ML_CONN_H

#include <stdint.h>
#include <llhttp.h>
#include <uv.h>
#include "base/clock.h"
#include "base/util.h"
#include "net/forwarded.h"
#include "net/proxy.h"
#include "net/stream.h"

typedef struct ml_hserver ml_hserver;
typedef struct ml_conn ml_conn;

/* Limits in force: the host's flags, else the app's options, else the
 * defaults (server.c decides). */
typedef struct ml_limits {
  size_t max_body, max_url, max_headers;
  uint64_t header_timeout_ms, keepalive_timeout_ms, send_timeout_ms;
} ml_limits;

/* A header as offsets from the start of its request's text. */
typedef struct {
  uint32_t name_off, name_len, value_off, value_len;
} ml_hdr;

#define ML_REQ_INLINE_HDRS 4   /* headers held without a malloc */

typedef struct ml_req ml_req;

/*
 * What reading a request takes, conn.c's and parse.c's: llhttp's state,
 * the input kept past a read callback, the body, the decoded path, the
 * first header slots.  It comes from the server's pool with its request
 * and stays with it while the request is read and served; an upgraded
 * request gives it back, its text and headers copied out first, so a
 * WebSocket that waits holds none of it.
 */
typedef struct ml_reader {
  llhttp_t parser;
  ml_req *req;             /* whose */
  ml_buf in;               /* input kept past a read callback; what is
                              before the request's text is consumed, and
                              compacted away once per read */
  ml_buf body;
  ml_buf path;             /* a decoded path: %-escapes, absolute form */
  uint32_t parsed;         /* how much input (from text) llhttp took */
  uint32_t avail;          /* input from text, in either buffer */
  uint32_t head_bytes;     /* counted against max_headers */
  uint32_t head_end;       /* the end of the head in the text */
  int err_status;          /* the answer to a request we refuse */
  int hdrs_cap;            /* room in the request's 'hdrs' */
  unsigned shared : 1;     /* parsing in the server's read buffer */
  unsigned expect_continue : 1;
  unsigned in_field : 1;   /* parse.c: the last header callback was a name */
  unsigned head_done : 1;  /* parse.c: the head is read, not checked */
  unsigned trailers : 1;   /* parse.c: header callbacks are trailers */
  unsigned in_line : 1;    /* parse.c: the request line is being read */
  unsigned line_begun : 1; /* parse.c: ... past any empty lines */
  char tail;               /* parse.c: the last byte llhttp took */
  ml_req *next_free;       /* the server's pool of requests */
  ml_hdr inline_hdrs[ML_REQ_INLINE_HDRS];
} ml_reader;

/*
 * A request being read, served or written.  An idle keep-alive
 * connection holds none: requests come from a per-server pool when bytes
 * arrive and go back once the response is written.  Text fields are
 * offsets from the start of the request's text (ml_conn_url and friends
 * turn them into pointers), which may move: it is parsed in the server's
 * read buffer and copied out only if it must outlive the read.
 */
struct ml_req {
  /* the request, for lib_req.c, static.c and the watchdog */
  int method;              /* llhttp's HTTP_GET ... */
  int minor;               /* HTTP/1.<minor> */
  int nhdrs;
  int status;              /* the status sent, for the access log */
  uint32_t url_off, url_len;
  uint32_t path_off, path_len;  /* the routed path, in the text or in
                                   the reader's 'path' (when decoded) */
  unsigned responded : 1;
  unsigned streaming : 1;  /* the head is sent; the body follows */
  unsigned chunked : 1;    /* ... in chunks (else until close) */
  /* conn.c's own */
  unsigned keep_alive : 1;
  unsigned enc_slash : 1;  /* the path had %2F, kept encoded */
  unsigned decoded : 1;    /* the path is in rd->path, not in the text */
  void *data;              /* the layer above's while it serves the
                              request (lib_req.c: the request object) */
  size_t bytes;            /* body bytes sent */
  uint64_t stream_ping_ms; /* SSE: a comment after this much silence */
  ml_hdr *hdrs;            /* rd's inline slots or its array; once
                              upgraded, shorter ones right after the
                              request, in the block that holds it and
                              its text (read them with the accessors) */
  uint64_t start;          /* uv_now when the head was complete */
  uint64_t id;             /* the request id both logs show (req.id) */
  ml_conn *conn;
  const char *text;        /* the request's text: in rd->in, in the
                              server's read buffer while rd->shared, or
                              after the headers once upgraded */
  ml_buf out;              /* responses waiting to be written */
  ml_reader *rd;           /* NULL once upgraded */
};

/*
 * What the connections tell the layer above, which registers these with
 * ml_conn_hserver_new (server.c; lib_req.c serves).  Each gets its 'ud'.
 */
typedef struct ml_conn_cbs {
  /* A complete request, ml_conn_req(c), to serve.  0 once a handler has
   * it: that one answers through ml_conn_out and ml_conn_responded, and
   * calls ml_conn_served when it has ended.  A negative code refuses the
   * request with a 503. */
  int (*request)(ml_conn *c, void *ud);
  /* c closes while a handler has its request (ml_conn_served has not
   * been called): stop the handler.  c and its request are valid during
   * the call; ml_conn_served must not follow. */
  void (*abort)(ml_conn *c, void *ud);
  /* A connection has gone: its memory is freed. */
  void (*closed)(ml_hserver *h, void *ud);
} ml_conn_cbs;

/* A server's connections on 'loop', whose timeouts run on the real clock
 * 'clock'; NULL when out of memory.  Owned by the host. */
ml_hserver *ml_conn_hserver_new(uv_loop_t *loop, ml_clock *clock,
                                const ml_conn_cbs *cb, void *ud);

/* Frees h and its pools, once every connection is gone (NULL is fine). */
void ml_conn_hserver_free(ml_hserver *h);

/* The limits new requests get, and how many connections may be open at
 * once (0: no cap): the excess is answered 503 and closed. */
void ml_conn_set_limits(ml_hserver *h, const ml_limits *l,
                        int max_connections);

/*
 * Who stands between clients and us: 'trust' (--forwarded-allow-ips,
 * owned by h from now on) are the peers whose word counts; with
 * 'headers' their Forwarded / X-Forwarded-* headers name the client
 * (realip.c), with 'protocol' each new connection must start with a
 * PROXY header from one of them, or is closed.
 */
void ml_conn_set_proxy(ml_hserver *h, ml_trust *trust, int headers,
                       int protocol);

/* Connections open (until their memory is freed). */
int ml_conn_count(ml_hserver *h);

/* Accepts a connection from the listening stream, speaking TLS with the
 * server context 'tls' (or plain with NULL); logs its failures. */
void ml_conn_accept(ml_hserver *h, uv_stream_t *listener, ml_tls *tls);

/* The URL of the request, as received. */
const char *ml_conn_url(ml_conn *c, size_t *len);

/* Header i's name and value. */
const char *ml_conn_header_name(ml_conn *c, int i, size_t *len);
const char *ml_conn_header_value(ml_conn *c, int i, size_t *len);

/* The request of a connection (NULL between requests). */
ml_req *ml_conn_req(ml_conn *c);

/* The request's path as routed: percent-decoded but for %2F (see
 * lib_req.c), without the query. */
const char *ml_conn_path(ml_conn *c, size_t *len);

/* The request's body (empty once the request is upgraded: a handshake
 * has none). */
const char *ml_conn_body(ml_conn *c, size_t *len);

/* The request as the error log names it: "GET /x?y HTTP/1.1 (from ADDR,
 * request ID)", the URL cut at 512 bytes. */
void ml_conn_describe(ml_conn *c, char *buf, size_t size);

/* The client's address as text ("-" if unknown): the socket's peer, or
 * the client a PROXY header named.  Forwarding headers: realip.c. */
void ml_conn_peer(ml_conn *c, char *buf, size_t len);

/* --proxy-protocol: the connection's PROXY header, NULL when none. */
const ml_proxy_header *ml_conn_proxy_header(ml_conn *c);

/* --proxy-headers: the peers whose forwarding headers count; NULL when
 * off. */
const ml_trust *ml_conn_trust(ml_conn *c);

/* Whether the request can keep the connection open. */
int ml_conn_keep_alive(ml_conn *c);

/* The buffer a response head and body are appended to. */
ml_buf *ml_conn_out(ml_conn *c);

/*
 * The response has been appended to ml_conn_out: records it for the log,
 * and closes the connection after it when 'close' is set.
 */
void ml_conn_responded(ml_conn *c, int status, size_t bytes, int close);

/*
 * The handler serving the request has ended: its response leaves, and
 * the connection goes on with the next request.  One that never
 * responded gets a 500.  The request's 'data' must be cleared first.
 */
void ml_conn_served(ml_conn *c);

/*
** Output while a handler runs (streams, files): what is appended to
** ml_conn_out leaves with ml_conn_flush; a writer that must not buffer
** without bound waits for the output to drain.
*/

/* Sends what is queued in ml_conn_out now. */
void ml_conn_flush(ml_conn *c);

/* Bytes queued or being written. */
size_t ml_conn_pending(ml_conn *c);

/*
 * A wait for a connection's output to drain, embedded in the waiter's own
 * operation (as a uv_write_t is).  Its callback runs once, when the
 * bytes queued or being written are 'low' or fewer (status 0), or when
 * the connection closes first (UV_ECANCELED: after the abort, so a
 * handler the abort cancelled has stopped its wait and is not called).
 * Any number may wait on one connection; they are called in order.  A
 * 'low' of (size_t)-1 is met at the next check (a write completing):
 * mostly, it hears of the close.
 */
typedef struct ml_drain ml_drain;
typedef void (*ml_drain_cb)(ml_drain *d, int status);
struct ml_drain {
  ml_conn *c;              /* the connection; NULL once called back */
  size_t low;
  ml_drain_cb cb;
  ml_drain *next;          /* the connection's waiters */
};

/* Starts d waiting for c's output to drain to 'low' bytes; c must not be
 * closing (ml_conn_closing).  The callback never runs from inside this
 * call; it may from inside ml_conn_flush, when the output drains at once
 * there. */
void ml_conn_drain_wait(ml_conn *c, ml_drain *d, size_t low,
                        ml_drain_cb cb);

/* Stops a wait: its callback will not run (a no-op once it has). */
void ml_conn_drain_stop(ml_drain *d);

/* The socket's descriptor for sendfile, or -1 (TLS: the bytes must go
 * through OpenSSL; or closed). */
int ml_conn_fd(ml_conn *c);

/* 1 on a TLS connection, with what was negotiated in *info (fields valid
 * while c is); 0 on plain TCP. */
int ml_conn_tls(ml_conn *c, ml_stream_tls_info *info);

/* The real clock the connection's timeouts run on. */
ml_clock *ml_conn_clock(ml_conn *c);

/* A stream wrote: an idle stream's keep-alive comment comes 'ms' after
 * the last write (0: none). */
void ml_conn_stream_idle(ml_conn *c, uint64_t ms);

/* For parse.c: a request's first byte (begun = 1), or more of its body,
 * arrived; the header timeout runs from now. */
void ml_conn_request_progress(ml_conn *c, int begun);

/* For parse.c: the limits in force. */
const struct ml_limits *ml_conn_limits(ml_conn *c);

/* Whether the connection is closing or gone (writes are pointless). */
int ml_conn_closing(ml_conn *c);

/* Refuses the request before any handler runs: status, then close. */
void ml_conn_reject(ml_conn *c, int status);

/*
** After a 101 (Switching Protocols) the connection belongs to another
** protocol: its bytes go to the 'read' hook instead of the HTTP parser.
** The request stays being served until its handler ends, which ends the
** connection; meanwhile output still goes through ml_conn_out and
** ml_conn_flush, and the send timeout still applies to it.
*/
typedef struct ml_conn_upgrade {
  /* Bytes arrived; valid during the call only. */
  void (*read)(void *ud, const char *data, size_t len);
  /* The peer ended its side (UV_EOF) or the socket failed: no more
   * reads.  The hook decides whether the connection closes. */
  void (*end)(void *ud, int status);
  /* The server stops gracefully. */
  void (*stop)(void *ud);
  /* The connection is closing or its request is over: forget it.  The
   * last call; it comes before the handler is cancelled. */
  void (*detach)(void *ud);
} ml_conn_upgrade;

/*
 * Hands the connection over: the input after the request's head, and
 * all that follows, goes to up->read (the first bytes before this
 * returns).
 */
void ml_conn_upgrade_to(ml_conn *c, const ml_conn_upgrade *up, void *ud);

/* The 'ud' of the connection's upgrade, or NULL. */
void *ml_conn_upgraded(ml_conn *c);

/* Reading stops (0) or goes on (1): an upgraded protocol's back-pressure
 * on its peer. */
void ml_conn_reading(ml_conn *c, int on);

/* Once what is queued has been written, a FIN: the peer reads the end of
 * our output; reads go on. */
void ml_conn_end_output(ml_conn *c);

/* Graceful stop (every connection): each closes after its next response,
 * or after a short quiet when none comes; with 'force', all close now.
 * Keep-alive ends, and the pools stop keeping what is released. */
void ml_conn_shutdown_all(ml_hserver *h, int force);

/* Graceful stop of one: close after the current (or next) response, or
 * after a short quiet. */
void ml_conn_shutdown(ml_conn *c);

/* Closes now; a handler serving its request is aborted first. */
void ml_conn_close(ml_conn *c);

#endif
