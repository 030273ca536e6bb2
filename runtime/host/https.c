/*
 * https.c - the server's TLS side (https.h): which certificate and key it
 * uses (the flags', else the app's tls_cert and tls_key options), its
 * listener's context, and reading the pair again after a reload, keeping
 * the old one if the new one does not load.  TLS itself is
 * net/stream.c's.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "base/log.h"
#include "host/https.h"
#include "host/server.h"

/* Owned by the server (its 'https'). */
struct ml_https {
  char *cert, *key;           /* the config's pair (copies), or NULLs */
  ml_tls *tls;                /* the listener's context, or NULL */
  int owned;                  /* tls is ours to free */
  const unsigned char *keys;  /* master.c's ticket keys, or NULL */
};

/* What a client speaking clear text to the TLS port gets, as nginx does
 * (a TLS record never starts with a capital letter). */
static const char plain_reply[] =
  "HTTP/1.1 400 Bad Request\r\n"
  "Content-Type: text/plain; charset=utf-8\r\n"
  "Connection: close\r\n"
  "Content-Length: 54\r\n"
  "\r\n"
  "400 Bad Request: plain HTTP was sent to an HTTPS port\n";

static char *copy(const char *s) {
  return s != NULL ? strdup(s) : NULL;
}

ml_https *ml_https_new(const moonlet_config *cfg) {
  ml_https *h = calloc(1, sizeof *h);
  if (h == NULL)
    return NULL;
  h->cert = copy(cfg->tls_cert);
  h->key = copy(cfg->tls_key);
  if ((cfg->tls_cert != NULL && h->cert == NULL) ||
      (cfg->tls_key != NULL && h->key == NULL)) {
    ml_https_free(h);
    return NULL;
  }
  return h;
}

void ml_https_free(ml_https *h) {
  if (h == NULL)
    return;
  if (h->owned)
    ml_tls_free(h->tls);
  free(h->cert);
  free(h->key);
  free(h);
}

int ml_https_load(const char *cert, const char *key,
                  const unsigned char *keys, ml_tls **out) {
  ml_tls_opts o;
  char err[256];
  memset(&o, 0, sizeof o);
  o.server = 1;
  o.cert = cert;
  o.key = key;
  o.plain_reply = plain_reply;
  o.ticket_keys = keys;
  if ((*out = ml_tls_new(&o, err, sizeof err)) == NULL) {
    ml_log(MOONLET_LOG_ERROR, "%s (certificate %s, key %s)", err, cert,
           key);
    return MOONLET_ETLS;
  }
  return 0;
}

void ml_https_share(moonlet_server *s, ml_tls *tls,
                    const unsigned char *keys) {
  s->https->tls = tls;
  s->https->owned = tls != NULL;
  s->https->keys = keys;
}

void ml_https_use(moonlet_server *s, ml_tls *t) {
  if (s->https->owned)
    ml_tls_free(s->https->tls);
  s->https->tls = t;
  s->https->owned = 0;
}

ml_tls *ml_https_tls(moonlet_server *s) {
  return s->https->tls;
}

/*
 * The pair in force: the flags', else the app's options, as strings on
 * the generation's stack (the caller restores its top, returned), or
 * NULLs.
 */
static int find_pair(moonlet_server *s, const char **cert,
                     const char **key) {
  lua_State *L;
  int top;
  *cert = s->https->cert;
  *key = s->https->key;
  if (s->gen == NULL || *cert != NULL || *key != NULL)
    return 0;
  L = s->gen->L;
  top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, s->gen->app_ref);
  if (lua_istable(L, -1) && lua_getfield(L, -1, "settings") == LUA_TTABLE) {
    lua_getfield(L, -1, "tls_cert");
    lua_getfield(L, -2, "tls_key");
    *cert = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
    *key = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
  }
  return top;
}

static void restore(moonlet_server *s, int top) {
  if (s->gen != NULL)
    lua_settop(s->gen->L, top);
}

int ml_https_listen(moonlet_server *s) {
  ml_https *h = s->https;
  const char *cert, *key;
  int top, rc = 0;
  if (h->tls != NULL)
    return 0;
  top = find_pair(s, &cert, &key);
  if ((cert == NULL) != (key == NULL)) {
    ml_log(MOONLET_LOG_ERROR, "tls: a certificate needs its key, and a "
           "key its certificate (tls_cert %s, tls_key %s)",
           cert ? cert : "missing", key ? key : "missing");
    rc = MOONLET_ETLS;
  } else if (cert != NULL && s->cfg.proxy_protocol) {
    ml_log(MOONLET_LOG_ERROR, "tls: --proxy-protocol does not work with "
           "TLS (the app names a certificate)");
    rc = MOONLET_ETLS;
  } else if (cert != NULL && (rc = ml_https_load(cert, key, h->keys,
                                                 &h->tls)) == 0) {
    h->owned = 1;
  }
  restore(s, top);
  return rc;
}

void ml_https_reread(moonlet_server *s) {
  const char *cert, *key;
  char err[256];
  int top;
  if (s->https->tls == NULL || !s->https->owned)
    return;
  top = find_pair(s, &cert, &key);
  if (cert == NULL || key == NULL)
    ml_log(MOONLET_LOG_ERROR, "tls: the app names no certificate and key "
           "now: keeping the ones loaded");
  else if (ml_tls_reload(s->https->tls, cert, key, err, sizeof err) != 0)
    ml_log(MOONLET_LOG_ERROR, "%s (certificate %s, key %s): keeping the "
           "ones loaded", err, cert, key);
  else
    ml_log(MOONLET_LOG_INFO, "tls: loaded the certificate %s again", cert);
  restore(s, top);
}
