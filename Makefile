# moonlet: one Makefile.  `make run` and `make test` are all the set-up a
# fresh Debian machine needs: both install the packages below when missing.

CC       ?= cc
BUILD    ?= build
PKGS     := liblua5.4-dev libuv1-dev node-llhttp lua5.4 lua-busted lua-cjson \
            lua-socket pkg-config gcc make curl luarocks \
            libssl-dev openssl ca-certificates zlib1g-dev libhiredis-dev libpq-dev
# What the tests run against: real servers and clients others wrote
# (python3 serves TLS to the https client and talks wss://, LuaSec is a
# TLS client; make testssl installs testssl.sh for itself; chromium
# opens the chat example in a headless browser).
TEST_PKGS := redis-server postgresql haproxy node-ws python3-websockets \
             lua-nginx-redis iproute2 procps python3 lua-sec wrk chromium
LLHTTP   := /usr/share/llhttp
PORT     ?= 8080

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
OPT      ?= -O2 -g
CFLAGS_ALL = -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(OPT) \
             $(SANITIZE) -iquote runtime -I/usr/share/include/llhttp \
             $(shell pkg-config --cflags $(PC_MODS) 2>/dev/null)
# The libraries the runtime links: Lua, libuv, OpenSSL (TLS, SHA-1,
# base64, HMAC), zlib (permessage-deflate), hiredis (RESP), libpq.
PC_MODS  := lua5.4 libuv openssl zlib hiredis libpq
LIBS     = $(shell pkg-config --libs $(PC_MODS) 2>/dev/null) -lm -ldl -lpthread

# runtime/ in four layers (README "Layout"): base/ net/ vm/ host/.
LAYERS      := base net vm host
RUNTIME_SRC := $(filter-out runtime/host/main.c,\
                 $(foreach l,$(LAYERS),$(wildcard runtime/$(l)/*.c)))
RUNTIME_HDR := runtime/moonlet.h $(wildcard runtime/*/*.h)
RUNTIME_OBJ  = $(RUNTIME_SRC:runtime/%.c=$(BUILD)/%.o)
LLHTTP_OBJ   = $(BUILD)/llhttp/api.o $(BUILD)/llhttp/http.o \
               $(BUILD)/llhttp/llhttp.o
LUA_SRC     := $(sort $(wildcard lua/moonlet/*.lua))
CTEST_SRC   := $(wildcard spec/c/*.c)

.PHONY: all deps test-deps run test test-c test-lua test-gc asan test-asan check-leaks \
        fuzz fuzz-resp fuzz-deps embed-example module rock-install install uninstall \
        clean

all: deps $(BUILD)/moonlet

# Installs what is missing, once per machine; apt-get needs root.  While
# it installs, a policy-rc.d (when the machine has none) keeps Debian from
# starting the services it installs: tests start their own instances.
deps:
	@missing=$$(for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
	  grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  rcd=/usr/sbin/policy-rc.d; made=; \
	  if [ ! -e $$rcd ]; then \
	    printf '#!/bin/sh\nexit 101\n' | $$SUDO tee $$rcd >/dev/null && \
	    $$SUDO chmod 755 $$rcd && made=1; fi; \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq \
	    $$missing >/dev/null; rc=$$?; \
	  [ -z "$$made" ] || $$SUDO rm -f $$rcd; [ $$rc = 0 ] || exit 1; \
	fi

test-deps:
	@$(MAKE) --no-print-directory deps PKGS="$(TEST_PKGS)"

$(BUILD)/%.o: runtime/%.c $(RUNTIME_HDR) | $(BUILD)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) $(WARN) -c $< -o $@

# llhttp in its strict mode, the one llhttp 9 made the default: Debian's
# 8.1.0 otherwise takes any byte after a head's last CR, and any two
# bytes for the CRLF after chunk data (request smuggling).
$(BUILD)/llhttp/%.o: $(LLHTTP)/%.c Makefile | $(BUILD)
	@mkdir -p $(BUILD)/llhttp
	$(CC) $(CFLAGS_ALL) -DLLHTTP_STRICT_MODE=1 -w -c $< -o $@

# The framework's Lua files are compiled into the binary, so it runs from
# anywhere; each module keeps its file name for tracebacks.
$(BUILD)/luasrc.c: $(LUA_SRC) Makefile | $(BUILD)
	@{ echo '/* generated from lua/moonlet by the Makefile */'; \
	  echo '#include "vm/luasrc.h"'; i=0; \
	  for f in $(LUA_SRC); do \
	    echo "static const char m$$i[] = {"; \
	    od -An -v -tx1 $$f | sed 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	    echo "0};"; i=$$((i+1)); done; \
	  echo 'const ml_luasrc ml_luasrc_list[] = {'; i=0; \
	  for f in $(LUA_SRC); do \
	    m=$$(basename $$f .lua); \
	    if [ $$m = init ]; then n=moonlet; else n=moonlet.$$m; fi; \
	    echo "  {\"$$n\", \"$$f\", m$$i, sizeof m$$i - 1},"; i=$$((i+1)); \
	  done; echo '  {0, 0, 0, 0}'; echo '};'; } > $@

$(BUILD)/luasrc.o: $(BUILD)/luasrc.c runtime/vm/luasrc.h
	$(CC) $(CFLAGS_ALL) -c $< -o $@

$(BUILD)/libmoonlet.a: $(RUNTIME_OBJ) $(LLHTTP_OBJ) $(BUILD)/luasrc.o
	rm -f $@ && ar rcs $@ $^

$(BUILD)/moonlet: $(BUILD)/host/main.o $(BUILD)/libmoonlet.a
	$(CC) $(SANITIZE) -o $@ $^ $(LIBS) -Wl,-E

$(BUILD)/ctest: $(CTEST_SRC) spec/c/*.h $(BUILD)/libmoonlet.a
	$(CC) $(CFLAGS_ALL) -iquote spec/c -o $@ $(CTEST_SRC) $(BUILD)/libmoonlet.a \
	  $(LIBS)

$(BUILD):
	@mkdir -p $(BUILD)

# apps/embed/host.c: a C program of its own hosting an app, built the way
# any embedder builds one: the public header and the library, nothing more.
EMBED_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L $(OPT) $(SANITIZE) \
               -iquote runtime \
               $(shell pkg-config --cflags $(PC_MODS) 2>/dev/null)
embed-example: deps $(BUILD)/embed-host

$(BUILD)/embed-host: apps/embed/host.c runtime/moonlet.h $(BUILD)/libmoonlet.a
	$(CC) $(EMBED_CFLAGS) $(WARN) -o $@ apps/embed/host.c \
	  $(BUILD)/libmoonlet.a $(LIBS)

# The Lua module: the same runtime built with -fPIC in build-pic/ and
# linked into one shared object that a stock lua5.4 loads for
# require "moonlet" (its Lua files are built in).  Lua's own symbols come
# from the interpreter that loads it.
MODULE_LIBS = $(shell pkg-config --libs $(filter-out lua5.4,$(PC_MODS)) \
                2>/dev/null) -lm -ldl -lpthread
module: deps $(BUILD)/moonlet.so

$(BUILD)/moonlet.so: $(RUNTIME_SRC) $(RUNTIME_HDR) $(LUA_SRC) | $(BUILD)
	@$(MAKE) --no-print-directory BUILD=build-pic OPT="$(OPT) -fPIC" \
	  build-pic/libmoonlet.a
	$(CC) $(SANITIZE) -shared -o $@ -Wl,--whole-archive build-pic/libmoonlet.a \
	  -Wl,--no-whole-archive $(MODULE_LIBS)

# What rocks/moonlet-scm-1.rockspec runs after `make module`: LIBDIR is
# the tree's lib/lua/5.4, which luarocks passes.
rock-install: $(BUILD)/moonlet.so
	mkdir -p $(LIBDIR) && cp $(BUILD)/moonlet.so $(LIBDIR)/moonlet.so

# `make install PREFIX=/usr/local` (the default; DESTDIR for packaging):
# the binary, the Lua module where a stock lua5.4 looks for it
# (PREFIX/lib/lua/5.4, on Debian's default package.cpath for /usr/local)
# and the LuaLS annotations an editor reads (PREFIX/share/moonlet/types).
PREFIX  ?= /usr/local
LUA_CMOD = $(DESTDIR)$(PREFIX)/lib/lua/5.4
TYPES    = $(DESTDIR)$(PREFIX)/share/moonlet/types
install: all $(BUILD)/moonlet.so
	install -d $(DESTDIR)$(PREFIX)/bin $(LUA_CMOD) $(TYPES)/moonlet
	install -m 755 $(BUILD)/moonlet $(DESTDIR)$(PREFIX)/bin/moonlet
	install -m 644 $(BUILD)/moonlet.so $(LUA_CMOD)/moonlet.so
	install -m 644 lua/types/moonlet.lua $(TYPES)/moonlet.lua
	install -m 644 lua/types/moonlet/*.lua $(TYPES)/moonlet/

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/moonlet $(LUA_CMOD)/moonlet.so
	rm -rf $(TYPES)
	-rmdir $(DESTDIR)$(PREFIX)/share/moonlet 2>/dev/null

run: all
	$(BUILD)/moonlet run apps/hello.lua --port $(PORT)

# Every suite, then one line summing them all: the C tests (also under
# ASan + UBSan), 30 s of fuzzing the connection path and 15 s of
# WebSocket frames, and the busted specs.
FUZZ_SECONDS ?= 30
FUZZ_WS_SECONDS ?= 15
FUZZ_TLS_SECONDS ?= 15
test: deps test-deps fuzz-deps
	@$(MAKE) --no-print-directory $(BUILD)/moonlet $(BUILD)/ctest
	@$(MAKE) --no-print-directory asan $(FUZZERS) build-fuzz/fuzz_resp \
	  build-fuzz/fuzz_proxy >/dev/null
	@BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) \
	  FUZZ_WS_SECONDS=$(FUZZ_WS_SECONDS) \
	  FUZZ_TLS_SECONDS=$(FUZZ_TLS_SECONDS) sh spec/run.sh

test-c: deps
	@$(MAKE) --no-print-directory $(BUILD)/ctest && $(BUILD)/ctest

test-lua: deps
	@$(MAKE) --no-print-directory $(BUILD)/moonlet && \
	  MOONLET_BIN=$(BUILD)/moonlet lua5.4 /usr/bin/busted $(ARGS) spec

# The busted suite with a full garbage collection before every resume in
# the servers: a reference dropped too early fails at once.
test-gc: deps
	@$(MAKE) --no-print-directory $(BUILD)/moonlet && MOONLET_GC_STRESS=1 \
	  MOONLET_BIN=$(BUILD)/moonlet lua5.4 /usr/bin/busted $(ARGS) spec

# The same code built with AddressSanitizer and UBSan, in its own folder.
asan: deps
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g" \
	  SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer" \
	  build-asan/moonlet build-asan/ctest

# Reports go to files in build-asan/reports; spec/run.sh fails on any.
test-asan: asan
	@rm -rf build-asan/reports && mkdir -p build-asan/reports && \
	  ASAN_OPTIONS=detect_leaks=1:log_path=$(CURDIR)/build-asan/reports/asan \
	  UBSAN_OPTIONS=print_stacktrace=1:log_path=$(CURDIR)/build-asan/reports/ubsan \
	  SANITIZER_REPORTS=build-asan/reports BUILD=build-asan sh spec/run.sh

# The C tests, then the busted suite with every server under valgrind;
# any error or definite leak in a log fails it.
VALGRIND = valgrind --leak-check=full --errors-for-leak-kinds=definite \
           --error-exitcode=9
check-leaks: all $(BUILD)/ctest
	$(VALGRIND) -q $(BUILD)/ctest | tail -n 1
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	-@MOONLET_WRAP="$(VALGRIND) --log-file=$(CURDIR)/$(BUILD)/valgrind/%p.log" \
	  MOONLET_BIN=$(BUILD)/moonlet lua5.4 /usr/bin/busted $(ARGS) spec | tail -n 3
	@bad=$$(grep -lE 'ERROR SUMMARY: [1-9]|definitely lost: [1-9]' \
	  $(BUILD)/valgrind/*.log); \
	if [ -n "$$bad" ]; then cat $$bad; echo "valgrind: errors in $$bad"; \
	  exit 1; fi; echo "valgrind: $$(ls $(BUILD)/valgrind | wc -l) servers, clean"

# Fuzzing with libFuzzer: the connection path (spec/fuzz/fuzz_conn.c),
# the same over TLS (spec/fuzz/fuzz_tls.c: the input sent through an
# OpenSSL client, so it reaches the parser decrypted; the same corpus)
# and WebSocket frames (spec/fuzz/fuzz_ws.c).  `make fuzz SECONDS=600`
# runs each for that long.  Their build has tiny back-pressure marks
# (ML_FUZZ_MARKS), so that short inputs pause and resume reading.  New
# inputs go to build-fuzz/corpus (and corpus_ws), crashes to
# build-fuzz/crash-*; a crash, once fixed, joins spec/fuzz/corpus (or
# corpus_ws).
SECONDS ?= 600
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer
FUZZ_RUN := -timeout=10 -rss_limit_mb=2048 -artifact_prefix=build-fuzz/
FUZZERS  := build-fuzz/fuzz_conn build-fuzz/fuzz_tls build-fuzz/fuzz_ws

fuzz-deps:
	@$(MAKE) --no-print-directory deps PKGS="clang-14 libclang-rt-14-dev"

build-fuzz/fuzz_%: spec/fuzz/fuzz_%.c $(RUNTIME_SRC) $(RUNTIME_HDR) \
                   $(LUA_SRC) | fuzz-deps
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang-14 \
	  OPT="-O1 -g -DML_FUZZ_MARKS" \
	  SANITIZE="$(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
	  build-fuzz/libmoonlet.a
	clang-14 -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
	  $(FUZZ_SAN) -fsanitize=fuzzer -iquote runtime \
	  $(shell pkg-config --cflags $(PC_MODS)) -o $@ $< \
	  build-fuzz/libmoonlet.a $(LIBS)

# The proxy parsers (spec/fuzz/fuzz_proxy.c: the PROXY protocol header,
# Forwarded and X-Forwarded-*) need no server: their files alone.
FUZZ_PROXY_SRC := spec/fuzz/fuzz_proxy.c runtime/net/proxy.c \
                  runtime/net/forwarded.c
build-fuzz/fuzz_proxy: $(FUZZ_PROXY_SRC) runtime/net/proxy.h \
                       runtime/net/forwarded.h | fuzz-deps
	@mkdir -p build-fuzz
	clang-14 -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
	  $(FUZZ_SAN) -fsanitize=fuzzer -iquote runtime -o $@ $(FUZZ_PROXY_SRC)

build-fuzz/fuzz_tls: spec/fuzz/fuzz_conn.c

fuzz: deps $(FUZZERS) build-fuzz/fuzz_proxy
	@mkdir -p build-fuzz/corpus build-fuzz/corpus_ws build-fuzz/corpus-proxy
	build-fuzz/fuzz_conn -max_total_time=$(SECONDS) $(FUZZ_RUN) \
	  build-fuzz/corpus spec/fuzz/corpus
	build-fuzz/fuzz_tls -max_total_time=$(SECONDS) $(FUZZ_RUN) \
	  build-fuzz/corpus spec/fuzz/corpus
	build-fuzz/fuzz_ws -max_total_time=$(SECONDS) $(FUZZ_RUN) \
	  build-fuzz/corpus_ws spec/fuzz/corpus_ws
	build-fuzz/fuzz_proxy -max_total_time=$(SECONDS) $(FUZZ_RUN) \
	  build-fuzz/corpus-proxy spec/fuzz/corpus-proxy

# The RESP path (net/resp.c over hiredis's reader and encoder) alone:
# `make fuzz-resp SECONDS=600`; its corpus is spec/fuzz/resp_corpus.
build-fuzz/fuzz_resp: spec/fuzz/fuzz_resp.c runtime/net/resp.c \
                      runtime/net/resp.h runtime/base/util.c | fuzz-deps
	@mkdir -p build-fuzz
	clang-14 -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -g -O1 \
	  $(FUZZ_SAN) -fsanitize=fuzzer -iquote runtime \
	  $(shell pkg-config --cflags hiredis) -o $@ spec/fuzz/fuzz_resp.c \
	  runtime/net/resp.c runtime/base/util.c \
	  $(shell pkg-config --libs hiredis)

fuzz-resp: deps build-fuzz/fuzz_resp
	@mkdir -p build-fuzz/resp_corpus
	build-fuzz/fuzz_resp -max_total_time=$(SECONDS) $(FUZZ_RUN) \
	  build-fuzz/resp_corpus spec/fuzz/resp_corpus

clean:
	rm -rf build build-asan build-fuzz build-pic

# Three hosts behind HAProxy with one Redis, in network namespaces on
# this machine (spec/cluster/run.sh; docs/running.md, "Running on many
# machines").  Needs root.  CLUSTER_DURATION=25 seconds of load.
# testssl.sh (Debian testssl.sh, installed here, not by make test)
# against an HTTPS server on a throwaway certificate: a few minutes.
testssl: all
	@$(MAKE) --no-print-directory deps PKGS="testssl.sh"
	@BUILD=$(BUILD) sh spec/tls/testssl.sh

.PHONY: testssl cluster
cluster: deps test-deps
	@$(MAKE) --no-print-directory $(BUILD)/moonlet
	@MOONLET_BIN=$(BUILD)/moonlet bash spec/cluster/run.sh

# Benchmarks: moonlet against nginx + ngx_lua and a bare libuv + llhttp
# ceiling (spec/bench/README.md).  Installs wrk, nginx and valgrind when
# missing.  BENCH_DURATION=3 BENCH_RUNS=1 make bench for a quick look.
.PHONY: bench bench-instr bench-shared
bench: deps
	@sh spec/bench/deps.sh
	@$(MAKE) --no-print-directory $(BUILD)/moonlet
	@BUILD=$(BUILD) sh spec/bench/run.sh

# moonlet.shared beside nginx's lua_shared_dict, 1 and 2 workers, and how
# long its calls hold the lock (spec/bench/shared.sh): results/shared.md.
bench-shared: deps
	@sh spec/bench/deps.sh
	@$(MAKE) --no-print-directory $(BUILD)/moonlet
	@BUILD=$(BUILD) sh spec/bench/shared.sh

# Instructions per hello request and per fan-in request under callgrind:
# quote them with every performance change.
bench-instr: deps
	@sh spec/bench/deps.sh
	@$(MAKE) --no-print-directory $(BUILD)/moonlet
	@BUILD=$(BUILD) sh spec/bench/instr.sh
