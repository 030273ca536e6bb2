/*
 * new.h - `moonlet new NAME` (new.c).
 */
#ifndef ML_NEW_H
#define ML_NEW_H

/* Makes the directory 'name' with a starter app, its spec, a .busted and
 * a .luarc.json; prints what to do next.  The exit status: 0, or 1 with
 * the reason on stderr (the directory exists, a write failed). */
int ml_new_app(const char *name);

#endif
