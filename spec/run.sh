#!/bin/sh
# Runs every suite (the C tests, then busted under Lua 5.4) and ends with
# one line summing them: "N passed, N failed".  Exit status 1 on any failure.
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
