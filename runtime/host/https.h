/*
 * https.h - the server's TLS side: which certificate and key it uses (the
 * flags', else the app's tls_cert and tls_key options), the listener's
 * context, and reading the pair again after a reload.
 */
#ifndef ML_HTTPS_H
#define ML_HTTPS_H

#include "moonlet.h"
#include "net/stream.h"

typedef struct ml_https ml_https;

/* The config's pair (copied: cfg may go) and no context yet; NULL when
 * out of memory. */
ml_https *ml_https_new(const moonlet_config *cfg);

/* Frees it and its reference to the context (open streams keep theirs). */
void ml_https_free(ml_https *h);

/*
 * A server context for this pair ('keys': ticket keys shared by the
 * processes of a port, or NULL) into *out.  0, or MOONLET_ETLS with the
 * reason logged.
 */
int ml_https_load(const char *cert, const char *key,
                  const unsigned char *keys, ml_tls **out);

/*
 * --workers (master.c), before moonlet_load: 'tls' is the context the
 * master made before the fork (the server owns it now), or NULL; 'keys'
 * (the master's, kept for the worker's life) are the ticket keys of a
 * context made later from the app's options.
 */
void ml_https_share(moonlet_server *s, ml_tls *tls,
                    const unsigned char *keys);

/* The listener's context: the one given, else one from the flags' pair,
 * else from the app's options; NULL for plain HTTP.  0, or MOONLET_ETLS
 * with the reason logged (a lone certificate or key too). */
int ml_https_listen(moonlet_server *s);

/* The context new connections get, or NULL: plain HTTP. */
ml_tls *ml_https_tls(moonlet_server *s);

/* The Lua module's: connections accepted from now on use 't' (the
 * caller keeps it alive), or clear text (NULL). */
void ml_https_use(moonlet_server *s, ml_tls *t);

/* Reads the pair again into s's context (after a reload, whether the app
 * loaded or not): new connections get it; a pair that does not load is
 * logged and the old one stays. */
void ml_https_reread(moonlet_server *s);

#endif
