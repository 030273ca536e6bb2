/*
 * tls_ctx.h - TLS contexts: one per set of options, shared by many
 * streams (stream.h), with the options, session tickets and reload.
 */
#ifndef ML_TLS_CTX_H
#define ML_TLS_CTX_H

#include <stddef.h>
#include <openssl/ssl.h>

typedef struct ml_tls ml_tls;

/* A context; owned by whoever made it.  Its fields are tls_ctx.c's;
 * stream.c reads them to start a stream and answer clear text. */
struct ml_tls {
  SSL_CTX *ctx;                     /* swapped by a reload; each SSL holds
                                       its own reference */
  int server;
  char *plain_reply;
  size_t plain_len;
};

typedef struct {
  int server;                 /* 1: a server's context */
  int verify;                 /* client: check the chain and the name */
  const char *ca_file;        /* client: trust this bundle (not the
                                 system's store) */
  const char *cert, *key;     /* a server's pair, or a client cert */
  const char *alpn;           /* client: the one protocol offered
                                 ("http/1.1"), or NULL */
  const char *plain_reply;    /* server: what a clear-text client gets
                                 before the close (NULL: nothing) */
  const unsigned char *ticket_keys;  /* server: ML_TLS_TICKET_KEYS bytes
                                 that processes sharing a port share, so
                                 a session resumes on any of them; NULL:
                                 OpenSSL's own random ones */
} ml_tls_opts;

#define ML_TLS_TICKET_KEYS 80     /* OpenSSL's ticket key block */

/* Fills 'keys' (ML_TLS_TICKET_KEYS bytes) with fresh random ticket keys;
 * 0 or -1. */
int ml_tls_ticket_keys(unsigned char *keys);

/*
 * A context: a client's verifies against the system store (OpenSSL's
 * default paths, so SSL_CERT_FILE and SSL_CERT_DIR apply) unless
 * 'verify' is 0 or 'ca_file' is set, offers ALPN http/1.1 and keeps
 * sessions for resumption; a server's speaks TLS 1.2 and 1.3, selects
 * ALPN http/1.1 (a client offering only other protocols is refused with
 * no_application_protocol) and issues session tickets.  NULL with
 * "tls: <reason>" in err when the files do not load or out of memory.
 */
ml_tls *ml_tls_new(const ml_tls_opts *o, char *err, size_t errlen);

/* Loads a server's new pair into a new SSL_CTX with the old ticket keys,
 * so sessions stay resumable; streams already open keep the old one.
 * 0, or -1 with err set and the old pair kept. */
int ml_tls_reload(ml_tls *t, const char *cert, const char *key, char *err,
                  size_t errlen);

/* Frees the context; streams made with it keep what they need. */
void ml_tls_free(ml_tls *t);

/* The linked OpenSSL's version, e.g. "OpenSSL 3.0.11". */
const char *ml_tls_version(void);

#endif
