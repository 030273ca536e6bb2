/*
 * tls_ctx.c - TLS contexts (tls_ctx.h): making and configuring the
 * SSL_CTX a client's or a server's streams share: certificate
 * verification, ALPN, session tickets and resumption, protocol and
 * cipher options, and a server's reload of its pair.  The streams that
 * use a context, its BIO, handshakes, reads and writes are stream.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include "net/stream.h"
#include "net/tls_ctx.h"

static const unsigned char alpn_http[] = "\x08http/1.1";

/* The TLS 1.2 suites a server offers: forward secret AEADs only (1.3's
 * are all of that kind). */
static const char server_ciphers[] =
  "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
  "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
  "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

/* "tls: <reason>" from OpenSSL's error queue (or 'what'), which empties. */
static void tls_errmsg(char *err, size_t errlen, const char *what) {
  unsigned long e = ERR_peek_last_error();
  const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
  if (err != NULL)
    snprintf(err, errlen, "tls: %s%s%s", what, r ? ": " : "", r ? r : "");
  ERR_clear_error();
}

/* Loads a certificate chain and its key; 0, or -1 with err set. */
static int load_pair(SSL_CTX *ctx, const char *cert, const char *key,
                     char *err, size_t errlen) {
  if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
    tls_errmsg(err, errlen, "cannot load the certificate");
    return -1;
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
    tls_errmsg(err, errlen, "cannot load the key");
    return -1;
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    tls_errmsg(err, errlen, "the key does not match the certificate");
    return -1;
  }
  return 0;
}

/* A client's new session (a TLS 1.3 ticket may come after the
 * handshake): to the stream's owner, who then holds the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess) {
  ml_stream *s = SSL_get_app_data(ssl);
  if (s == NULL || s->cb->session == NULL || s->closing)
    return 0;
  s->cb->session(s, sess);
  return 1;
}

static int client_setup(SSL_CTX *ctx, const ml_tls_opts *o, char *err,
                        size_t errlen) {
  size_t n;
  unsigned char alpn[256];
  if (o->verify) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (o->ca_file != NULL
            ? SSL_CTX_load_verify_locations(ctx, o->ca_file, NULL) != 1
            : SSL_CTX_set_default_verify_paths(ctx) != 1) {
      tls_errmsg(err, errlen, "cannot load the CA file");
      return -1;
    }
  }
  if (o->alpn != NULL && (n = strlen(o->alpn)) > 0 && n < sizeof alpn) {
    alpn[0] = (unsigned char)n;
    memcpy(alpn + 1, o->alpn, n);
    SSL_CTX_set_alpn_protos(ctx, alpn, (unsigned)n + 1);  /* 0: done */
  }
  if (o->cert != NULL &&
      load_pair(ctx, o->cert, o->key ? o->key : o->cert, err, errlen) != 0)
    return -1;
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT |
                                      SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  return 0;
}

/* http/1.1 or nothing: a client that offers ALPN without it gets the
 * no_application_protocol alert. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg) {
  ML_UNUSED(ssl);
  ML_UNUSED(arg);
  if (SSL_select_next_proto((unsigned char **)out, outlen, alpn_http,
                            sizeof alpn_http - 1, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_OK;
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int server_setup(SSL_CTX *ctx, const char *cert, const char *key,
                        char *err, size_t errlen) {
  if (cert == NULL || key == NULL) {
    snprintf(err, errlen, "tls: a server needs a certificate and a key");
    return -1;
  }
  if (load_pair(ctx, cert, key, err, errlen) != 0)
    return -1;
  SSL_CTX_set_cipher_list(ctx, server_ciphers);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
                           SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_alpn_select_cb(ctx, on_alpn, NULL);
  SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"moonlet", 7);
  /* sessions resume from tickets only, which hold them for us (and work
   * across processes): none is stored here, as nginx's default does */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER |
                                      SSL_SESS_CACHE_NO_INTERNAL);
  return 0;
}

/* A new SSL_CTX for o (a server's with this cert and key); NULL with err
 * set. */
static SSL_CTX *ctx_new(const ml_tls_opts *o, const char *cert,
                        const char *key, char *err, size_t errlen) {
  SSL_CTX *ctx = SSL_CTX_new(o->server ? TLS_server_method()
                                       : TLS_client_method());
  int rc;
  if (ctx == NULL) {
    tls_errmsg(err, errlen, "cannot make a context");
    return NULL;
  }
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
  rc = o->server ? server_setup(ctx, cert, key, err, errlen)
                 : client_setup(ctx, o, err, errlen);
  if (rc != 0) {
    SSL_CTX_free(ctx);
    return NULL;
  }
  return ctx;
}

ml_tls *ml_tls_new(const ml_tls_opts *o, char *err, size_t errlen) {
  ml_tls *t;
  if (ml_stream_bio_init() != 0 || (t = calloc(1, sizeof *t)) == NULL) {
    snprintf(err, errlen, "tls: not enough memory");
    return NULL;
  }
  t->server = o->server != 0;
  if (o->plain_reply != NULL) {
    t->plain_len = strlen(o->plain_reply);
    if ((t->plain_reply = malloc(t->plain_len + 1)) == NULL) {
      free(t);
      snprintf(err, errlen, "tls: not enough memory");
      return NULL;
    }
    memcpy(t->plain_reply, o->plain_reply, t->plain_len + 1);
  }
  if ((t->ctx = ctx_new(o, o->cert, o->key, err, errlen)) == NULL) {
    ml_tls_free(t);
    return NULL;
  }
  if (t->server && o->ticket_keys != NULL)
    SSL_CTX_set_tlsext_ticket_keys(t->ctx, (void *)o->ticket_keys,
                                   ML_TLS_TICKET_KEYS);
  return t;
}

int ml_tls_ticket_keys(unsigned char *keys) {
  return RAND_bytes(keys, ML_TLS_TICKET_KEYS) == 1 ? 0 : -1;
}

int ml_tls_reload(ml_tls *t, const char *cert, const char *key, char *err,
                  size_t errlen) {
  ml_tls_opts o;
  unsigned char keys[ML_TLS_TICKET_KEYS];
  SSL_CTX *ctx;
  memset(&o, 0, sizeof o);
  o.server = 1;
  if (!t->server || (ctx = ctx_new(&o, cert, key, err, errlen)) == NULL)
    return -1;
  if (SSL_CTX_get_tlsext_ticket_keys(t->ctx, keys, sizeof keys) == 1)
    SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof keys);
  OPENSSL_cleanse(keys, sizeof keys);
  SSL_CTX_free(t->ctx);              /* open streams hold their own ref */
  t->ctx = ctx;
  return 0;
}

void ml_tls_free(ml_tls *t) {
  if (t == NULL)
    return;
  SSL_CTX_free(t->ctx);
  free(t->plain_reply);
  free(t);
}

const char *ml_tls_version(void) {
  static char v[64];
  if (v[0] == '\0')
    snprintf(v, sizeof v, "OpenSSL %s",
             OpenSSL_version(OPENSSL_VERSION_STRING));
  return v;
}
