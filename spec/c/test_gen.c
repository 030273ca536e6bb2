/*
 * test_gen.c - the parts of a generation (gen.c): found by kind, retired
 * and closed through their hooks, newest first, each close once.
 */
#include <string.h>
#include "vm/sched.h"
#include "test.h"
#include "test_list.h"

#define DECLARE(name) void test_##name(void);
TEST_LIST(DECLARE)

typedef struct {
  ml_part part;
  int retired, closed;
  int detach_on_retire;
} rec_part;

static int close_order[4], nclosed;

static void rec_retire(ml_part *p) {
  rec_part *r = (rec_part *)p;
  r->retired++;
  if (r->detach_on_retire)
    ml_gen_detach(p);
}

static void rec_close(ml_part *p) {
  rec_part *r = (rec_part *)p;
  CHECK(p->next == NULL);             /* detached before the call */
  r->closed++;
  if (nclosed < 4)
    close_order[nclosed++] = r->retired * 10 + r->detach_on_retire;
}

static const ml_part_kind kind_a = { "a", rec_retire, rec_close };
static const ml_part_kind kind_b = { "b", NULL, rec_close };
static const ml_part_kind kind_c = { "c", rec_retire, rec_close };

TEST(gen_parts_by_kind_retire_close) {
  ml_gen g;
  rec_part a, b, c;
  memset(&g, 0, sizeof g);
  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&c, 0, sizeof c);
  nclosed = 0;
  CHECK(ml_gen_part(&g, &kind_a) == NULL);
  ml_gen_attach(&g, &a.part, &kind_a);
  ml_gen_attach(&g, &b.part, &kind_b);
  ml_gen_attach(&g, &c.part, &kind_c);
  c.detach_on_retire = 1;             /* its own business from now on */
  CHECK(ml_gen_part(&g, &kind_a) == &a.part);
  CHECK(ml_gen_part(&g, &kind_b) == &b.part);
  CHECK(a.part.gen == &g);
  ml_gen_parts_retire(&g);
  CHECK_INT(a.retired, 1);
  CHECK_INT(b.retired, 0);            /* no hook */
  CHECK_INT(c.retired, 1);
  CHECK(ml_gen_part(&g, &kind_c) == NULL);
  ml_gen_detach(&b.part);
  CHECK(ml_gen_part(&g, &kind_b) == NULL);
  ml_gen_attach(&g, &b.part, &kind_b);
  ml_gen_parts_close(&g);
  CHECK_INT(nclosed, 2);
  CHECK_INT(close_order[0], 0);       /* b, attached last, first */
  CHECK_INT(close_order[1], 10);      /* then a */
  CHECK_INT(a.closed, 1);
  CHECK_INT(c.closed, 0);             /* detached: not ours to close */
  CHECK(g.parts == NULL);
  ml_gen_parts_close(&g);             /* nothing left: no second close */
  CHECK_INT(a.closed + b.closed, 2);
}
