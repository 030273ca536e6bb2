/*
 * lib_thread.h - what the host needs of moonlet.thread.run's jobs when
 * the server stops: how many still run on the pool, and a way to stop
 * them.  The pool is libuv's, one per process: so are these.
 */
#ifndef ML_LIB_THREAD_H
#define ML_LIB_THREAD_H

/*
 * From any thread: every job queued so far is stopped.  Lua code in one
 * running raises "thread.run: stopped: the server is stopping" within a
 * few thousand instructions, and at every instruction after (a pcall
 * cannot swallow it); one not started yet fails so at once.  A job stuck
 * in a C function runs on.  Jobs queued later run as usual.
 */
void ml_lib_thread_stop(void);

/* From any thread: the jobs running on pool threads now. */
int ml_lib_thread_running(void);

#endif
