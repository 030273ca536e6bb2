/*
 * lib_template.c - the C half of moonlet.template: the list of files in
 * a template directory, so that a template set compiles (and --reload
 * watches) every template when the app loads.  Compiling and rendering
 * are Lua (lua/moonlet/template.lua).
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <lauxlib.h>
#include "vm/lib_template.h"

#define MAX_DEPTH 8           /* templates/a/b/c/...: deeper is not read */
#define MAX_PATH 4096

/* Appends the regular files under dir/rel (rel "" at the top) to the
 * list at the top of the stack, as paths relative to dir; names that
 * start with '.' are skipped.  0, or a negative errno for dir itself. */
static int list_dir(lua_State *L, const char *dir, const char *rel,
                    int depth) {
  char path[MAX_PATH], sub[MAX_PATH];
  DIR *d;
  struct dirent *ent;
  struct stat st;
  snprintf(path, sizeof path, "%s%s%s", dir, *rel ? "/" : "", rel);
  if ((d = opendir(path)) == NULL)
    return -errno;
  while ((ent = readdir(d)) != NULL) {
    if (ent->d_name[0] == '.')
      continue;
    if (snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "/" : "",
                 ent->d_name) >= (int)sizeof sub ||
        snprintf(path, sizeof path, "%s/%s", dir, sub) >= (int)sizeof path)
      continue;                 /* a path too long to be a template's */
    if (stat(path, &st) != 0)
      continue;                 /* gone meanwhile, or a dangling link */
    if (S_ISDIR(st.st_mode) && depth < MAX_DEPTH) {
      list_dir(L, dir, sub, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      lua_pushstring(L, sub);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
    }
  }
  closedir(d);
  return 0;
}

/* template_files(dir) -> the list of files under dir (relative paths,
 * in no particular order), or nil and the reason. */
static int template_files(lua_State *L) {
  const char *dir = luaL_checkstring(L, 1);
  int rc;
  lua_newtable(L);
  if ((rc = list_dir(L, dir, "", 0)) != 0) {
    lua_pushnil(L);
    lua_pushstring(L, strerror(-rc));
    return 2;
  }
  return 1;
}

void ml_lib_template_register(lua_State *L) {
  lua_pushcfunction(L, template_files);
  lua_setfield(L, -2, "template_files");
}
