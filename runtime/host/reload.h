/*
 * reload.h - --reload: watch the app file and the Lua files it required
 * from its own directory tree, and say so shortly after they change.
 * What a change does (a reload) is the owner's: server.c's.
 */
#ifndef ML_RELOAD_H
#define ML_RELOAD_H

#include <uv.h>

typedef struct ml_reload ml_reload;

/*
 * A watcher on 'loop', watching nothing yet; NULL when out of memory.
 * Once the files have been quiet for a moment after a change,
 * changed(ud, file) is called with one of the files that changed.  The
 * owner ends it with ml_reload_close.
 */
ml_reload *ml_reload_new(uv_loop_t *loop,
                         void (*changed)(void *ud, const char *file),
                         void *ud);

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
