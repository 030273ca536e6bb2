#!/bin/sh
# Runs every suite (the C tests, the C tests again under ASan + UBSan when
# built, the fuzzers for FUZZ_SECONDS when built, the layering check, then
# busted under Lua 5.4)
# and ends with one line summing them: "N passed, N failed".  Exit status
# 1 on any failure.
BUILD=${BUILD:-build}
export MOONLET_BIN="$BUILD/moonlet"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== C tests ($BUILD/ctest)"
"$BUILD/ctest" | tee "$tmp/c.out"
c_rc=$?
c_line=$(tail -n 1 "$tmp/c.out")
c_pass=$(echo "$c_line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
c_fail=$(echo "$c_line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
if [ -z "$c_pass" ]; then c_pass=0; c_fail=1; echo "C tests did not finish"; fi

# The same C tests built with AddressSanitizer and UBSan (make test builds
# them; `make test-asan` runs everything that way).
if [ "$BUILD" = build ] && [ -x build-asan/ctest ]; then
  echo "== C tests under ASan + UBSan (build-asan/ctest)"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
    build-asan/ctest > "$tmp/asan.out" 2>&1
  a_rc=$?
  tail -n 3 "$tmp/asan.out"
  a_line=$(tail -n 1 "$tmp/asan.out")
  a_pass=$(echo "$a_line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p')
  a_fail=$(echo "$a_line" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p')
  if [ -z "$a_pass" ] || [ "$a_rc" -ne 0 ]; then
    cat "$tmp/asan.out"; a_pass=${a_pass:-0}; a_fail=$((${a_fail:-0} + 1))
  fi
  c_pass=$((c_pass + a_pass)); c_fail=$((c_fail + a_fail))
fi

# The fuzzers (spec/fuzz), each for a while: one test each, passed when
# it finds nothing in that time.
fuzz() {  # fuzz NAME SECONDS CORPUS
  [ -n "$2" ] && [ -x "build-fuzz/fuzz_$1" ] || return 0
  echo "== fuzzing $1 for $2 s"
  mkdir -p "build-fuzz/$3"
  if "build-fuzz/fuzz_$1" -max_total_time="$2" -timeout=10 \
      -rss_limit_mb=2048 -artifact_prefix=build-fuzz/ -print_final_stats=1 \
      "build-fuzz/$3" "spec/fuzz/$3" > "$tmp/fuzz.out" 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done" "$tmp/fuzz.out"
    c_pass=$((c_pass + 1))
  else
    tail -n 40 "$tmp/fuzz.out"; c_fail=$((c_fail + 1))
  fi
}
fuzz conn "$FUZZ_SECONDS" corpus
fuzz tls "${FUZZ_TLS_SECONDS:-$FUZZ_SECONDS}" corpus
fuzz ws "${FUZZ_WS_SECONDS:-$FUZZ_SECONDS}" corpus_ws

# The RESP fuzzer (spec/fuzz/fuzz_resp.c), a third of that time.
[ -n "$FUZZ_SECONDS" ] && fuzz resp $(( (FUZZ_SECONDS + 2) / 3 )) resp_corpus

# The proxy parsers' fuzzer (PROXY protocol, Forwarded, X-Forwarded-*),
# a third of that time.
[ -n "$FUZZ_SECONDS" ] && fuzz proxy $((FUZZ_SECONDS / 3)) corpus-proxy

# The layering check: no file includes or calls a layer above its own.
echo "== layers (spec/layers.lua)"
if lua5.4 spec/layers.lua "$BUILD"; then c_pass=$((c_pass + 1))
else c_fail=$((c_fail + 1)); fi

echo "== busted (Lua 5.4)"
lua5.4 /usr/bin/busted -o TAP spec > "$tmp/lua.out" 2>&1
l_rc=$?
cat "$tmp/lua.out"
l_pass=$(grep -c '^ok ' "$tmp/lua.out")
l_fail=$(grep -c '^not ok ' "$tmp/lua.out")
if [ "$l_rc" -ne 0 ] && [ "$l_fail" -eq 0 ]; then
  l_fail=1; echo "busted failed to run"
fi

# Sanitizer builds write their reports to files: any report fails the run.
if [ -n "$SANITIZER_REPORTS" ] && [ -n "$(ls -A "$SANITIZER_REPORTS")" ]; then
  echo "== sanitizer reports"
  cat "$SANITIZER_REPORTS"/*
  l_fail=$((l_fail + 1))
fi

pass=$((c_pass + l_pass))
fail=$((c_fail + l_fail))
echo "C: $c_pass passed, $c_fail failed; Lua: $l_pass passed, $l_fail failed"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ] && [ "$c_rc" -eq 0 ]
