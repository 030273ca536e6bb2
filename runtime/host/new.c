/*
 * new.c - `moonlet new NAME`: a starter app in a new directory, with a
 * spec, a .busted that runs busted under Lua 5.4 and finds the Lua module,
 * and a .luarc.json that shows the editor moonlet's annotations.  It only
 * writes files; what they say is in the text below.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>
#include "host/new.h"

#define PATH_LEN 4096

static const char app_text[] =
  "-- %s: a moonlet app.  Run it with: moonlet run app.lua --reload\n"
  "local moonlet = require \"moonlet\"\n"
  "local app = moonlet.app()\n"
  "\n"
  "app:get(\"/\", function(req)\n"
  "  return \"Hello from %s!\"\n"
  "end)\n"
  "\n"
  "app:get(\"/hello/<name>\", function(req, name)\n"
  "  return { hello = name }           -- a table is sent as JSON\n"
  "end)\n"
  "\n"
  "return app\n";

static const char spec_text[] =
  "-- Run with: busted (the .busted next to app.lua picks Lua 5.4)\n"
  "local testing = require \"moonlet.testing\"\n"
  "\n"
  "describe(\"app.lua\", function()\n"
  "  local client\n"
  "  setup(function() client = testing.client(\"app.lua\") end)\n"
  "  teardown(function() client:close() end)\n"
  "\n"
  "  it(\"says hello\", function()\n"
  "    local res = client:get(\"/\")\n"
  "    assert.status(200, res)\n"
  "    assert.equal(\"Hello from %s!\", res.body)\n"
  "  end)\n"
  "\n"
  "  it(\"answers JSON\", function()\n"
  "    assert.same({ hello = \"ann\" }, client:get(\"/hello/ann\"):json())\n"
  "  end)\n"
  "end)\n";

/* The directory of this binary, or "." */
static void exe_dir(char *dir, size_t size) {
  size_t n = size;
  char *slash;
  if (uv_exepath(dir, &n) != 0 || (slash = strrchr(dir, '/')) == NULL) {
    snprintf(dir, size, ".");
    return;
  }
  *slash = '\0';
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

/* Sets out to dir + sub when dir + sub + "/" + file exists (file "": the
 * directory itself); 1 if it did. */
static int found(char *out, size_t size, const char *dir, const char *sub,
                 const char *file) {
  char path[PATH_LEN];
  int n = snprintf(path, sizeof path, "%s%s%s%s", dir, sub,
                   *file ? "/" : "", file);
  if (n < 0 || (size_t)n >= sizeof path || !exists(path) ||
      (size_t)snprintf(out, size, "%s%s", dir, sub) >= size) {
    out[0] = '\0';
    return 0;
  }
  return 1;
}

/* Where moonlet.so and the LuaLS files are, for this binary: next to it
 * (a build directory: build/moonlet.so and ../lua/types), or in its
 * prefix (PREFIX/bin/moonlet: PREFIX/lib/lua/5.4, PREFIX/share/moonlet).
 * Empty when not found. */
static void find_parts(char *so_dir, char *types, size_t size) {
  char dir[PATH_LEN];
  exe_dir(dir, sizeof dir);
  so_dir[0] = types[0] = '\0';
  if (!found(so_dir, size, dir, "", "moonlet.so"))
    found(so_dir, size, dir, "/../lib/lua/5.4", "moonlet.so");
  if (!found(types, size, dir, "/../share/moonlet/types", ""))
    found(types, size, dir, "/../lua/types", "");
}

/* A path made absolute and without "..", for the files that name it. */
static void absolute(char *path, size_t size) {
  char *real = realpath(path, NULL);
  if (real != NULL) {
    snprintf(path, size, "%s", real);
    free(real);
  }
}

static int write_file(const char *dir, const char *name, const char *fmt,
                      const char *a, const char *b) {
  char path[PATH_LEN];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  if ((f = fopen(path, "w")) == NULL) {
    fprintf(stderr, "moonlet new: cannot write %s: %s\n", path,
            strerror(errno));
    return -1;
  }
  fprintf(f, fmt, a, b);
  return fclose(f) == 0 ? 0 : -1;
}

/* .busted: Lua 5.4 (busted runs Debian's default Lua otherwise), and
 * moonlet.so's directory when it is not on Lua's default path. */
static int write_busted(const char *dir, const char *so_dir) {
  char cpath[PATH_LEN + 32] = "";
  if (so_dir[0] != '\0' && strchr(so_dir, '"') == NULL &&
      strchr(so_dir, '\\') == NULL)
    snprintf(cpath, sizeof cpath, "    cpath = \"%s/?.so\",\n", so_dir);
  return write_file(dir, ".busted",
                    "return {\n  default = {\n    lua = \"lua5.4\",\n%s"
                    "    ROOT = { \"spec\" },\n  },\n}\n%s", cpath, "");
}

static int write_luarc(const char *dir, const char *types) {
  char lib[PATH_LEN + 8] = "";
  if (types[0] != '\0' && strchr(types, '"') == NULL &&
      strchr(types, '\\') == NULL)
    snprintf(lib, sizeof lib, "\"%s\"", types);
  return write_file(dir, ".luarc.json",
                    "{\n  \"runtime.version\": \"Lua 5.4\",\n"
                    "  \"runtime.pathStrict\": true,\n"
                    "  \"workspace.library\": [%s]\n}\n%s", lib, "");
}

int ml_new_app(const char *name) {
  char so_dir[PATH_LEN], types[PATH_LEN], spec[PATH_LEN];
  const char *base = strrchr(name, '/') ? strrchr(name, '/') + 1 : name;
  if (*base == '\0' || exists(name)) {
    fprintf(stderr, "moonlet new: %s %s\n", name,
            *base == '\0' ? "is not a name" : "already exists");
    return 1;
  }
  find_parts(so_dir, types, sizeof so_dir);
  absolute(so_dir, sizeof so_dir);
  absolute(types, sizeof types);
  snprintf(spec, sizeof spec, "%s/spec", name);
  if (mkdir(name, 0777) != 0 || mkdir(spec, 0777) != 0) {
    fprintf(stderr, "moonlet new: cannot make %s: %s\n", name,
            strerror(errno));
    return 1;
  }
  if (write_file(name, "app.lua", app_text, base, base) != 0 ||
      write_file(name, "spec/app_spec.lua", spec_text, base, "") != 0 ||
      write_busted(name, so_dir) != 0 || write_luarc(name, types) != 0)
    return 1;
  printf("made %s/: app.lua, spec/app_spec.lua, .busted, .luarc.json\n\n"
         "  cd %s\n  busted                         # its tests, under "
         "Lua 5.4\n  moonlet run app.lua --reload   # then open "
         "http://127.0.0.1:8080/\n", name, name);
  if (so_dir[0] == '\0')
    printf("\nbusted needs the Lua module moonlet.so, which is not next "
           "to this moonlet:\nrun `make install` (or `make module`) in "
           "moonlet's directory.\n");
  return 0;
}
