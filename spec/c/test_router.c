/*
 * test_router.c - the router's tests: pattern parsing and its errors, the
 * converters, precedence and backtracking, methods (405, HEAD, OPTIONS),
 * trailing slashes and the Allow header text.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <llhttp.h>
#include "base/router.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

#define M(x) (1ULL << HTTP_##x)

static char err[256];

static int add(ml_router *r, const char *pattern, uint64_t methods, int id)
{
  err[0] = '\0';
  return ml_router_add(r, pattern, methods, id, err, sizeof err);
}

static ml_match_kind match(const ml_router *r, int method, const char *path,
                           ml_match *m)
{
  return ml_router_match(r, method, path, strlen(path), m);
}

/* The route id a GET of path finds, or -1. */
static int get(const ml_router *r, const char *path)
{
  ml_match m;

  return match(r, HTTP_GET, path, &m) == ML_MATCH_FOUND ? m.route : -1;
}

/* The error text of adding a bad pattern ("" when it was accepted). */
static const char *bad(const char *pattern)
{
  ml_router *r = ml_router_new();

  if (add(r, pattern, M(GET), 1) == 0)
    err[0] = '\0';
  ml_router_free(r);
  return err;
}

TEST(router_static) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/", M(GET), 1), 0);
  CHECK_INT(add(r, "/about", M(GET), 2), 0);
  CHECK_INT(add(r, "/a/b/c", M(GET), 3), 0);
  CHECK_INT(add(r, "/a/b", M(GET), 4), 0);
  CHECK_INT(get(r, "/"), 1);
  CHECK_INT(get(r, "/about"), 2);
  CHECK_INT(get(r, "/a/b/c"), 3);
  CHECK_INT(get(r, "/a/b"), 4);
  CHECK_INT(match(r, HTTP_GET, "/a/b/c", &m), ML_MATCH_FOUND);
  CHECK_INT(m.nparams, 0);
  CHECK_INT(get(r, "/abc"), -1);
  CHECK_INT(get(r, "/a"), -1);
  CHECK_INT(get(r, "/About"), -1);
  CHECK_INT(get(r, "/a/b/c/d"), -1);
  ml_router_free(r);
}

TEST(router_root_and_odd_paths) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/", M(GET), 1), 0);
  CHECK_INT(add(r, "/a", M(GET), 2), 0);
  CHECK_INT(get(r, "/"), 1);
  CHECK_INT(get(r, "//"), -1);
  CHECK_INT(get(r, "//a"), -1);
  CHECK_INT(get(r, "a"), -1);
  CHECK_INT(ml_router_match(r, HTTP_GET, "", 0, &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(ml_router_match(r, HTTP_GET, NULL, 0, &m), ML_MATCH_NOT_FOUND);
  /* the path need not be NUL-terminated */
  CHECK_INT(ml_router_match(r, HTTP_GET, "/ab", 2, &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  ml_router_free(r);
}

TEST(router_string_param) {
  ml_router *r = ml_router_new();
  const char *path = "/user/bob/posts";
  ml_match m;

  CHECK_INT(add(r, "/user/<name>/posts", M(GET), 7), 0);
  CHECK_INT(match(r, HTTP_GET, path, &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 7);
  CHECK_INT(m.nparams, 1);
  CHECK_STR(m.params[0].name, "name");
  CHECK_INT(m.params[0].conv, ML_CONV_STRING);
  CHECK(m.params[0].s == path + 6);
  CHECK_INT(m.params[0].len, 3);
  CHECK_INT(get(r, "/user//posts"), -1);
  CHECK_INT(get(r, "/user/posts"), -1);
  CHECK_INT(get(r, "/user/a/b/posts"), -1);
  CHECK_INT(add(r, "/s/<string:word>", M(GET), 8), 0);
  CHECK_INT(match(r, HTTP_GET, "/s/caf\xc3\xa9 x", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].len, 7);
  CHECK_STR(m.params[0].name, "word");
  ml_router_free(r);
}

TEST(router_int_param) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/sleep/<int:n>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/sleep/42", &m), ML_MATCH_FOUND);
  CHECK_STR(m.params[0].name, "n");
  CHECK_INT(m.params[0].conv, ML_CONV_INT);
  CHECK_INT(m.params[0].i, 42);
  CHECK_INT(m.params[0].len, 2);
  CHECK_INT(match(r, HTTP_GET, "/sleep/007", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].i, 7);
  CHECK_INT(match(r, HTTP_GET, "/sleep/0", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].i, 0);
  CHECK_INT(match(r, HTTP_GET, "/sleep/abc", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(get(r, "/sleep/-1"), -1);
  CHECK_INT(get(r, "/sleep/+1"), -1);
  CHECK_INT(get(r, "/sleep/1.5"), -1);
  CHECK_INT(get(r, "/sleep/12a"), -1);
  CHECK_INT(get(r, "/sleep/ 1"), -1);
  CHECK_INT(get(r, "/sleep/"), -1);
  ml_router_free(r);
}

TEST(router_int_overflow) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/n/<int:n>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/n/9223372036854775807", &m),
            ML_MATCH_FOUND);
  CHECK(m.params[0].i == 9223372036854775807LL);
  CHECK_INT(get(r, "/n/9223372036854775808"), -1);
  CHECK_INT(get(r, "/n/99999999999999999999"), -1);
  CHECK_INT(get(r, "/n/123456789012345678901234567890"), -1);
  ml_router_free(r);
}

TEST(router_float_param) {
  ml_router *r = ml_router_new();
  ml_match m;
  char path[200];

  CHECK_INT(add(r, "/f/<float:x>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/f/1.5", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].conv, ML_CONV_FLOAT);
  CHECK(m.params[0].d == 1.5);
  CHECK_INT(m.params[0].len, 3);
  CHECK_INT(match(r, HTTP_GET, "/f/3", &m), ML_MATCH_FOUND);
  CHECK(m.params[0].d == 3.0);
  CHECK_INT(match(r, HTTP_GET, "/f/0.25", &m), ML_MATCH_FOUND);
  CHECK(m.params[0].d == 0.25);
  CHECK_INT(get(r, "/f/1."), -1);
  CHECK_INT(get(r, "/f/.5"), -1);
  CHECK_INT(get(r, "/f/1.2.3"), -1);
  CHECK_INT(get(r, "/f/1e5"), -1);
  CHECK_INT(get(r, "/f/-1.5"), -1);
  CHECK_INT(get(r, "/f/inf"), -1);
  CHECK_INT(get(r, "/f/nan"), -1);
  CHECK_INT(get(r, "/f/0x10"), -1);
  memcpy(path, "/f/", 3);
  memset(path + 3, '1', 150);
  path[153] = '\0';
  CHECK_INT(get(r, path), -1);  /* too long for the copy: no match */
  ml_router_free(r);
}

TEST(router_path_param) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/files/<path:p>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/files/a/b/c.txt", &m), ML_MATCH_FOUND);
  CHECK_STR(m.params[0].name, "p");
  CHECK_INT(m.params[0].conv, ML_CONV_PATH);
  CHECK_INT(m.params[0].len, 9);
  CHECK(strncmp(m.params[0].s, "a/b/c.txt", 9) == 0);
  CHECK_INT(match(r, HTTP_GET, "/files/a", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].len, 1);
  CHECK_INT(get(r, "/files"), -1);
  CHECK_INT(get(r, "/files/"), -1);
  CHECK_INT(get(r, "/files/a/"), -1);     /* never the trailing slash */
  CHECK_INT(get(r, "/files/a//b"), -1);   /* nor empty segments */
  CHECK_INT(add(r, "/dirs/<path:p>/", M(GET), 2), 0);
  CHECK_INT(match(r, HTTP_GET, "/dirs/a/b/", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  CHECK_INT(m.params[0].len, 3);
  ml_router_free(r);
}

TEST(router_path_backtracks) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/files/<path:p>/edit", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/files/a/b/edit", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].len, 3);
  CHECK(strncmp(m.params[0].s, "a/b", 3) == 0);
  CHECK_INT(match(r, HTTP_GET, "/files/edit/edit", &m), ML_MATCH_FOUND);
  CHECK_INT(m.params[0].len, 4);
  CHECK_INT(get(r, "/files/edit"), -1);
  CHECK_INT(get(r, "/files/a/b"), -1);
  CHECK_INT(add(r, "/<path:a>/x/<path:b>", M(GET), 2), 0);
  CHECK_INT(match(r, HTTP_GET, "/1/2/x/3/x/4", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  CHECK_INT(m.nparams, 2);
  CHECK_STR(m.params[0].name, "a");
  CHECK_INT(m.params[0].len, 7);   /* greedy: "1/2/x/3" */
  CHECK(strncmp(m.params[1].s, "4", 1) == 0);
  CHECK_INT(m.params[1].len, 1);
  ml_router_free(r);
}

TEST(router_path_and_static_siblings) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/static/<path:p>", M(GET), 1), 0);
  CHECK_INT(add(r, "/static/app.js", M(GET), 2), 0);
  CHECK_INT(add(r, "/static/<name>", M(GET), 3), 0);
  CHECK_INT(get(r, "/static/app.js"), 2);
  CHECK_INT(get(r, "/static/other.js"), 3);
  CHECK_INT(match(r, HTTP_GET, "/static/app.js/x", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 1);
  CHECK_INT(m.params[0].len, 8);
  ml_router_free(r);
}

TEST(router_static_beats_param_added_after) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/user/<name>", M(GET), 1), 0);
  CHECK_INT(add(r, "/user/new", M(GET), 2), 0);
  CHECK_INT(get(r, "/user/new"), 2);
  CHECK_INT(match(r, HTTP_GET, "/user/bob", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 1);
  CHECK_INT(m.nparams, 1);
  ml_router_free(r);
}

TEST(router_static_beats_param_added_before) {
  ml_router *r = ml_router_new();

  CHECK_INT(add(r, "/user/new", M(GET), 2), 0);
  CHECK_INT(add(r, "/user/<name>", M(GET), 1), 0);
  CHECK_INT(get(r, "/user/new"), 2);
  CHECK_INT(get(r, "/user/bob"), 1);
  ml_router_free(r);
}

TEST(router_static_backtracks_to_param) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/a/b/c", M(GET), 1), 0);
  CHECK_INT(add(r, "/a/<x>/d", M(GET), 2), 0);
  CHECK_INT(get(r, "/a/b/c"), 1);
  CHECK_INT(match(r, HTTP_GET, "/a/b/d", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  CHECK_INT(m.params[0].len, 1);
  CHECK(m.params[0].s[0] == 'b');
  ml_router_free(r);
}

TEST(router_converter_order) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/v/<path:p>", M(GET), 4), 0);
  CHECK_INT(add(r, "/v/<name>", M(GET), 3), 0);
  CHECK_INT(add(r, "/v/<float:f>", M(GET), 2), 0);
  CHECK_INT(add(r, "/v/<int:id>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/v/5", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 1);
  CHECK_INT(m.params[0].i, 5);
  CHECK_INT(get(r, "/v/1.5"), 2);
  CHECK_INT(get(r, "/v/x"), 3);
  CHECK_INT(get(r, "/v/x/y"), 4);
  ml_router_free(r);
}

TEST(router_int_backtracks_to_string) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/v/<int:id>/a", M(GET), 1), 0);
  CHECK_INT(add(r, "/v/<name>/b", M(GET), 2), 0);
  CHECK_INT(match(r, HTTP_GET, "/v/5/b", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  CHECK_STR(m.params[0].name, "name");
  CHECK_INT(m.params[0].conv, ML_CONV_STRING);
  CHECK_INT(get(r, "/v/5/a"), 1);
  CHECK_INT(get(r, "/v/x/a"), -1);
  ml_router_free(r);
}

TEST(router_not_found) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(match(r, HTTP_GET, "/", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(add(r, "/a/<int:n>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/b", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(m.route, -1);
  CHECK_INT(m.nparams, 0);
  CHECK(m.allow == 0);
  CHECK_INT(match(r, HTTP_POST, "/a/x", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(match(r, HTTP_OPTIONS, "/a/x", &m), ML_MATCH_NOT_FOUND);
  ml_router_free(r);
}

TEST(router_bad_method) {
  ml_router *r = ml_router_new();
  ml_match m;
  char buf[64];

  CHECK_INT(add(r, "/form", M(GET) | M(POST), 1), 0);
  CHECK_INT(match(r, HTTP_POST, "/form", &m), ML_MATCH_FOUND);
  CHECK_INT(match(r, HTTP_DELETE, "/form", &m), ML_MATCH_BAD_METHOD);
  CHECK(m.allow == (M(GET) | M(HEAD) | M(OPTIONS) | M(POST)));
  CHECK_INT(ml_router_format_allow(m.allow, buf, sizeof buf), 24);
  CHECK_STR(buf, "GET, HEAD, OPTIONS, POST");
  CHECK_INT(match(r, 99, "/form", &m), ML_MATCH_BAD_METHOD);
  ml_router_free(r);
}

TEST(router_allow_is_a_union) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/u/<int:id>", M(PUT), 1), 0);
  CHECK_INT(add(r, "/u/<name>", M(GET), 2), 0);
  CHECK_INT(add(r, "/u/<name>", M(PATCH), 3), 0);
  CHECK_INT(match(r, HTTP_DELETE, "/u/5", &m), ML_MATCH_BAD_METHOD);
  CHECK(m.allow == (M(PUT) | M(GET) | M(HEAD) | M(OPTIONS) | M(PATCH)));
  CHECK_INT(match(r, HTTP_DELETE, "/u/x", &m), ML_MATCH_BAD_METHOD);
  CHECK(m.allow == (M(GET) | M(HEAD) | M(OPTIONS) | M(PATCH)));
  /* a later route on the same path may take the method */
  CHECK_INT(match(r, HTTP_GET, "/u/5", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  CHECK_INT(m.params[0].conv, ML_CONV_STRING);
  CHECK_INT(match(r, HTTP_PATCH, "/u/5", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 3);
  CHECK_STR(m.params[0].name, "name");
  CHECK_INT(match(r, HTTP_PUT, "/u/5", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 1);
  CHECK_STR(m.params[0].name, "id");
  ml_router_free(r);
}

TEST(router_head_via_get) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/p/<int:n>", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_HEAD, "/p/3", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 1);
  CHECK_INT(m.nparams, 1);
  CHECK_INT(m.params[0].i, 3);
  CHECK_STR(m.params[0].name, "n");
  CHECK_INT(add(r, "/q", M(POST), 2), 0);
  CHECK_INT(match(r, HTTP_HEAD, "/q", &m), ML_MATCH_BAD_METHOD);
  CHECK(m.allow == (M(POST) | M(OPTIONS)));
  ml_router_free(r);
}

TEST(router_explicit_head) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/x", M(GET), 1), 0);
  CHECK_INT(add(r, "/x", M(HEAD), 2), 0);
  CHECK_INT(match(r, HTTP_HEAD, "/x", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  CHECK_INT(get(r, "/x"), 1);
  /* a HEAD route on a lower-ranked pattern still beats GET's */
  CHECK_INT(add(r, "/y/<int:n>", M(GET), 3), 0);
  CHECK_INT(add(r, "/y/<name>", M(HEAD), 4), 0);
  CHECK_INT(match(r, HTTP_HEAD, "/y/5", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 4);
  CHECK_INT(m.params[0].conv, ML_CONV_STRING);
  CHECK_INT(get(r, "/y/5"), 3);
  ml_router_free(r);
}

TEST(router_options) {
  ml_router *r = ml_router_new();
  ml_match m;
  char buf[64];

  CHECK_INT(add(r, "/a", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_OPTIONS, "/a", &m), ML_MATCH_OPTIONS);
  CHECK(m.allow == (M(GET) | M(HEAD) | M(OPTIONS)));
  ml_router_format_allow(m.allow, buf, sizeof buf);
  CHECK_STR(buf, "GET, HEAD, OPTIONS");
  CHECK_INT(match(r, HTTP_OPTIONS, "/b", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(add(r, "/c", M(GET) | M(OPTIONS), 2), 0);
  CHECK_INT(match(r, HTTP_OPTIONS, "/c", &m), ML_MATCH_FOUND);
  CHECK_INT(m.route, 2);
  ml_router_free(r);
}

TEST(router_redirect_slash) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/docs/", M(GET), 1), 0);
  CHECK_INT(add(r, "/n/<int:n>/", M(POST), 2), 0);
  CHECK_INT(get(r, "/docs/"), 1);
  CHECK_INT(match(r, HTTP_GET, "/docs", &m), ML_MATCH_REDIRECT_SLASH);
  CHECK_INT(match(r, HTTP_DELETE, "/docs", &m), ML_MATCH_REDIRECT_SLASH);
  CHECK_INT(match(r, HTTP_GET, "/n/5", &m), ML_MATCH_REDIRECT_SLASH);
  CHECK_INT(match(r, HTTP_GET, "/n/x", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(match(r, HTTP_GET, "/docs/x", &m), ML_MATCH_NOT_FOUND);
  ml_router_free(r);
}

/* As in Werkzeug: a route for the path with '/' added wins over a
 * converter that would take the path as it is (a static root). */
TEST(router_slash_route_beats_converter) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/docs/", M(GET), 1), 0);
  CHECK_INT(add(r, "/<path:p>", M(GET), 2), 0);
  CHECK_INT(match(r, HTTP_GET, "/docs", &m), ML_MATCH_REDIRECT_SLASH);
  CHECK_INT(match(r, HTTP_HEAD, "/docs", &m), ML_MATCH_REDIRECT_SLASH);
  CHECK_INT(get(r, "/docs/"), 1);
  CHECK_INT(get(r, "/docs/a"), 2);
  CHECK_INT(get(r, "/x"), 2);
  CHECK_INT(add(r, "/api/<x>/", M(POST), 3), 0);
  CHECK_INT(get(r, "/api/v"), 2);     /* that one takes no GET */
  CHECK_INT(match(r, HTTP_POST, "/api/v", &m), ML_MATCH_REDIRECT_SLASH);
  ml_router_free(r);
}

/* "OPTIONS *": every method some route takes, HEAD with GET, OPTIONS. */
TEST(router_options_server) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(ml_router_match_server(r, &m), ML_MATCH_OPTIONS);
  CHECK(m.allow == M(OPTIONS));
  CHECK_INT(add(r, "/a", M(GET), 1), 0);
  CHECK_INT(add(r, "/b/<int:n>", M(POST) | M(DELETE), 2), 0);
  CHECK_INT(ml_router_match_server(r, &m), ML_MATCH_OPTIONS);
  CHECK(m.allow == (M(GET) | M(HEAD) | M(OPTIONS) | M(POST) | M(DELETE)));
  CHECK_INT(m.nparams, 0);
  ml_router_free(r);
}

TEST(router_no_redirect_other_way) {
  ml_router *r = ml_router_new();
  ml_match m;

  CHECK_INT(add(r, "/docs", M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, "/docs/", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(match(r, HTTP_GET, "/docs//", &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(add(r, "/docs/", M(GET), 2), 0);   /* a different route */
  CHECK_INT(get(r, "/docs"), 1);
  CHECK_INT(get(r, "/docs/"), 2);
  ml_router_free(r);
}

TEST(router_duplicate_route) {
  ml_router *r = ml_router_new();

  CHECK_INT(add(r, "/x/<int:id>", M(GET), 1), 0);
  CHECK_INT(add(r, "/x/<int:id>", M(POST) | M(GET), 2), -1);
  CHECK_STR(err, "route already defined: GET /x/<int:id>");
  CHECK_INT(add(r, "/x/<int:other>", M(GET), 2), -1);
  CHECK_STR(err, "route already defined: GET /x/<int:other>");
  CHECK_INT(add(r, "/x/<int:id>", M(POST), 3), 0);
  CHECK_INT(add(r, "/x/<int:id>/", M(GET), 4), 0);
  CHECK_INT(add(r, "/x/<id>", M(GET), 5), 0);
  CHECK_INT(add(r, "/", M(GET), 6), 0);
  CHECK_INT(add(r, "/", M(GET), 7), -1);
  CHECK_STR(err, "route already defined: GET /");
  CHECK_INT(get(r, "/x/1"), 1);
  CHECK_INT(get(r, "/x/1/"), 4);
  CHECK_INT(get(r, "/x/y"), 5);
  ml_router_free(r);
}

TEST(router_pattern_errors) {
  CHECK_STR(bad("x"), "route must start with '/': x");
  CHECK_STR(bad(""), "route must start with '/': ");
  CHECK_STR(bad("/a//b"), "empty segment ('//') in route: /a//b");
  CHECK_STR(bad("//"), "empty segment ('//') in route: //");
  CHECK_STR(bad("/a/<bad:x>"), "unknown converter 'bad' in route: /a/<bad:x>");
  CHECK_STR(bad("/<int(signed=True):x>"),
            "unknown converter 'int(signed=True)' in route: "
            "/<int(signed=True):x>");
  CHECK_STR(bad("/<x"), "unbalanced '<' or '>' in route: /<x");
  CHECK_STR(bad("/x>"), "unbalanced '<' or '>' in route: /x>");
  CHECK_STR(bad("/>x<"), "unbalanced '<' or '>' in route: />x<");
  CHECK_STR(bad("/<<x>>"), "unbalanced '<' or '>' in route: /<<x>>");
  CHECK_STR(bad("/<a/b>"), "unbalanced '<' or '>' in route: /<a/b>");
  CHECK_STR(bad("/a-<x>"),
            "a converter must fill a whole segment in route: /a-<x>");
  CHECK_STR(bad("/<x>.json"),
            "a converter must fill a whole segment in route: /<x>.json");
  CHECK_STR(bad("/<>"), "empty parameter name in route: /<>");
  CHECK_STR(bad("/<int:>"), "empty parameter name in route: /<int:>");
  CHECK_STR(bad("/<1x>"), "bad parameter name '1x' in route: /<1x>");
  CHECK_STR(bad("/<a-b>"), "bad parameter name 'a-b' in route: /<a-b>");
  CHECK_STR(bad("/<int:a:b>"), "bad parameter name 'a:b' in route: "
            "/<int:a:b>");
  CHECK_STR(bad("/<x>/<int:x>"),
            "duplicate parameter name 'x' in route: /<x>/<int:x>");
  CHECK_STR(bad("/<_ok9>/<Z>"), "");
}

TEST(router_method_mask_errors) {
  ml_router *r = ml_router_new();

  CHECK_INT(add(r, "/a", 0, 1), -1);
  CHECK_STR(err, "no HTTP methods for route: /a");
  CHECK_INT(add(r, "/a", M(GET) | (1ULL << 63), 1), -1);
  CHECK_STR(err, "unknown HTTP methods for route: /a");
  CHECK_INT(get(r, "/a"), -1);
  CHECK_INT(add(r, "/a", M(GET), 1), 0);
  CHECK_INT(get(r, "/a"), 1);
  ml_router_free(r);
}

TEST(router_max_params) {
  ml_router *r = ml_router_new();
  ml_match m;
  char pat[256], path[128], name[8];
  int k, n = 0, p = 0;

  for (k = 0; k < 16; k++) {
    n += snprintf(pat + n, sizeof pat - n, "/<int:p%d>", k);
    p += snprintf(path + p, sizeof path - p, "/%d", k * 10);
  }
  CHECK_INT(add(r, pat, M(GET), 1), 0);
  CHECK_INT(match(r, HTTP_GET, path, &m), ML_MATCH_FOUND);
  CHECK_INT(m.nparams, 16);
  for (k = 0; k < 16; k++) {
    snprintf(name, sizeof name, "p%d", k);
    CHECK_STR(m.params[k].name, name);
    CHECK_INT(m.params[k].i, k * 10);
  }
  snprintf(pat + n, sizeof pat - n, "/<p16>");
  CHECK_INT(add(r, pat, M(GET), 2), -1);
  CHECK(strncmp(err, "more than 16 parameters in route: /", 35) == 0);
  ml_router_free(r);
}

TEST(router_segment_limit) {
  ml_router *r = ml_router_new();
  static char path[1024];
  int k;

  CHECK_INT(add(r, "/<path:p>", M(GET), 1), 0);
  for (k = 0; k < 256; k++)
    memcpy(path + 2 * k, "/a", 2);
  path[512] = '\0';
  CHECK_INT(get(r, path), 1);
  memcpy(path + 512, "/a", 3);
  CHECK_INT(get(r, path), -1);
  ml_router_free(r);
}

TEST(router_backtracking_is_bounded) {
  ml_router *r = ml_router_new();
  ml_match m;
  static char path[1024];
  int k;

  CHECK_INT(add(r, "/<path:a>/<path:b>/<path:c>/<path:d>/z", M(GET), 1),
            0);
  for (k = 0; k < 250; k++)
    memcpy(path + 2 * k, "/a", 2);
  path[500] = '\0';
  CHECK_INT(match(r, HTTP_GET, path, &m), ML_MATCH_NOT_FOUND);
  CHECK_INT(get(r, "/1/2/3/4/5/z"), 1);
  ml_router_free(r);
}

TEST(router_format_allow) {
  char buf[128];

  CHECK_INT(ml_router_format_allow(0, buf, sizeof buf), 0);
  CHECK_STR(buf, "");
  CHECK_INT(ml_router_format_allow(M(PUT) | M(DELETE) | M(MSEARCH) |
                                   M(PATCH), buf, sizeof buf), 28);
  CHECK_STR(buf, "DELETE, M-SEARCH, PATCH, PUT");
  CHECK_INT(ml_router_format_allow(M(GET) | (1ULL << 63), buf, sizeof buf),
            3);
  CHECK_STR(buf, "GET");
  CHECK_INT(ml_router_format_allow(M(GET) | M(HEAD), buf, 8), 7);
  CHECK_STR(buf, "GET, HE");
  CHECK_INT(ml_router_format_allow(M(GET), buf, 1), 0);
  CHECK_STR(buf, "");
  CHECK_INT(ml_router_format_allow(M(GET), buf, 0), 0);
}
