#!/bin/sh
# instr.sh - `make bench-instr`: instructions per hello request, counted by
# callgrind, a number machine noise does not move.  Each server runs under
# valgrind; after a warm-up the counters are zeroed, N requests go over
# keep-alive connections, the counters are dumped: Ir / N.  The same for
# nginx + ngx_lua and the ceiling, for scale.  Prints the line and puts it
# into results/latest.md when that exists.
#
#   BENCH_INSTR_N=20000 requests   BENCH_INSTR_CONNS=1 connections
#   BENCH_INSTR_PEERS=1 (0: moonlet only)
set -u
. spec/bench/lib.sh

N=${BENCH_INSTR_N:-20000}
CONNS=${BENCH_INSTR_CONNS:-1}
PEERS=${BENCH_INSTR_PEERS:-1}
NGX_PORT=${BENCH_PORT:-18081}
RESULTS="$HERE/results"

[ -x "$ML" ] || die "$ML is missing: run make first"
command -v valgrind > /dev/null || die "valgrind is missing"
bench_tmp
build_tools

VG="valgrind --tool=callgrind --dump-instr=no --dump-line=no"

# count NAME: zero the counters of the valgrind'ed PID, drive N requests,
# dump; prints the Ir of that phase divided by N.
count() {
  taskset -c 1 "$BIN/client" count "$PORT" / 2000 "$CONNS" > /dev/null ||
    die "$1: the warm-up failed"
  callgrind_control -z "$PID" > /dev/null 2>&1 || die "callgrind_control -z"
  out=$(taskset -c 1 "$BIN/client" count "$PORT" / "$N" "$CONNS") ||
    die "$1: $out"
  rm -f "$T/$1".cg.*
  callgrind_control -d "$PID" > /dev/null 2>&1 || die "callgrind_control -d"
  f=$(ls "$T/$1".cg.* 2>/dev/null | head -n 1)
  [ -n "$f" ] || die "$1: no callgrind dump"
  ir=$(awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$f")
  if [ "$1" = moonlet ]; then
    # Self cost per function; the frames that were on the stack when the
    # counters were zeroed show (nearly) everything and are dropped.
    callgrind_annotate --threshold=100 --auto=no "$f" 2>/dev/null |
      sed -n '/file:function/,$p' | sed -n '3,$p' |
      grep -v -E 'moonlet_main|:main |libc_start|below main|ld-linux' |
      head -n 25 > "$T/profile.txt"
  fi
  awk -v ir="$ir" -v n="$N" 'BEGIN { printf "%.0f", ir / n }'
}

# under_valgrind NAME CMD...: starts CMD under callgrind, dumps to
# $T/NAME.cg.<N>; PID is valgrind's (it becomes the program).
under_valgrind() {
  name=$1
  shift
  taskset -c 0 $VG --callgrind-out-file="$T/$name.cg" "$@" \
    > "$T/$name.out" 2> "$T/$name.err" &
  PID=$!
  STARTED="$STARTED $PID"
}

under_valgrind moonlet "$ML" run "$HERE/apps/hello.lua" --port 0 \
  --log-level warn
line=$(wait_line "$T/moonlet.out" "listening on" 60) ||
  { cat "$T/moonlet.err" >&2; die "moonlet did not start under valgrind"; }
PORT=${line##*:}
rm -f "$T"/moonlet.cg*
m=$(count moonlet) || exit 1
stop "$PID"

peers=""
if [ "$PEERS" = 1 ]; then
  under_valgrind limit "$BIN/limit" --port 0
  line=$(wait_line "$T/limit.out" "listening on" 60) || die "limit did not start"
  PORT=${line##*:}
  l=$(count limit) || exit 1
  stop "$PID"
  peers="nginx + ngx_lua -"
  if command -v nginx > /dev/null; then
    nginx_conf "$T/nginx" "$NGX_PORT" "Hello, World!"
    sed -i 's/^master_process on;/master_process off;/' "$T/nginx/nginx.conf"
    under_valgrind nginx nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" \
      -e "$T/nginx/error.log"
    PORT=$NGX_PORT
    i=0
    until "$BIN/client" get "$PORT" / > /dev/null 2>&1; do
      i=$((i + 1))
      [ $i -lt 300 ] && alive "$PID" || die "nginx did not start under valgrind"
      sleep 0.1
    done
    peers="nginx + ngx_lua $(count nginx)"
    stop "$PID"
  fi
  peers=" ($peers, ceiling $l)"
fi

echo "instructions per request: $m$peers"
echo "(hello, callgrind, $N requests on $CONNS keep-alive connection(s))"
echo "moonlet's top functions by own instructions:"
cat "$T/profile.txt"
if [ -f "$RESULTS/latest.md" ]; then
  commit=$(git rev-parse --short HEAD 2>/dev/null)
  [ "$(git status --porcelain runtime lua 2>/dev/null | wc -l)" -gt 0 ] &&
    commit="$commit + uncommitted changes"
  text="- Instructions per request (hello, callgrind, \`make bench-instr\`,"
  text="$text $N requests on $CONNS connection(s), $(date -u '+%Y-%m-%d'),"
  text="$text $commit): **moonlet $m**$peers."
  awk -v t="$text" '/^- Instructions per request/ { print t; done = 1; next }
    { print } END { if (!done) print t }' "$RESULTS/latest.md" \
    > "$T/latest.md" && cat "$T/latest.md" > "$RESULTS/latest.md"
  cp "$T/profile.txt" "$RESULTS/latest-profile.txt"
fi
