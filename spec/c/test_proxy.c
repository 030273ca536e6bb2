/*
 * test_proxy.c - the PROXY protocol parser: version 1 lines and version 2
 * headers as HAProxy writes them, LOCAL and UNKNOWN, the SSL TLV, headers
 * in pieces, and everything a peer could get wrong.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include "net/proxy.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

static int parse(const char *s, ml_proxy_header *h) {
  return ml_proxy_parse(s, strlen(s), h);
}

/* The source as "ADDR PORT". */
static const char *source(const ml_proxy_header *h) {
  static char out[80];
  char ip[64];
  int port;
  if (h->src.ss_family == AF_INET) {
    const struct sockaddr_in *s = (const struct sockaddr_in *)&h->src;
    inet_ntop(AF_INET, &s->sin_addr, ip, sizeof ip);
    port = ntohs(s->sin_port);
  } else {
    const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&h->src;
    inet_ntop(AF_INET6, &s->sin6_addr, ip, sizeof ip);
    port = ntohs(s->sin6_port);
  }
  snprintf(out, sizeof out, "%s %d", ip, port);
  return out;
}

TEST(proxy_v1_lines) {
  ml_proxy_header h;
  const char *l4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 443\r\nGET /";
  const char *l6 = "PROXY TCP6 2001:db8::7 2001:db8::1 1 8080\r\n";
  CHECK_INT(parse(l4, &h), (int)(strchr(l4, '\n') - l4 + 1));
  CHECK_INT(h.local, 0);
  CHECK_STR(source(&h), "192.0.2.7 56324");
  CHECK_INT(parse(l6, &h), (int)strlen(l6));
  CHECK_STR(source(&h), "2001:db8::7 1");
  CHECK_INT(parse("PROXY UNKNOWN\r\n", &h), 15);
  CHECK_INT(h.local, 1);
  CHECK_INT(parse("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", &h), 35);
  CHECK_INT(h.local, 1);
}

TEST(proxy_v1_incomplete_then_bad) {
  ml_proxy_header h;
  CHECK_INT(parse("", &h), 0);
  CHECK_INT(parse("PRO", &h), 0);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4", &h), 0);
  CHECK_INT(parse("GET / HTTP/1.1\r\n\r\n", &h), -1);       /* missing */
  CHECK_INT(parse("PROXX", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", &h), -1);  /* no CR */
  CHECK_INT(parse("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", &h), -1);
  CHECK_INT(parse("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n", &h), -1);
  CHECK_INT(ml_proxy_parse("PROXY TCP4 1.2.3.4\0 5.6.7.8 1 2\r\n", 33, &h),
            -1);
  {
    char line[200];                          /* no CRLF in 107 bytes */
    memset(line, 'a', sizeof line);
    memcpy(line, "PROXY TCP6 ", 11);
    CHECK_INT(ml_proxy_parse(line, 107, &h), -1);
    CHECK_INT(ml_proxy_parse(line, 106, &h), 0);
  }
}

/* A version 2 header: signature, ver/cmd, family/proto, then body. */
static size_t v2(unsigned char *out, int cmd, int fam, const void *body,
                 size_t len) {
  memcpy(out, "\r\n\r\n\0\r\nQUIT\n", 12);
  out[12] = (unsigned char)(0x20 | cmd);
  out[13] = (unsigned char)fam;
  out[14] = (unsigned char)(len >> 8);
  out[15] = (unsigned char)len;
  memcpy(out + 16, body, len);
  return 16 + len;
}

TEST(proxy_v2_headers) {
  ml_proxy_header h;
  unsigned char b[600], body[300];
  size_t n;
  /* TCP over IPv4: 192.0.2.7:56324 -> 198.51.100.1:443, then an SSL TLV
   * (client flags 0x01, verify 0) and a unique-id TLV */
  static const unsigned char v4[] = { 192, 0, 2, 7, 198, 51, 100, 1,
    0xdc, 0x04, 0x01, 0xbb, 0x20, 0x00, 0x05, 0x01, 0, 0, 0, 0,
    0x05, 0x00, 0x02, 'i', 'd' };
  n = v2(b, 1, 0x11, v4, sizeof v4);
  CHECK_INT(ml_proxy_parse((char *)b, n + 5, &h), (int)n);
  CHECK_INT(h.local, 0);
  CHECK_INT(h.ssl, 1);
  CHECK_STR(source(&h), "192.0.2.7 56324");
  memset(body, 0, sizeof body);                /* TCP over IPv6 */
  body[0] = 0x20, body[1] = 0x01, body[15] = 7, body[32] = 0, body[33] = 80;
  n = v2(b, 1, 0x21, body, 36);
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), (int)n);
  CHECK_STR(source(&h), "2001::7 80");
  CHECK_INT(h.ssl, 0);
  n = v2(b, 0, 0x00, body, 0);                 /* LOCAL: a health check */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), 16);
  CHECK_INT(h.local, 1);
  n = v2(b, 1, 0x31, body, 216);               /* UNIX: no IP */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), (int)n);
  CHECK_INT(h.local, 1);
}

TEST(proxy_v2_bad) {
  ml_proxy_header h;
  unsigned char b[2000], body[1200];
  size_t n;
  memset(body, 0, sizeof body);
  n = v2(b, 1, 0x11, body, 12);
  CHECK_INT(ml_proxy_parse((char *)b, 11, &h), 0);      /* in pieces */
  CHECK_INT(ml_proxy_parse((char *)b, 16, &h), 0);
  CHECK_INT(ml_proxy_parse((char *)b, n - 1, &h), 0);
  b[3] = 'x';
  CHECK_INT(ml_proxy_parse((char *)b, 4, &h), -1);      /* signature */
  n = v2(b, 2, 0x11, body, 12);                         /* command 2 */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  n = v2(b, 1, 0x11, body, 12);
  b[12] = 0x11;                                         /* version 1 */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  n = v2(b, 1, 0x12, body, 12);                         /* UDP */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  n = v2(b, 1, 0x41, body, 12);                         /* family 4 */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  n = v2(b, 1, 0x21, body, 12);                         /* IPv6, short */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  body[12] = 0x20, body[13] = 0, body[14] = 9;          /* TLV too long */
  n = v2(b, 1, 0x11, body, 16);
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  n = v2(b, 1, 0x11, body, 14);                         /* TLV cut */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
  n = v2(b, 1, 0x11, body, ML_PROXY_MAX);               /* too large */
  CHECK_INT(ml_proxy_parse((char *)b, n, &h), -1);
}

TEST(proxy_feed_in_pieces) {
  const char *all = "PROXY TCP4 10.1.2.3 10.0.0.1 4000 80\r\nGET / HTTP/1.1";
  size_t head = strchr(all, '\n') - all + 1, i;
  ml_proxy *px = ml_proxy_new();
  ssize_t used;
  for (i = 0; i < 10; i++) {                     /* one byte at a time */
    CHECK_INT(ml_proxy_feed(px, all + i, 1), 1);
    CHECK(ml_proxy_result(px) == NULL);
  }
  used = ml_proxy_feed(px, all + 10, strlen(all) - 10);
  CHECK_INT(used, (ssize_t)(head - 10));        /* the rest is HTTP */
  CHECK(ml_proxy_result(px) != NULL);
  CHECK_STR(source(ml_proxy_result(px)), "10.1.2.3 4000");
  CHECK_INT(ml_proxy_feed(px, "x", 1), 0);
  ml_proxy_free(px);
  px = ml_proxy_new();                           /* whole, in one read */
  CHECK_INT(ml_proxy_feed(px, all, strlen(all)), (ssize_t)head);
  ml_proxy_free(px);
  px = ml_proxy_new();
  CHECK_INT(ml_proxy_feed(px, "PROXY TCP4 ", 11), 11);
  CHECK_INT(ml_proxy_feed(px, "GET", 3), 3);     /* no line end yet */
  CHECK_INT(ml_proxy_feed(px, " / HTTP/1.1\r\n", 13), -1);  /* bad */
  ml_proxy_free(px);
  px = ml_proxy_new();
  CHECK_INT(ml_proxy_feed(px, "GET / HTTP/1.1\r\n", 16), -1);
  ml_proxy_free(px);
}
