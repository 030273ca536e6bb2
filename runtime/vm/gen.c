/*
 * gen.c - generations: one loaded app and its Lua state, and the parts
 * other subsystems attach to one.  Coroutines of a generation are
 * sched.c's.
 */
#include "vm/gen.h"
#include "vm/sched.h"

/*
** {======================================================
** Parts
** =======================================================
*/

ml_part *ml_gen_part(ml_gen *g, const ml_part_kind *kind) {
  ml_part *p;
  for (p = g->parts; p != NULL && p->kind != kind; p = p->next)
    ;
  return p;
}

void ml_gen_attach(ml_gen *g, ml_part *p, const ml_part_kind *kind) {
  p->kind = kind;
  p->gen = g;
  p->next = g->parts;
  g->parts = p;
}

void ml_gen_detach(ml_part *p) {
  ml_part **link;
  for (link = &p->gen->parts; *link != NULL; link = &(*link)->next)
    if (*link == p) {
      *link = p->next;
      break;
    }
  p->next = NULL;
}

/* A 'retire' hook may detach its own part: the next one is read first. */
void ml_gen_parts_retire(ml_gen *g) {
  ml_part *p, *next;
  for (p = g->parts; p != NULL; p = next) {
    next = p->next;
    if (p->kind->retire != NULL)
      p->kind->retire(p);
  }
}

void ml_gen_parts_close(ml_gen *g) {
  ml_part *p;
  while ((p = g->parts) != NULL) {
    g->parts = p->next;
    p->next = NULL;
    p->kind->close(p);
  }
}

/* }====================================================== */
