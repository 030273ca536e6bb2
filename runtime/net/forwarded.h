/*
 * forwarded.h - who the client is behind trusted proxies: the list of
 * proxy addresses to trust (--forwarded-allow-ips) and the headers they
 * add (RFC 7239 Forwarded, X-Forwarded-For, X-Forwarded-Proto).  Strings
 * in, an address and a scheme out: which request they come from is the
 * caller's business.
 */
#ifndef ML_FORWARDED_H
#define ML_FORWARDED_H

#include <stddef.h>
#include <sys/socket.h>

/* Addresses to trust: CIDR ranges, or everyone.  Owned by the server. */
typedef struct ml_trust ml_trust;

/*
 * Parses "127.0.0.1,::1,10.0.0.0/8" (an address alone is a /32 or /128;
 * "*" trusts every peer).  NULL when out of memory or when a part is not
 * an address or range, which *bad then points at (NUL-terminated copy in
 * 'why', of size n).
 */
ml_trust *ml_trust_parse(const char *spec, char *why, size_t n);
void ml_trust_free(ml_trust *t);

/* Whether an address (IPv4, IPv6, or IPv4-mapped IPv6) is trusted. */
int ml_trust_addr(const ml_trust *t, const struct sockaddr *sa);
int ml_trust_text(const ml_trust *t, const char *ip, size_t len);

/* The headers a request brought, as given (NULL when absent). */
typedef struct {
  const char *forwarded;
  size_t forwarded_len;
  const char *xff;              /* X-Forwarded-For */
  size_t xff_len;
  const char *xfp;              /* X-Forwarded-Proto */
  size_t xfp_len;
} ml_forwarded_in;

/*
 * For a request from a trusted peer: walks the proxies' entries from the
 * nearest back while they name trusted addresses; the first one that does
 * not is the client.  Forwarded wins over X-Forwarded-For when both are
 * there.  Writes the client's address (normalized) into addr[n] and
 * returns 1, or returns 0 when the headers name no usable address (addr
 * is left alone).  *https becomes 0 or 1 when a proto was given, else it
 * is left alone.
 */
int ml_forwarded_client(const ml_trust *t, const ml_forwarded_in *in,
                        char *addr, size_t n, int *https);

#endif
