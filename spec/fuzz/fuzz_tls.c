/*
 * fuzz_tls.c - the connection harness (fuzz_conn.c) with the server on
 * TLS: each input is sent through an OpenSSL client, so the fuzzed bytes
 * reach the parser through the stream's decrypted path.  Its corpus is
 * the connection fuzzer's (plaintext HTTP).
 */
#define FUZZ_TLS 1
#include "fuzz_conn.c"
