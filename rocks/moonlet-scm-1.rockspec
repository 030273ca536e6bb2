-- moonlet as a Lua C module: `luarocks make rocks/moonlet-scm-1.rockspec`
-- from the repository's top (as root: the system tree, /usr/local; else
-- add --local and `eval "$(luarocks path)"`) builds build/moonlet.so (the
-- runtime, with its Lua files built in) and installs it as the module
-- "moonlet".  Needs no other rock; needs the -dev packages of the
-- Makefile's PKGS installed (OpenSSL's libssl-dev among them: TLS,
-- https and wss).
rockspec_format = "3.0"
package = "moonlet"
version = "scm-1"
source = {
  url = "git+https://example.invalid/moonlet.git",
}
description = {
  summary = "Flask-style web apps in Lua 5.4 on a C event loop",
  detailed = [[
    Handlers run in coroutines on libuv; moonlet.run drives the loop from
    a stock lua5.4, and moonlet.testing tests apps with busted.
  ]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.4, < 5.5",
}
-- The Makefile finds them with pkg-config; luarocks checks the headers
-- first, so a missing -dev package is named before the build starts.
external_dependencies = {
  OPENSSL = { header = "openssl/ssl.h" },
  LIBUV = { header = "uv.h" },
}
build = {
  type = "make",
  build_target = "module",
  install_target = "rock-install",
  build_variables = {
    CC = "$(CC)",
    CFLAGS = "$(CFLAGS)",
  },
  install_variables = {
    LIBDIR = "$(LIBDIR)",
  },
}
