/*
 * realip.h - the client of a request, as --proxy-protocol and
 * --proxy-headers say: what req.remote_addr, req.scheme and the access
 * log show.
 */
#ifndef ML_REALIP_H
#define ML_REALIP_H

#include <stddef.h>
#include "net/conn.h"

/*
 * The address (into addr[n], at least 64 bytes) and whether the scheme is
 * https (*https) of the client of c's current request: the socket's peer
 * or the PROXY header's client; then, with --proxy-headers and when that
 * peer is trusted, the client its Forwarded or X-Forwarded-* headers name.
 */
void ml_realip(ml_conn *c, char *addr, size_t n, int *https);

#endif
