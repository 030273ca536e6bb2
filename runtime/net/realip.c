/*
 * realip.c - who a request's client is: the connection's peer (conn.c),
 * then what a trusted proxy says in its headers (forwarded.c).  A header
 * sent twice counts as its lines joined with ", ", as HTTP says.
 */
#include <string.h>
#include "base/util.h"
#include "net/realip.h"

/* One forwarding header's value: the request's line, or its lines joined
 * into 'join' when it came more than once; NULL when absent (or out of
 * memory joining). */
static const char *header(ml_conn *c, const char *name, ml_buf *join,
                          size_t *len) {
  ml_req *r = ml_conn_req(c);
  const char *v = NULL, *p;
  size_t n, plen;
  int i;
  for (i = 0; i < r->nhdrs; i++) {
    p = ml_conn_header_name(c, i, &n);
    if (!ml_strieq(p, n, name))
      continue;
    p = ml_conn_header_value(c, i, &plen);
    if (v == NULL) {
      v = p;
      *len = plen;
      continue;
    }
    if ((join->len == 0 && ml_buf_append(join, v, *len) != 0) ||
        ML_BUF_LIT(join, ", ") != 0 || ml_buf_append(join, p, plen) != 0)
      return NULL;
    v = join->data;
    *len = join->len;
  }
  return v;
}

void ml_realip(ml_conn *c, char *addr, size_t n, int *https) {
  const ml_proxy_header *h = ml_conn_proxy_header(c);
  const ml_trust *t = ml_conn_trust(c);
  ml_buf b[3] = { { NULL, 0, 0 }, { NULL, 0, 0 }, { NULL, 0, 0 } };
  ml_forwarded_in in;
  ml_stream_tls_info tls;
  *https = ml_conn_tls(c, &tls) || (h != NULL && h->ssl);
  ml_conn_peer(c, addr, n);
  if (t == NULL || ml_conn_req(c) == NULL ||
      !ml_trust_text(t, addr, strlen(addr)))
    return;                         /* headers from anyone else: ignored */
  memset(&in, 0, sizeof in);
  in.forwarded = header(c, "forwarded", &b[0], &in.forwarded_len);
  in.xff = header(c, "x-forwarded-for", &b[1], &in.xff_len);
  in.xfp = header(c, "x-forwarded-proto", &b[2], &in.xfp_len);
  ml_forwarded_client(t, &in, addr, n, https);
  ml_buf_free(&b[0]);
  ml_buf_free(&b[1]);
  ml_buf_free(&b[2]);
}
