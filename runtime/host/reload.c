/*
 * reload.c - file watching for --reload.  It watches the directories of
 * the app's files rather than the files themselves: editors that save by
 * writing a new file and renaming it over the old one replace the inode,
 * which a watch on the file would lose, while its directory sees the new
 * file arrive under the same name.  A change reloads once the files have
 * been quiet for DEBOUNCE_MS.  What a change does is its owner's
 * (server.c reloads).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "base/log.h"
#include "host/reload.h"
#include "base/util.h"

#define DEBOUNCE_MS 100   /* an editor's save is several events */

/* One watched file: its directory (resolved) and its name there. */
typedef struct watched {
  char *dir;
  char *name;
  struct watched *next;
} watched;

/* A watch on one directory.  Owned by the ml_reload; freed when closed. */
typedef struct dirwatch {
  uv_fs_event_t ev;
  ml_reload *r;
  char *dir;
  int used;                 /* still needed, while updating the set */
  struct dirwatch *next;
} dirwatch;

/* The watcher.  Owned by the server; frees itself once closed. */
struct ml_reload {
  void (*changed)(void *ud, const char *file);
  void *changed_ud;
  uv_timer_t quiet;         /* the debounce timer */
  uv_loop_t *loop;
  watched *files;
  dirwatch *dirs;
  int nhandles;             /* open or closing handles */
  int closing;
  int started;              /* logged the first watch */
  char file[PATH_MAX];      /* the file that set off the next call */
  void (*done)(void *ud);
  void *ud;
};

/* A handle of r has closed; the last one after ml_reload_close frees r. */
static void handle_gone(ml_reload *r) {
  void (*done)(void *) = r->done;
  void *ud = r->ud;
  if (--r->nhandles > 0 || !r->closing)
    return;
  free(r);
  if (done != NULL)
    done(ud);
}

static void quiet_closed(uv_handle_t *h) {
  handle_gone(container_of((uv_timer_t *)h, ml_reload, quiet));
}

static void dirwatch_closed(uv_handle_t *h) {
  dirwatch *d = container_of((uv_fs_event_t *)h, dirwatch, ev);
  ml_reload *r = d->r;
  free(d->dir);
  free(d);
  handle_gone(r);
}

/* The files have been quiet for DEBOUNCE_MS since the last change. */
static void on_quiet(uv_timer_t *t) {
  ml_reload *r = container_of(t, ml_reload, quiet);
  r->changed(r->changed_ud, r->file);
}

/* Something in a watched directory changed; is it one of our files? */
static void on_change(uv_fs_event_t *h, const char *filename, int events,
                      int status) {
  dirwatch *d = container_of(h, dirwatch, ev);
  ml_reload *r = d->r;
  watched *f;
  ML_UNUSED(events);
  if (status < 0) {
    ml_log(MOONLET_LOG_WARN, "watching %s: %s", d->dir, uv_strerror(status));
    return;
  }
  for (f = r->files; f != NULL; f = f->next) {
    if (strcmp(f->dir, d->dir) != 0 ||
        (filename != NULL && strcmp(filename, f->name) != 0))
      continue;
    if (!uv_is_active((uv_handle_t *)&r->quiet))
      snprintf(r->file, sizeof r->file, "%s/%s", f->dir, f->name);
    uv_timer_start(&r->quiet, on_quiet, DEBOUNCE_MS, 0);
    return;
  }
}

ml_reload *ml_reload_new(uv_loop_t *loop,
                         void (*changed)(void *ud, const char *file),
                         void *ud) {
  ml_reload *r = calloc(1, sizeof *r);
  if (r == NULL)
    return NULL;
  r->changed = changed;
  r->changed_ud = ud;
  r->loop = loop;
  uv_timer_init(loop, &r->quiet);
  r->nhandles = 1;
  return r;
}

static void free_files(watched *f) {
  watched *next;
  for (; f != NULL; f = next) {
    next = f->next;
    free(f->dir);
    free(f->name);
    free(f);
  }
}

/*
 * Splits a path into its resolved directory and its name.  A symbolic
 * link is followed, so an edit of its target is seen.  NULL when out of
 * memory.
 */
static watched *resolve(const char *path) {
  char *real = realpath(path, NULL), *slash, *dir;
  const char *p = real != NULL ? real : path;
  watched *f = calloc(1, sizeof *f);
  slash = strrchr(p, '/');
  if (f != NULL) {
    f->name = strdup(slash != NULL ? slash + 1 : p);
    dir = slash == NULL ? strdup(".")
        : slash == p ? strdup("/") : strndup(p, (size_t)(slash - p));
    f->dir = dir != NULL ? realpath(dir, NULL) : NULL;
    if (f->dir == NULL)               /* a directory that is gone */
      f->dir = dir, dir = NULL;
    free(dir);
  }
  free(real);
  if (f != NULL && (f->name == NULL || f->dir == NULL)) {
    free_files(f);
    return NULL;
  }
  return f;
}

static int has_file(const watched *list, const watched *f) {
  for (; list != NULL; list = list->next)
    if (strcmp(list->dir, f->dir) == 0 && strcmp(list->name, f->name) == 0)
      return 1;
  return 0;
}

/* Starts watching a directory; a failure is logged, and that directory
 * goes unwatched. */
static void watch_dir(ml_reload *r, const char *dir) {
  dirwatch *d = calloc(1, sizeof *d);
  int rc;
  if (d == NULL || (d->dir = strdup(dir)) == NULL) {
    free(d);
    ml_log(MOONLET_LOG_ERROR, "cannot watch %s: out of memory", dir);
    return;
  }
  d->r = r;
  d->used = 1;
  uv_fs_event_init(r->loop, &d->ev);
  r->nhandles++;
  d->next = r->dirs;
  r->dirs = d;
  if ((rc = uv_fs_event_start(&d->ev, on_change, dir, 0)) != 0)
    ml_log(MOONLET_LOG_WARN, "cannot watch %s: %s", dir, uv_strerror(rc));
}

/* Watches each directory the files are in, and only those. */
static void update_dirs(ml_reload *r) {
  dirwatch *d, **p;
  watched *f;
  for (d = r->dirs; d != NULL; d = d->next)
    d->used = 0;
  for (f = r->files; f != NULL; f = f->next) {
    for (d = r->dirs; d != NULL && strcmp(d->dir, f->dir) != 0; d = d->next)
      ;
    if (d != NULL)
      d->used = 1;
    else
      watch_dir(r, f->dir);
  }
  for (p = &r->dirs; (d = *p) != NULL;) {
    if (d->used) {
      p = &d->next;
      continue;
    }
    *p = d->next;
    uv_close((uv_handle_t *)&d->ev, dirwatch_closed);
  }
}

int ml_reload_watch(ml_reload *r, const char *const *files, int n,
                    int replace) {
  watched *list = replace ? NULL : r->files, *f;
  int i, count = 0, rc = 0;
  if (r->closing)
    return 0;
  for (i = 0; i < n && rc == 0; i++) {
    if ((f = resolve(files[i])) == NULL) {
      rc = UV_ENOMEM;
    } else if (has_file(list, f)) {
      free_files(f);
    } else {
      f->next = list;
      list = f;
    }
  }
  if (replace && rc != 0) {         /* keep watching the old set */
    free_files(list);
    return rc;
  }
  if (replace)
    free_files(r->files);
  r->files = list;                  /* added to: the old set is its tail */
  for (f = list; f != NULL; f = f->next)
    count++;
  update_dirs(r);
  ml_log(r->started ? MOONLET_LOG_DEBUG : MOONLET_LOG_INFO,
         "reload: watching %d file(s) for changes", count);
  r->started = 1;
  return rc;
}

void ml_reload_close(ml_reload *r, void (*done)(void *ud), void *ud) {
  dirwatch *d, *next;
  if (r->closing)
    return;
  r->closing = 1;
  r->done = done;
  r->ud = ud;
  free_files(r->files);
  r->files = NULL;
  for (d = r->dirs; d != NULL; d = next) {
    next = d->next;
    uv_close((uv_handle_t *)&d->ev, dirwatch_closed);
  }
  r->dirs = NULL;
  uv_close((uv_handle_t *)&r->quiet, quiet_closed);
}
