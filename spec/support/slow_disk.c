/*
 * slow_disk.c - a slow disk for static_slow_spec.lua, preloaded into the
 * server (LD_PRELOAD): realpath(3), stat(2) and open(2) of a path with
 * "slow-disk" in it take SLOW_DISK_MS milliseconds first, as on a
 * network file system that stalls.  Everything else goes straight
 * through to libc.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>

static void slow(const char *path) {
  const char *ms = getenv("SLOW_DISK_MS");
  struct timespec t;
  long n;
  if (path == NULL || ms == NULL || strstr(path, "slow-disk") == NULL)
    return;
  n = atol(ms);
  t.tv_sec = n / 1000;
  t.tv_nsec = (n % 1000) * 1000000L;
  while (nanosleep(&t, &t) != 0)      /* a signal (the watchdog's) */
    ;                                  /* does not cut it short */
}

char *realpath(const char *path, char *resolved) {
  static char *(*real)(const char *, char *);
  if (real == NULL)
    real = (char *(*)(const char *, char *))dlsym(RTLD_NEXT, "realpath");
  slow(path);
  return real(path, resolved);
}

int open(const char *path, int flags, ...) {
  static int (*real)(const char *, int, ...);
  mode_t mode = 0;
  if (flags & O_CREAT) {
    va_list ap;
    va_start(ap, flags);
    mode = (mode_t)va_arg(ap, int);
    va_end(ap);
  }
  if (real == NULL)
    real = (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, "open");
  slow(path);
  return real(path, flags, mode);
}
