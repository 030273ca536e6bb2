/*
 * activity.h - what a loop thread is doing, for a watchdog thread that
 * finds the loop stuck: callbacks that may run long label their work as
 * they start it (a literal and a number) and clear it as they end.  A
 * label still there, unchanged, tick after tick is a stuck loop.  No Lua,
 * no sockets, no clock: net/ labels, host/ reads.
 */
#ifndef ML_ACTIVITY_H
#define ML_ACTIVITY_H

#include <stdint.h>

/* Owned by the watchdog that reads it; written by one loop thread and
 * read by another thread, always through the functions below. */
typedef struct ml_activity {
  const char *what;    /* a string literal; NULL: nothing labelled */
  uint64_t n;          /* a number that goes with it (bytes...) */
  uint64_t seq;        /* labels set so far: which one 'what' is */
} ml_activity;

/* This thread's labels go to a from now on (NULL: nowhere). */
void ml_activity_bind(ml_activity *a);

/* This thread starts work that may take long: "what" (a literal), with a
 * number; ml_activity_clear when it ends.  Labels do not nest. */
void ml_activity_set(const char *what, uint64_t n);
void ml_activity_clear(void);

/* From any thread: a's label, its number and which label it is (what is
 * NULL when none is set). */
void ml_activity_read(ml_activity *a, const char **what, uint64_t *n,
                      uint64_t *seq);

#endif
