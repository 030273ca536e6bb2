/*
 * reload.h - --reload: watch the app file and the Lua files it required
 * from its own directory tree, and reload the app (moonlet_reload) shortly
 * after they change.  Loading and switching generations is server.c's;
 * retiring an old one is gen.c's.
 */
#ifndef ML_RELOAD_H
#define ML_RELOAD_H

#include "moonlet.h"

typedef struct ml_reload ml_reload;

/* A watcher for s, watching nothing yet; NULL when out of memory.  The
 * server owns it and ends it with ml_reload_close. */
ml_reload *ml_reload_new(moonlet_server *s, uv_loop_t *loop);

/*
 * Watches these files from now on.  With 'replace' they are the whole set
 * (after a good load); without, they are added to it (after a failed load,
 * whose files must still be watched to catch the fix).  The paths are
 * copied.  0, or UV_ENOMEM (the old set stays).
 */
int ml_reload_watch(ml_reload *r, const char *const *files, int n,
                    int replace);

/* Stops watching and frees r once its handles have closed; then calls
 * done(ud). */
void ml_reload_close(ml_reload *r, void (*done)(void *ud), void *ud);

#endif
