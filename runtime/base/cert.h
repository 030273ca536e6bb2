/*
 * cert.h - a throwaway self-signed certificate, made with libcrypto: what
 * moonlet.testing serves an app over TLS with.  Never for production.
 */
#ifndef ML_CERT_H
#define ML_CERT_H

#include "base/util.h"

/*
 * A new P-256 key and a certificate for "localhost", 127.0.0.1 and ::1,
 * signed by that key and valid from an hour ago for two days, appended
 * to 'cert' and 'key' as PEM.  0, or -1 (out of memory; then the buffers
 * hold nothing new worth keeping).
 */
int ml_cert_throwaway(ml_buf *cert, ml_buf *key);

#endif
