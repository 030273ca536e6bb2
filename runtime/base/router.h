/*
 * router.h - compiles Werkzeug-style route patterns into a segment tree and
 * matches a percent-decoded path against it.  Pure C: no Lua, no I/O, no
 * allocation while matching.  Method numbers are llhttp's (HTTP_GET ...).
 */
#ifndef ML_ROUTER_H
#define ML_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#define ML_ROUTER_MAX_PARAMS 16
#define ML_ROUTER_MAX_SEGMENTS 256  /* longer paths are NOT_FOUND */

typedef struct ml_router ml_router;

typedef enum {
  ML_CONV_STRING,  /* <name> or <string:name>: one non-empty segment */
  ML_CONV_INT,     /* <int:name>: [0-9]+ fitting in int64 */
  ML_CONV_FLOAT,   /* <float:name>: [0-9]+ or [0-9]+.[0-9]+ */
  ML_CONV_PATH     /* <path:name>: one or more segments, '/' included */
} ml_conv;

typedef struct {
  const char *name;   /* the parameter's name, owned by the router */
  ml_conv conv;
  const char *s;      /* the matched text, pointing into the matched path */
  size_t len;
  long long i;        /* the value for ML_CONV_INT */
  double d;           /* the value for ML_CONV_FLOAT */
} ml_param;

typedef enum {
  ML_MATCH_FOUND,           /* 'route' and 'params' are set */
  ML_MATCH_NOT_FOUND,       /* 404 */
  ML_MATCH_BAD_METHOD,      /* 405; 'allow' lists what the path accepts */
  ML_MATCH_REDIRECT_SLASH,  /* 308 to the path with a '/' appended */
  ML_MATCH_OPTIONS          /* automatic OPTIONS answer; 'allow' is set */
} ml_match_kind;

/*
 * Matching rules beyond Werkzeug's that callers may rely on:
 * - A converter fills a whole segment: "/a-<x>" is rejected when added.
 *   Patterns have at most ML_ROUTER_MAX_SEGMENTS segments.
 * - At each segment a static child is tried first, then int, float,
 *   string, path; a branch that fails deeper is backtracked.  Parameter
 *   names are not part of a route's position: "/u/<int:id>" and
 *   "/u/<int:uid>" are the same route, so defining both for GET fails.
 * - <path:x> takes one or more non-empty segments and never the trailing
 *   slash: "/f/<path:p>" does not match "/f/a/" (that is "/f/<path:p>/").
 * - <float:x> texts of 128 characters or more do not match.
 * - A route matching the path but not the method does not end the search:
 *   a lower-ranked route on the same path that takes the method wins.
 * - HEAD uses a GET route unless a HEAD route matches the same path; the
 *   match is then FOUND with the GET route's id.
 * - 'allow' is set for BAD_METHOD and OPTIONS only, 0 otherwise.
 * - A search visits at most 16384 tree nodes, so that patterns with
 *   several path converters cannot make one request backtrack for long;
 *   past that it gives up as if nothing had matched.
 */

typedef struct {
  ml_match_kind kind;
  int route;       /* the id given to ml_router_add, when FOUND */
  uint64_t allow;  /* bit (1 << method) per allowed method, with HEAD
                      implied by GET and OPTIONS always present */
  int nparams;
  ml_param params[ML_ROUTER_MAX_PARAMS];
} ml_match;

ml_router *ml_router_new(void);
void ml_router_free(ml_router *r);

/*
 * Adds 'pattern' for the methods in the bit mask 'methods'.  Returns 0, or
 * -1 with a one-line reason in 'err' (bad pattern, unknown converter,
 * duplicate parameter name, too many parameters, a route already defined
 * for that pattern and one of those methods, an empty mask or a bit that
 * is no llhttp method, out of memory).  On error the router is unchanged
 * but for empty tree nodes, and stays usable.
 */
int ml_router_add(ml_router *r, const char *pattern, uint64_t methods,
                  int route, char *err, size_t errlen);

/*
 * Matches 'path' (percent-decoded, starting with '/', not NUL-terminated)
 * for 'method'.  Fills 'm'; the params point into 'path'.  Returns m->kind.
 */
ml_match_kind ml_router_match(const ml_router *r, int method,
                              const char *path, size_t len, ml_match *m);

/*
 * "OPTIONS *" asks about the server as a whole: fills 'm' as an OPTIONS
 * match whose 'allow' is every method some route takes (with HEAD when
 * GET is one, and OPTIONS).  Returns ML_MATCH_OPTIONS.
 */
ml_match_kind ml_router_match_server(const ml_router *r, ml_match *m);

/*
 * Writes "GET, HEAD, OPTIONS" for a mask into buf, names sorted, bits that
 * are not llhttp methods skipped; NUL-terminates within buflen, truncating
 * if needed, and returns the length written (not counting the NUL).
 */
size_t ml_router_format_allow(uint64_t allow, char *buf, size_t buflen);

#endif
