/*
 * proxy.h - HAProxy's PROXY protocol (versions 1 and 2): the header a
 * load balancer sends before the client's bytes, naming the client's
 * address.  A parser of untrusted bytes and a small reader that collects
 * them from a connection's first reads; what the connection does with the
 * result is conn.c's.
 */
#ifndef ML_PROXY_H
#define ML_PROXY_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>

/* The longest header accepted: version 1's 107 bytes, or version 2's 16
 * plus addresses and TLVs.  A longer one is refused. */
#define ML_PROXY_MAX 1024

/* What a header says. */
typedef struct ml_proxy_header {
  int local;                      /* LOCAL, UNKNOWN or not an IP address:
                                     the connection's own peer stands */
  struct sockaddr_storage src;    /* the client, when not 'local' */
  int ssl;                        /* version 2: the client spoke TLS to
                                     the proxy (PP2_TYPE_SSL) */
} ml_proxy_header;

/*
 * Parses the header at the start of p[0..n): its length when whole and
 * valid (*out filled), 0 when more bytes are needed, -1 when these bytes
 * cannot start a valid header.
 */
int ml_proxy_parse(const char *p, size_t n, ml_proxy_header *out);

/* A connection's header while it arrives.  Owned by the connection. */
typedef struct ml_proxy ml_proxy;

ml_proxy *ml_proxy_new(void);
void ml_proxy_free(ml_proxy *px);

/*
 * Takes the connection's next n bytes: how many of them were the header
 * (the rest are the client's), or -1 when the header is bad or missing.
 * Once it is whole, ml_proxy_header gives it; until then NULL.
 */
ssize_t ml_proxy_feed(ml_proxy *px, const char *p, size_t n);
const ml_proxy_header *ml_proxy_result(const ml_proxy *px);

#endif
