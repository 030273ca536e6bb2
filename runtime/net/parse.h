/*
 * parse.h - a request from bytes: llhttp's callbacks fill an ml_req with
 * offsets into its text and enforce the limits; the path it is routed on.
 * conn.c owns the bytes and the connection.
 */
#ifndef ML_PARSE_H
#define ML_PARSE_H

#include <llhttp.h>
#include "net/conn.h"

/* For llhttp_init: the parser must be the 'parser' field of an ml_req
 * whose 'conn' and 'text' are set. */
extern const llhttp_settings_t ml_parse_settings;

/*
 * Runs llhttp over r's input from r->parsed to r->avail, checking on the
 * way what llhttp does not (how a head ends).  HPE_OK: all of it taken;
 * HPE_PAUSED: a whole request, which ends at r->parsed; else the error
 * (ml_parse_error_status says the answer).
 */
llhttp_errno_t ml_parse_execute(ml_req *r);

/*
 * Finds the URL's path, before '?' or '#', past the authority of an
 * absolute-form URL: where it lies in the text when plain, else decoded
 * into r->path (keeping %2F and %25 encoded when the path holds %2F, so
 * that an escaped '/' never splits a segment; lib_req.c undoes
 * that).  Sets path_off/path_len/decoded/enc_slash.  -1 for invalid
 * %-encoding or an encoded NUL: a 400.
 */
int ml_parse_path(ml_req *r);

/* The status to refuse a request with after llhttp_execute failed with
 * err: a limit's (413, 414, 431...), 501 for an unknown method that looks
 * like one, else 400. */
int ml_parse_error_status(ml_req *r, llhttp_errno_t err);

#endif
