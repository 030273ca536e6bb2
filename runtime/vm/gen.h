/*
 * gen.h - a generation: one loaded app and its Lua state.  A subsystem
 * with state of its own per generation (the after/every timers, the
 * outbound client's pool, a TLS context, a database pool) attaches it as
 * a part, with hooks the generation calls when it is retired and when its
 * state closes, instead of adding a field to struct ml_gen.
 */
#ifndef ML_GEN_H
#define ML_GEN_H

typedef struct ml_gen ml_gen;
typedef struct ml_part ml_part;

/*
 * What a kind of part does at the two ends of its generation's life.  One
 * static const per kind (its address is the kind's identity).
 *
 * 'retire' (may be NULL): the generation takes no new work (a reload
 * replaced it, the server stops, or the Lua module ends a moonlet.run):
 * stop what belongs to the app rather than to a request, such as timers.
 * Requests still running on the generation may go on using the part.
 *
 * 'close': the part is dropped: free it and what it holds idle.  Once a
 * retired generation's last coroutine has ended, so nothing of the app
 * uses it any more; or, in the Lua module, right after 'retire' when a
 * moonlet.run ends, while the app it serves goes on.  An operation still
 * running (an outbound exchange of a request) then finishes on its own
 * and frees itself, as ml_client_close lets it.  The part is detached
 * before the call.
 */
typedef struct ml_part_kind {
  const char *name;                 /* for logs: "timers", "http client" */
  void (*retire)(ml_part *p);
  void (*close)(ml_part *p);
} ml_part_kind;

/*
 * The head of a part: the first member of the subsystem's own struct,
 * which the subsystem allocates and its 'close' frees.  The generation
 * owns the list; the subsystem owns the memory.
 */
struct ml_part {
  const ml_part_kind *kind;
  ml_gen *gen;
  ml_part *next;
};

/* g's part of this kind, or NULL: a few pointer compares. */
ml_part *ml_gen_part(ml_gen *g, const ml_part_kind *kind);

/*
 * Attaches p, of this kind, to g.  One part per kind and generation:
 * callers look for it first (ml_gen_part) and attach on first use.  A
 * part attached to a retired generation is closed with it; its 'retire'
 * is not called.
 */
void ml_gen_attach(ml_gen *g, ml_part *p, const ml_part_kind *kind);

/* Detaches p from its generation without calling its hooks: the
 * subsystem is done with it and frees it itself. */
void ml_gen_detach(ml_part *p);

/* Calls every part's 'retire' hook (sched.c, when g is retired). */
void ml_gen_parts_retire(ml_gen *g);

/* Detaches every part and calls its 'close' hook, newest first. */
void ml_gen_parts_close(ml_gen *g);

#endif
