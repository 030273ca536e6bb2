/*
 * cert.c - a throwaway self-signed certificate and its key (cert.h), for
 * tests that serve over TLS without files of their own.  libcrypto does
 * the work; nothing here touches a socket.
 */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "base/cert.h"

#define CERT_NAME "localhost"
#define CERT_SAN "DNS:localhost,IP:127.0.0.1,IP:::1"

/* Adds one extension, written as the openssl CLI takes it; 0 or -1. */
static int add_ext(X509 *x, int nid, const char *value) {
  X509V3_CTX ctx;
  X509_EXTENSION *e;
  int rc;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
  if ((e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
    return -1;
  rc = X509_add_ext(x, e, -1) == 1 ? 0 : -1;
  X509_EXTENSION_free(e);
  return rc;
}

/* The certificate's fields but the signature; 0 or -1. */
static int fill(X509 *x, EVP_PKEY *pk) {
  unsigned char serial[16];
  X509_NAME *name = X509_get_subject_name(x);
  BIGNUM *bn;
  int rc;
  if (RAND_bytes(serial, sizeof serial) != 1)
    return -1;
  serial[0] &= 0x7f;                 /* a positive serial number */
  if ((bn = BN_bin2bn(serial, sizeof serial, NULL)) == NULL)
    return -1;
  rc = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL ? 0 : -1;
  BN_free(bn);
  if (rc != 0 || X509_set_version(x, 2) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
      X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400) == NULL ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                 (const unsigned char *)CERT_NAME, -1, -1,
                                 0) != 1 ||
      X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, pk) != 1)
    return -1;
  if (add_ext(x, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
      add_ext(x, NID_subject_alt_name, CERT_SAN) != 0 ||
      add_ext(x, NID_ext_key_usage, "serverAuth") != 0)
    return -1;
  return 0;
}

/* Appends what the memory BIO holds to 'out'; 0 or -1. */
static int take(BIO *b, ml_buf *out) {
  char *p;
  long n = BIO_get_mem_data(b, &p);
  return n > 0 && ml_buf_append(out, p, (size_t)n) == 0 ? 0 : -1;
}

int ml_cert_throwaway(ml_buf *cert, ml_buf *key) {
  EVP_PKEY *pk = EVP_EC_gen("P-256");
  X509 *x = X509_new();
  BIO *bc = BIO_new(BIO_s_mem()), *bk = BIO_new(BIO_s_mem());
  int rc = -1;
  if (pk != NULL && x != NULL && bc != NULL && bk != NULL &&
      fill(x, pk) == 0 && X509_sign(x, pk, EVP_sha256()) > 0 &&
      PEM_write_bio_X509(bc, x) == 1 &&
      PEM_write_bio_PrivateKey(bk, pk, NULL, NULL, 0, NULL, NULL) == 1 &&
      take(bc, cert) == 0 && take(bk, key) == 0)
    rc = 0;
  BIO_free(bc);
  BIO_free(bk);
  X509_free(x);
  EVP_PKEY_free(pk);
  ERR_clear_error();
  return rc;
}
