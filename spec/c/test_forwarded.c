/*
 * test_forwarded.c - trusted proxy ranges and the client behind them:
 * X-Forwarded-For walked from the nearest proxy back, X-Forwarded-Proto,
 * RFC 7239 Forwarded with quoted IPv6 nodes and ports, and what is not an
 * address.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include "net/forwarded.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

static int trusts(const ml_trust *t, const char *ip) {
  return ml_trust_text(t, ip, strlen(ip));
}

TEST(forwarded_trust_ranges) {
  char why[80];
  ml_trust *t = ml_trust_parse("127.0.0.1, 10.0.0.0/8,2001:db8::/32 ,::1",
                               why, sizeof why);
  struct sockaddr_in6 s6;
  CHECK(t != NULL);
  CHECK(trusts(t, "127.0.0.1"));
  CHECK(!trusts(t, "127.0.0.2"));
  CHECK(trusts(t, "10.255.1.2"));
  CHECK(!trusts(t, "11.0.0.1"));
  CHECK(trusts(t, "2001:db8:1::5"));
  CHECK(!trusts(t, "2001:db9::5"));
  CHECK(trusts(t, "::1"));
  CHECK(trusts(t, "::ffff:10.1.1.1"));           /* IPv4-mapped */
  CHECK(!trusts(t, "not-an-ip"));
  memset(&s6, 0, sizeof s6);
  s6.sin6_family = AF_INET6;
  inet_pton(AF_INET6, "::ffff:127.0.0.1", &s6.sin6_addr);
  CHECK(ml_trust_addr(t, (struct sockaddr *)&s6));
  ml_trust_free(t);
  t = ml_trust_parse("198.18.0.0/25", why, sizeof why);
  CHECK(trusts(t, "198.18.0.127") && !trusts(t, "198.18.0.128"));
  ml_trust_free(t);
  t = ml_trust_parse("*", why, sizeof why);
  CHECK(trusts(t, "203.0.113.9") && trusts(t, "2001::1"));
  ml_trust_free(t);
  CHECK(ml_trust_parse("10.0.0.0/33", why, sizeof why) == NULL);
  CHECK_STR(why, "10.0.0.0/33");
  CHECK(ml_trust_parse("127.0.0.1,,::1", why, sizeof why) == NULL);
  CHECK(ml_trust_parse("localhost", why, sizeof why) == NULL);
  CHECK_STR(why, "localhost");
  CHECK(ml_trust_parse("1.2.3.4/", why, sizeof why) == NULL);
  CHECK(ml_trust_parse("1.2.3.4/x", why, sizeof why) == NULL);
}

/* The client of a request whose trusted peer sent these headers, as
 * "ADDR SCHEME" ("- -" when none). */
static const char *client(const char *spec, const char *fwd,
                          const char *xff, const char *xfp) {
  static char out[100];
  char why[80], addr[64] = "-";
  ml_trust *t = ml_trust_parse(spec, why, sizeof why);
  ml_forwarded_in in;
  int https = -1;
  memset(&in, 0, sizeof in);
  in.forwarded = fwd, in.forwarded_len = fwd ? strlen(fwd) : 0;
  in.xff = xff, in.xff_len = xff ? strlen(xff) : 0;
  in.xfp = xfp, in.xfp_len = xfp ? strlen(xfp) : 0;
  ml_forwarded_client(t, &in, addr, sizeof addr, &https);
  snprintf(out, sizeof out, "%s %s", addr,
           https < 0 ? "-" : https ? "https" : "http");
  ml_trust_free(t);
  return out;
}

TEST(forwarded_x_forwarded_for) {
  const char *lan = "127.0.0.1,10.0.0.0/8";
  CHECK_STR(client(lan, NULL, "203.0.113.9", NULL), "203.0.113.9 -");
  CHECK_STR(client(lan, NULL, " 203.0.113.9 , 10.0.0.2,10.0.0.3", "https"),
            "203.0.113.9 https");
  /* a client that made up entries: the first untrusted from the right */
  CHECK_STR(client(lan, NULL, "1.1.1.1, 203.0.113.9, 10.0.0.2", NULL),
            "203.0.113.9 -");
  CHECK_STR(client(lan, NULL, "10.0.0.5, 10.0.0.2", NULL), "10.0.0.5 -");
  CHECK_STR(client("*", NULL, "1.1.1.1, 203.0.113.9", NULL), "1.1.1.1 -");
  CHECK_STR(client(lan, NULL, "203.0.113.9:4711", "HTTP"),
            "203.0.113.9 http");
  CHECK_STR(client(lan, NULL, "2001:db8::1", NULL), "2001:db8::1 -");
  CHECK_STR(client(lan, NULL, "[2001:db8::1]:80", NULL), "2001:db8::1 -");
  CHECK_STR(client(lan, NULL, "unknown", NULL), "- -");
  CHECK_STR(client(lan, NULL, "junk, 10.0.0.2", NULL), "10.0.0.2 -");
  CHECK_STR(client(lan, NULL, "", "https"), "- https");
  CHECK_STR(client(lan, NULL, "203.0.113.9", "ftp"), "203.0.113.9 -");
  CHECK_STR(client(lan, NULL, "203.0.113.9", "http, https"),
            "203.0.113.9 https");
  CHECK_STR(client(lan, NULL, NULL, NULL), "- -");
}

TEST(forwarded_rfc7239) {
  const char *lan = "127.0.0.1,10.0.0.0/8";
  CHECK_STR(client(lan, "for=192.0.2.60;proto=https;by=203.0.113.43",
                   NULL, NULL), "192.0.2.60 https");
  CHECK_STR(client(lan, "For=\"[2001:db8:cafe::17]:4711\"", NULL, NULL),
            "2001:db8:cafe::17 -");
  CHECK_STR(client(lan, "for=192.0.2.43, for=10.0.0.7;proto=http", NULL,
                   NULL), "192.0.2.43 http");
  CHECK_STR(client(lan, "for=1.1.1.1;proto=http, for=192.0.2.43;"
                   "proto=https, for=10.0.0.7", NULL, NULL),
            "192.0.2.43 https");
  CHECK_STR(client(lan, "for=unknown, for=10.0.0.7;proto=https", NULL,
                   NULL), "10.0.0.7 https");
  CHECK_STR(client(lan, "for=_hidden", NULL, NULL), "- -");
  CHECK_STR(client(lan, "for = \"192.0.2.1\" ; proto = \"https\"", NULL,
                   NULL), "192.0.2.1 https");
  CHECK_STR(client(lan, "by=10.0.0.1", NULL, NULL), "- -");
  CHECK_STR(client(lan, "for=\"[::1\", for=1.2.3.4", NULL, NULL),
            "1.2.3.4 -");
  CHECK_STR(client(lan, ";;,,=,\"", NULL, NULL), "- -");
  /* Forwarded wins over X-Forwarded-*; its proto, not theirs */
  CHECK_STR(client(lan, "for=192.0.2.1", "203.0.113.9", "https"),
            "192.0.2.1 -");
}
