/*
 * router.c - the route table: parses Werkzeug-style patterns into a trie of
 * path segments (static children sorted for binary search, one child per
 * converter) and matches request paths against it by backtracking, without
 * allocating.  See router.h for the rules.
 */
#include <limits.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <llhttp.h>
#include "base/router.h"

#define MAX_STEPS 16384  /* nodes one search may visit */
#define FLOAT_BUF 128    /* longest float text + 1 */
#define NRANKS 4         /* converters in the order they are tried */
#define RANK_PATH 3
#define BIT(m) (1ULL << (m))

#define METHOD_BIT(num, name, string) | BIT(num)
static const uint64_t known_methods = 0 HTTP_ALL_METHOD_MAP(METHOD_BIT);

static const ml_conv rank_conv[NRANKS] = {
  ML_CONV_INT, ML_CONV_FLOAT, ML_CONV_STRING, ML_CONV_PATH
};

typedef struct {
  uint64_t methods;
  int id;
  char *namebuf;  /* the parameter names, NUL-separated */
  const char *names[ML_ROUTER_MAX_PARAMS];
} route;

typedef struct node node;

struct node {
  node **statics;      /* static children, sorted by label */
  int nstatics;
  node *conv[NRANKS];  /* converter children, by rank */
  route *routes[2];    /* [1]: the pattern ended with '/' */
  int nroutes[2];
  size_t lablen;
  char label[];        /* this node's static segment, if any */
};

struct ml_router {
  node *root;
  uint64_t methods;   /* every route's, together: for "OPTIONS *" */
};

/* One segment of a parsed pattern: static text (rank -1) or a converter. */
typedef struct {
  const char *s;  /* the text, or the parameter's name */
  size_t len;
  int rank;
} pseg;

typedef struct {
  pseg seg[ML_ROUTER_MAX_SEGMENTS];
  int nseg;
  int nparams;
  int slash;
} parsed;

/* The state of one match: the path split into segments, and the result. */
typedef struct {
  const char *path;
  size_t start[ML_ROUTER_MAX_SEGMENTS + 1];  /* segment i is start[i] to
                                                start[i + 1] - 1 */
  int nseg;
  int slash;
  uint64_t want;  /* the method bits that count as a match */
  uint64_t allow;
  long steps;
  const route *found;
  int redirect;   /* found: the path with a '/' added */
  int np;
  ml_param *params;
} search;

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
  va_list ap;

  if (err && errlen) {
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
  }
  return -1;
}

/* ---- the tree ---- */

static node *new_node(const char *label, size_t len)
{
  node *n = calloc(1, sizeof *n + len + 1);

  if (n) {
    memcpy(n->label, label, len);
    n->lablen = len;
  }
  return n;
}

static void free_node(node *n)
{
  int k;

  if (!n)
    return;
  for (k = 0; k < n->nstatics; k++)
    free_node(n->statics[k]);
  for (k = 0; k < NRANKS; k++)
    free_node(n->conv[k]);
  for (k = 0; k < 2; k++) {
    while (n->nroutes[k] > 0)
      free(n->routes[k][--n->nroutes[k]].namebuf);
    free(n->routes[k]);
  }
  free(n->statics);
  free(n);
}

static int label_cmp(const node *c, const char *s, size_t len)
{
  size_t k = c->lablen < len ? c->lablen : len;
  int d = memcmp(c->label, s, k);

  if (d)
    return d;
  return (c->lablen > len) - (c->lablen < len);
}

/* Binary search of n's static children; *at gets the insertion point. */
static node *find_static(const node *n, const char *s, size_t len, int *at)
{
  int lo = 0, hi = n->nstatics, mid, d;

  while (lo < hi) {
    mid = lo + (hi - lo) / 2;
    d = label_cmp(n->statics[mid], s, len);
    if (d == 0)
      return n->statics[mid];
    if (d < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (at)
    *at = lo;
  return NULL;
}

/* The static child of n labelled s, created if missing; NULL when out of
   memory. */
static node *static_child(node *n, const char *s, size_t len)
{
  int at = 0;
  node *c = find_static(n, s, len, &at), **v;

  if (c)
    return c;
  v = realloc(n->statics, (size_t)(n->nstatics + 1) * sizeof *v);
  if (!v)
    return NULL;
  n->statics = v;
  c = new_node(s, len);
  if (!c)
    return NULL;
  memmove(v + at + 1, v + at, (size_t)(n->nstatics - at) * sizeof *v);
  v[at] = c;
  n->nstatics++;
  return c;
}

static node *conv_child(node *n, int rank)
{
  if (!n->conv[rank])
    n->conv[rank] = new_node("", 0);
  return n->conv[rank];
}

/* Appends a route to the end node n; -1 when out of memory. */
static int append_route(node *n, const parsed *p, uint64_t methods, int id)
{
  route *v = realloc(n->routes[p->slash],
                     (size_t)(n->nroutes[p->slash] + 1) * sizeof *v), *r;
  size_t size = 1;
  char *q;
  int k, np = 0;

  if (!v)
    return -1;
  n->routes[p->slash] = v;
  r = &v[n->nroutes[p->slash]];
  for (k = 0; k < p->nseg; k++)
    size += p->seg[k].rank >= 0 ? p->seg[k].len + 1 : 0;
  r->namebuf = q = malloc(size);
  if (!q)
    return -1;
  for (k = 0; k < p->nseg; k++) {
    if (p->seg[k].rank < 0)
      continue;
    memcpy(q, p->seg[k].s, p->seg[k].len);
    q[p->seg[k].len] = '\0';
    r->names[np++] = q;
    q += p->seg[k].len + 1;
  }
  r->methods = methods;
  r->id = id;
  n->nroutes[p->slash]++;
  return 0;
}

/* ---- patterns ---- */

static int is_name(const char *s, size_t len)
{
  size_t k;

  for (k = 0; k < len; k++) {
    if (!(s[k] == '_' || (s[k] >= 'a' && s[k] <= 'z') ||
          (s[k] >= 'A' && s[k] <= 'Z') || (k > 0 && s[k] >= '0' &&
                                           s[k] <= '9')))
      return 0;
  }
  return len > 0;
}

static int conv_rank(const char *s, size_t len)
{
  static const char *const names[NRANKS] = {"int", "float", "string", "path"};
  int k;

  for (k = 0; k < NRANKS; k++)
    if (strlen(names[k]) == len && memcmp(names[k], s, len) == 0)
      return k;
  return -1;
}

static size_t count_char(const char *s, size_t len, char c)
{
  size_t k, n = 0;

  for (k = 0; k < len; k++)
    n += s[k] == c;
  return n;
}

/* Parses "<name>" or "<conv:name>" (s[0] is '<', s[len - 1] is '>'). */
static int parse_param(const char *pat, const char *s, size_t len,
                       parsed *p, char *err, size_t errlen)
{
  const char *in = s + 1, *colon = memchr(in, ':', len - 2), *name = in;
  size_t namelen = len - 2;
  int rank = 2, k;

  if (colon) {
    rank = conv_rank(in, (size_t)(colon - in));
    if (rank < 0)
      return fail(err, errlen, "unknown converter '%.*s' in route: %s",
                  (int)(colon - in), in, pat);
    name = colon + 1;
    namelen = (size_t)(s + len - 1 - name);
  }
  if (namelen == 0)
    return fail(err, errlen, "empty parameter name in route: %s", pat);
  if (!is_name(name, namelen))
    return fail(err, errlen, "bad parameter name '%.*s' in route: %s",
                (int)namelen, name, pat);
  for (k = 0; k < p->nseg; k++)
    if (p->seg[k].rank >= 0 && p->seg[k].len == namelen &&
        memcmp(p->seg[k].s, name, namelen) == 0)
      return fail(err, errlen, "duplicate parameter name '%.*s' in "
                  "route: %s", (int)namelen, name, pat);
  if (p->nparams == ML_ROUTER_MAX_PARAMS)
    return fail(err, errlen, "more than %d parameters in route: %s",
                ML_ROUTER_MAX_PARAMS, pat);
  p->seg[p->nseg].s = name;
  p->seg[p->nseg].len = namelen;
  p->seg[p->nseg++].rank = rank;
  p->nparams++;
  return 0;
}

/* Parses one non-empty segment of pattern pat into p. */
static int parse_segment(const char *pat, const char *s, size_t len,
                         parsed *p, char *err, size_t errlen)
{
  size_t lt = count_char(s, len, '<'), gt = count_char(s, len, '>');

  if (p->nseg == ML_ROUTER_MAX_SEGMENTS)
    return fail(err, errlen, "more than %d segments in route: %s",
                ML_ROUTER_MAX_SEGMENTS, pat);
  if (lt == 0 && gt == 0) {
    p->seg[p->nseg].s = s;
    p->seg[p->nseg].len = len;
    p->seg[p->nseg++].rank = -1;
    return 0;
  }
  if (lt != 1 || gt != 1 ||
      (const char *)memchr(s, '<', len) > (const char *)memchr(s, '>', len))
    return fail(err, errlen, "unbalanced '<' or '>' in route: %s", pat);
  if (s[0] != '<' || s[len - 1] != '>')
    return fail(err, errlen, "a converter must fill a whole segment in "
                "route: %s", pat);
  return parse_param(pat, s, len, p, err, errlen);
}

static int parse_pattern(const char *pat, parsed *p, char *err,
                         size_t errlen)
{
  const char *s = pat + 1, *end;

  p->nseg = p->nparams = p->slash = 0;
  if (pat[0] != '/')
    return fail(err, errlen, "route must start with '/': %s", pat);
  while (*s) {
    end = strchr(s, '/');
    if (!end)
      end = s + strlen(s);
    if (end == s)
      return fail(err, errlen, "empty segment ('//') in route: %s", pat);
    if (parse_segment(pat, s, (size_t)(end - s), p, err, errlen) < 0)
      return -1;
    if (end[0] == '/' && end[1] == '\0')
      p->slash = 1;
    s = *end ? end + 1 : end;
  }
  return 0;
}

/* ---- the public side of adding ---- */

/* Creates a router with an empty root, or returns NULL. */
ml_router *ml_router_new(void)
{
  ml_router *r = calloc(1, sizeof *r);

  if (r && !(r->root = new_node("", 0))) {
    free(r);
    r = NULL;
  }
  return r;
}

/* Frees the router, its tree and the parameter names. */
void ml_router_free(ml_router *r)
{
  if (r) {
    free_node(r->root);
    free(r);
  }
}

static llhttp_method_t lowest_method(uint64_t mask)
{
  int b = 0;

  while (!(mask & BIT(b)))
    b++;
  return (llhttp_method_t)b;
}

/* Walks down the tree for p, creating the nodes missing; NULL when out of
   memory. */
static node *end_node(ml_router *r, const parsed *p)
{
  node *n = r->root;
  int k;

  for (k = 0; n && k < p->nseg; k++)
    n = p->seg[k].rank < 0 ? static_child(n, p->seg[k].s, p->seg[k].len)
                           : conv_child(n, p->seg[k].rank);
  return n;
}

/* Adds a route; see router.h. */
int ml_router_add(ml_router *r, const char *pattern, uint64_t methods,
                  int route_id, char *err, size_t errlen)
{
  parsed p;
  node *n;
  int k;
  uint64_t both;

  if (!pattern || parse_pattern(pattern, &p, err, errlen) < 0)
    return pattern ? -1 : fail(err, errlen, "no route pattern");
  if (!methods || (methods & ~known_methods))
    return fail(err, errlen, "%s HTTP methods for route: %s",
                methods ? "unknown" : "no", pattern);
  n = end_node(r, &p);
  if (!n)
    return fail(err, errlen, "out of memory");
  for (k = 0; k < n->nroutes[p.slash]; k++) {
    both = n->routes[p.slash][k].methods & methods;
    if (both)
      return fail(err, errlen, "route already defined: %s %s",
                  llhttp_method_name(lowest_method(both)), pattern);
  }
  if (append_route(n, &p, methods, route_id) < 0)
    return fail(err, errlen, "out of memory");
  r->methods |= methods;
  return 0;
}

/* ---- matching ---- */

static int parse_int(const char *t, size_t len, long long *out)
{
  long long v = 0;
  size_t k;
  int d;

  for (k = 0; k < len; k++) {
    if (t[k] < '0' || t[k] > '9')
      return 0;
    d = t[k] - '0';
    if (v > (LLONG_MAX - d) / 10)
      return 0;
    v = v * 10 + d;
  }
  *out = v;
  return len > 0;
}

/* Accepts [0-9]+ or [0-9]+.[0-9]+; strtod gets a copy with the locale's
   decimal point, in case the process called setlocale. */
static int parse_float(const char *t, size_t len, double *out)
{
  char buf[FLOAT_BUF], *end;
  size_t k, dot = len;

  if (len == 0 || len >= sizeof buf)
    return 0;
  for (k = 0; k < len; k++) {
    if (t[k] == '.' && dot == len && k > 0 && k + 1 < len)
      dot = k;
    else if (t[k] < '0' || t[k] > '9')
      return 0;
  }
  memcpy(buf, t, len);
  buf[len] = '\0';
  if (dot < len)
    buf[dot] = localeconv()->decimal_point[0];
  *out = strtod(buf, &end);
  return end == buf + len;
}

/* Fills p from segment text t for a converter other than path; 0 when the
   text does not convert. */
static int convert(int rank, const char *t, size_t len, ml_param *p)
{
  p->conv = rank_conv[rank];
  p->s = t;
  p->len = len;
  p->i = 0;
  p->d = 0;
  switch (p->conv) {
  case ML_CONV_INT:
    return parse_int(t, len, &p->i);
  case ML_CONV_FLOAT:
    return parse_float(t, len, &p->d);
  default:
    return len > 0;
  }
}

static size_t seg_len(const search *s, int i)
{
  return s->start[i + 1] - 1 - s->start[i];
}

/* Splits path into s's segments; -1 when there are too many. */
static int split_path(search *s, const char *path, size_t len)
{
  size_t k, end = len;

  s->path = path;
  s->nseg = s->slash = 0;
  if (len == 1)
    return 0;
  if (path[len - 1] == '/') {
    s->slash = 1;
    end = len - 1;
  }
  s->start[s->nseg++] = 1;
  for (k = 1; k < end; k++) {
    if (path[k] != '/')
      continue;
    if (s->nseg == ML_ROUTER_MAX_SEGMENTS)
      return -1;
    s->start[s->nseg++] = k + 1;
  }
  s->start[s->nseg] = end + 1;
  return 0;
}

/* At the end of the path: unions the allowed methods of n's routes and
   takes the first that accepts the method.  Without one, a route here
   for the path with a '/' added wins, as in Werkzeug: the branches left
   to try (a <path> converter, say) are never reached. */
static int at_end(search *s, const node *n)
{
  const route *r = n->routes[s->slash];
  int k;

  for (k = 0; k < n->nroutes[s->slash]; k++) {
    s->allow |= r[k].methods;
    if (r[k].methods & s->want) {
      s->found = &r[k];
      return 1;
    }
  }
  if (s->slash || s->nseg == 0)
    return 0;
  r = n->routes[1];
  for (k = 0; k < n->nroutes[1]; k++)
    if (r[k].methods & s->want)
      return s->redirect = 1;
  return 0;
}

static int search_node(search *s, const node *n, int i);

/* Tries converter child c for segment i. */
static int try_one(search *s, int rank, const node *c, int i)
{
  if (!convert(rank, s->path + s->start[i], seg_len(s, i),
               &s->params[s->np]))
    return 0;
  s->np++;
  if (search_node(s, c, i + 1))
    return 1;
  s->np--;
  return 0;
}

/* Tries path child c on segments i..j, longest first, backtracking to
   shorter spans when the rest of the pattern needs the segments. */
static int try_path(search *s, const node *c, int i)
{
  ml_param *p = &s->params[s->np];
  int j, last = i - 1;

  while (last + 1 < s->nseg && seg_len(s, last + 1) > 0)
    last++;
  for (j = last; j >= i; j--) {
    p->conv = ML_CONV_PATH;
    p->s = s->path + s->start[i];
    p->len = s->start[j + 1] - 1 - s->start[i];
    p->i = 0;
    p->d = 0;
    s->np++;
    if (search_node(s, c, j + 1))
      return 1;
    s->np--;
  }
  return 0;
}

/* Depth-first search from n at segment i: the static child first, then
   the converters by rank; a branch failing deeper falls through to the
   next.  Returns 1 when a route for the method was found. */
static int search_node(search *s, const node *n, int i)
{
  const node *c;
  int rank;

  if (--s->steps < 0)
    return 0;
  if (i == s->nseg)
    return at_end(s, n);
  c = find_static(n, s->path + s->start[i], seg_len(s, i), NULL);
  if (c && search_node(s, c, i + 1))
    return 1;
  for (rank = 0; rank < NRANKS; rank++) {
    c = n->conv[rank];
    if (!c || s->np == ML_ROUTER_MAX_PARAMS)
      continue;
    if (rank == RANK_PATH ? try_path(s, c, i) : try_one(s, rank, c, i))
      return 1;
  }
  return 0;
}

static int run(search *s, const ml_router *r, uint64_t want)
{
  s->want = want;
  s->steps = MAX_STEPS;
  s->found = NULL;
  s->redirect = 0;
  s->np = 0;
  return search_node(s, r->root, 0);
}

static ml_match_kind found(const search *s, ml_match *m)
{
  int k;

  m->route = s->found->id;
  m->nparams = s->np;
  for (k = 0; k < s->np; k++)
    m->params[k].name = s->found->names[k];
  return m->kind = ML_MATCH_FOUND;
}

/* Matches a request; see router.h. */
ml_match_kind ml_router_match(const ml_router *r, int method,
                              const char *path, size_t len, ml_match *m)
{
  search s;
  uint64_t want = method >= 0 && method < 64 ? BIT(method) : 0;

  m->kind = ML_MATCH_NOT_FOUND;
  m->route = -1;
  m->allow = 0;
  m->nparams = 0;
  if (!path || len == 0 || path[0] != '/' || split_path(&s, path, len) < 0)
    return m->kind;
  s.allow = 0;
  s.params = m->params;
  if (run(&s, r, want) || (method == HTTP_HEAD &&
                           (s.allow & BIT(HTTP_GET)) &&
                           run(&s, r, BIT(HTTP_GET))))
    return s.redirect ? (m->kind = ML_MATCH_REDIRECT_SLASH) : found(&s, m);
  if (s.allow) {
    m->allow = s.allow | BIT(HTTP_OPTIONS) |
               (s.allow & BIT(HTTP_GET) ? BIT(HTTP_HEAD) : 0);
    return m->kind = method == HTTP_OPTIONS ? ML_MATCH_OPTIONS
                                            : ML_MATCH_BAD_METHOD;
  }
  if (!s.slash && s.nseg > 0) {
    s.slash = 1;
    if (run(&s, r, ~0ULL))
      m->kind = ML_MATCH_REDIRECT_SLASH;
  }
  return m->kind;
}

/* "OPTIONS *"; see router.h. */
ml_match_kind ml_router_match_server(const ml_router *r, ml_match *m)
{
  m->route = -1;
  m->nparams = 0;
  m->allow = r->methods | BIT(HTTP_OPTIONS) |
             (r->methods & BIT(HTTP_GET) ? BIT(HTTP_HEAD) : 0);
  return m->kind = ML_MATCH_OPTIONS;
}

/* ---- Allow headers ---- */

static size_t append(char *buf, size_t buflen, size_t len, const char *s)
{
  size_t n = strlen(s);

  if (n > buflen - 1 - len)
    n = buflen - 1 - len;
  memcpy(buf + len, s, n);
  return len + n;
}

/* Formats the method names of a mask, sorted, comma-separated. */
size_t ml_router_format_allow(uint64_t allow, char *buf, size_t buflen)
{
  const char *names[64], *t;
  int n = 0, b, k;
  size_t len = 0;

  if (!buf || buflen == 0)
    return 0;
  allow &= known_methods;
  for (b = 0; b < 64; b++)
    if (allow & BIT(b))
      names[n++] = llhttp_method_name((llhttp_method_t)b);
  for (b = 1; b < n; b++)
    for (k = b; k > 0 && strcmp(names[k - 1], names[k]) > 0; k--) {
      t = names[k];
      names[k] = names[k - 1];
      names[k - 1] = t;
    }
  for (k = 0; k < n; k++) {
    len = append(buf, buflen, len, k ? ", " : "");
    len = append(buf, buflen, len, names[k]);
  }
  buf[len] = '\0';
  return len;
}
