#!/bin/sh
# instr.sh - `make bench-instr`: instructions per request for each way a
# handler answers (bare string, headers table, JSON table, route
# parameter; keep-alive and pipelined 16 deep) and per fan-in request,
# counted by callgrind, numbers machine noise does not move; and the
# memory a sleeping request and an idle connection hold (RSS).  Each
# server runs under valgrind; after a warm-up the counters are zeroed, N
# requests go over keep-alive connections, the counters are dumped: Ir / N.
# The same for nginx + ngx_lua and the ceiling, for scale.
# Fan-in: GET /fanin fetches GET /backend from a backend that answers at
# once (limit.c, not under valgrind, on CPU 1 with the client).  pg:
# TechEmpower's single query and 20 queries (apps/pg.lua) on a PostgreSQL
# cluster made for the run, moonlet alone (Python's and Node's peers do
# not connect under valgrind before PostgreSQL's login timeout).  ws: a
# 32-byte WebSocket message echoed (wsclient count), moonlet and nginx +
# lua-resty-websocket.  tls: the hello over TLS keep-alive, TLS 1.3 and
# 1.2, moonlet against nginx + ngx_lua with ssl on the same certificate
# (tlsclient count: full handshakes on a few connections, then N
# requests; the handshakes cancel out of a run of 2N less a run of N).
# tlsfanin: the fan-in app against nginx as its backend (on CPU 1, not
# under valgrind), once over http and once over https (verified, pooled),
# so the two differ by TLS only.  Prints the lines, writes
# results/instr.md, and puts the hello, fan-in, tlsfanin, pg, ws and tls
# lines into results/latest.md when that exists.
#
#   BENCH_INSTR_N=20000 requests   BENCH_INSTR_CONNS=1 connections
#   BENCH_INSTR_DEPTH=16 (the pipelined count)
#   BENCH_INSTR_FANIN_N=10000      BENCH_INSTR_FANIN_CONNS=50
#   BENCH_INSTR_WS_N=20000 echoes on 1 WebSocket
#   BENCH_INSTR_PEERS=1 (0: moonlet only)
#   BENCH_INSTR_PG_N=2000 (/db)  BENCH_INSTR_PG_QN=200 (/queries), on 10
#   BENCH_INSTR_TLS_N=10000 requests on BENCH_INSTR_TLS_CONNS=4
#   BENCH_INSTR_SCENARIOS="hello headers json param fanin tlsfanin pg sleep
#   idle ws tls" (also static4k static1m: app:static)
set -u
. spec/bench/lib.sh

N=${BENCH_INSTR_N:-20000}
CONNS=${BENCH_INSTR_CONNS:-1}
DEPTH=${BENCH_INSTR_DEPTH:-16}
FN=${BENCH_INSTR_FANIN_N:-10000}
FCONNS=${BENCH_INSTR_FANIN_CONNS:-50}
WN=${BENCH_INSTR_WS_N:-20000}
TN=${BENCH_INSTR_TLS_N:-10000}
TCONNS=${BENCH_INSTR_TLS_CONNS:-4}
PEERS=${BENCH_INSTR_PEERS:-1}
PGN=${BENCH_INSTR_PG_N:-2000}
PGQN=${BENCH_INSTR_PG_QN:-200}
SCENARIOS=${BENCH_INSTR_SCENARIOS:-hello headers json param fanin tlsfanin pg sleep idle ws tls}
NGX_PORT=${BENCH_PORT:-18081}
RESULTS="$HERE/results"

[ -x "$ML" ] || die "$ML is missing: run make first"
command -v valgrind > /dev/null || die "valgrind is missing"
bench_tmp
raise_nofile
build_tools
# A copy: a rebuild meanwhile (the tree may be shared) changes nothing here.
cp "$ML" "$T/moonlet-bin" && ML="$T/moonlet-bin"

VG="valgrind --tool=callgrind --dump-instr=no --dump-line=no"

# count NAME PATH N CONNS [DEPTH [WARM]]: zero the counters of the
# valgrind'ed PID after WARM requests (2000), drive N requests for PATH
# over CONNS connections, DEPTH per write (default 1), dump; prints the Ir
# of that phase divided by N.  For moonlet (NAME moonlet*) it keeps the
# profile in $T/NAME.profile.
count() {
  load "$2" "${6:-2000}" "$4" "${5:-1}" > /dev/null ||
    die "$1: the warm-up failed"
  ir=$(phase "$1" load "$2" "$3" "$4" "${5:-1}") || exit 1
  keep_profile "$1"
  awk -v ir="$ir" -v n="$3" 'BEGIN { printf "%.0f", ir / n }'
}

# phase NAME CMD...: zeroes the counters of the valgrind'ed PID, runs CMD
# (the load), dumps; prints the Ir of that phase, its dump in $f.
phase() {
  name=$1
  shift
  callgrind_control -z "$PID" > /dev/null 2>&1 || die "callgrind_control -z"
  out=$("$@") || die "$name: $out"
  rm -f "$T/$VG_NAME".cg.*
  callgrind_control -d "$PID" > /dev/null 2>&1 || die "callgrind_control -d"
  f=$(ls "$T/$VG_NAME".cg.* 2>/dev/null | head -n 1)
  [ -n "$f" ] || die "$name: no callgrind dump"
  awk '$1 == "summary:" || $1 == "totals:" { print $2; exit }' "$f"
}

# keep_profile NAME: for moonlet (NAME moonlet*), the last phase's profile
# in $T/NAME.profile and its dump in $T/NAME.callgrind.
keep_profile() {
  f=$(ls "$T/$VG_NAME".cg.* 2>/dev/null | head -n 1)
  case $1 in
  moonlet*)
    # Self cost per function; the frames that were on the stack when the
    # counters were zeroed show (nearly) everything and are dropped.
    callgrind_annotate --threshold=100 --auto=no "$f" 2>/dev/null |
      sed -n '/file:function/,$p' | sed -n '3,$p' |
      grep -v -E 'moonlet_main|:main |libc_start|below main|ld-linux' |
      head -n 25 > "$T/$1.profile"
    cp "$f" "$T/$1.callgrind" ;;
  esac
}

# count_tls NAME N CONNS: Ir per TLS keep-alive request: CONNS
# connections (full handshakes) then 2N requests, less the same with N
# (TLSCLIENT_VERSION picks the version), divided by N.
count_tls() {
  tls_load 1000 "$3" > /dev/null || die "$1: the warm-up failed"
  a=$(phase "$1" tls_load "$2" "$3") || exit 1
  b=$(phase "$1" tls_load $(($2 * 2)) "$3") || exit 1
  keep_profile "$1"
  awk -v a="$a" -v b="$b" -v n="$2" 'BEGIN { printf "%.0f", (b - a) / n }'
}

# tls12 CMD...: CMD with tlsclient held to TLS 1.2 (in a subshell).
tls12() {
  TLSCLIENT_VERSION=1.2
  export TLSCLIENT_VERSION
  "$@"
}

# tls_load N CONNS: N requests for / over CONNS TLS connections.
tls_load() {
  out=$(taskset -c 1 "$BIN/tlsclient" count "$PORT" / "$1" "$2") &&
    case $out in *errors=0*) ;; *) echo "$out"; false ;; esac
}

# load PATH N CONNS DEPTH: N requests for PATH over CONNS connections,
# DEPTH per write; for /ws, N 32-byte WebSocket messages echoed over
# CONNS WebSockets, one at a time on each.
load() {
  case $1 in
  /ws)
    out=$(taskset -c 1 "$BIN/wsclient" count "$PORT" /ws "$3" 32 "$2") &&
      case $out in *errors=0*) ;; *) echo "$out"; false ;; esac ;;
  *) taskset -c 1 "$BIN/client" count "$PORT" "$1" "$2" "$3" "$4" ;;
  esac
}

# under_valgrind NAME CMD...: starts CMD under callgrind, dumps to
# $T/NAME.cg.<N>; PID is valgrind's (it becomes the program), VG_NAME is
# NAME.
under_valgrind() {
  name=$1
  VG_NAME=$1             # count() reads its dumps
  shift
  taskset -c 0 $VG --callgrind-out-file="$T/$name.cg" "$@" \
    > "$T/$name.out" 2> "$T/$name.err" &
  PID=$!
  STARTED="$STARTED $PID"
}

# start_vg_moonlet NAME APP [ARGS...]: moonlet under valgrind; sets PID
# and PORT.  The fan-in app reads its backend's port from
# BENCH_BACKEND_PORT.
start_vg_moonlet() {
  name=$1 app=$2
  shift 2
  under_valgrind "$name" "$ML" run "$HERE/apps/$app.lua" --port 0 \
    --log-level warn "$@"
  line=$(wait_line "$T/$name.out" "listening on" 60) ||
    { cat "$T/$name.err" >&2; die "moonlet did not start under valgrind"; }
  PORT=${line##*:}
}

# start_vg_limit NAME [ARGS...]: the ceiling under valgrind.
start_vg_limit() {
  name=$1
  shift
  under_valgrind "$name" "$BIN/limit" --port 0 "$@"
  line=$(wait_line "$T/$name.out" "listening on" 60) ||
    die "limit did not start"
  PORT=${line##*:}
}

# start_vg_nginx NAME [BACKEND_PORT]: nginx + ngx_lua, its one process
# under valgrind (with TLS=1, listening with ssl on $PKI's pair).
start_vg_nginx() {
  nginx_conf "$T/nginx" "$NGX_PORT" "Hello, World!" "${2:-0}"
  sed -i 's/^master_process on;/master_process off;/' "$T/nginx/nginx.conf"
  under_valgrind "$1" nginx -p "$T/nginx" -c "$T/nginx/nginx.conf" \
    -e "$T/nginx/error.log"
  PORT=$NGX_PORT
  i=0
  until if [ "${TLS:-0}" = 1 ]; then tls_load 1 1 > /dev/null 2>&1
        else "$BIN/client" get "$PORT" / > /dev/null 2>&1; fi; do
    i=$((i + 1))
    [ $i -lt 300 ] && alive "$PID" || die "nginx did not start under valgrind"
    sleep 0.1
  done
}

# measure SCEN PATH N CONNS [LIMIT ARGS...]: moonlet's Ir per request in M,
# and PEERS_TEXT: " (nginx + ngx_lua X, ceiling Y)", or "" with
# BENCH_INSTR_PEERS=0.  Servers start here, not in a $(...) subshell, so
# the cleanup knows every PID.  ws: the app is wsecho, and nginx (with
# lua-resty-websocket) is the only peer.
measure() {
  scen=$1 path=$2 n=$3 conns=$4
  shift 4
  app=$scen
  [ "$scen" = ws ] && app=wsecho
  start_vg_moonlet "moonlet-$scen" "$app"
  M=$(count "moonlet-$scen" "$path" "$n" "$conns") || exit 1
  stop "$PID"
  PEERS_TEXT=""
  [ "$PEERS" = 1 ] || return 0
  if [ "$scen" = ws ]; then
    start_vg_nginx "nginx-$scen"
    g=$(count "nginx-$scen" "$path" "$n" "$conns") || exit 1
    stop "$PID"
    PEERS_TEXT=" (nginx + lua-resty-websocket $g)"
    return 0
  fi
  start_vg_limit "limit-$scen" "$@"
  l=$(count "limit-$scen" "$path" "$n" "$conns") || exit 1
  stop "$PID"
  g="-"
  if command -v nginx > /dev/null; then
    start_vg_nginx "nginx-$scen" "${BPORT:-0}"
    g=$(count "nginx-$scen" "$path" "$n" "$conns") || exit 1
    stop "$PID"
  fi
  PEERS_TEXT=" (nginx + ngx_lua $g, ceiling $l)"
}

# form FORM PATH: one return form: moonlet's Ir per request keep-alive
# (MK) and pipelined DEPTH deep (MP) on one server, and the peers' (GK,
# GP: nginx + ngx_lua; the ceiling answers every path alike, so it is
# counted once: LK, LP).  "-" where not counted.
form() {
  start_vg_moonlet "moonlet-$1" "$1"
  MK=$(count "moonlet-$1" "$2" "$N" "$CONNS") || exit 1
  MP=$(count "moonlet-$1-p$DEPTH" "$2" "$N" "$CONNS" "$DEPTH") || exit 1
  stop "$PID"
  GK=- GP=-
  [ "$PEERS" = 1 ] || return 0
  if [ -z "${LK:-}" ]; then
    start_vg_limit limit
    LK=$(count limit / "$N" "$CONNS") || exit 1
    LP=$(count limit-p / "$N" "$CONNS" "$DEPTH") || exit 1
    stop "$PID"
  fi
  if command -v nginx > /dev/null; then
    start_vg_nginx "nginx-$1"
    GK=$(count "nginx-$1" "$2" "$N" "$CONNS") || exit 1
    GP=$(count "nginx-$1-p" "$2" "$N" "$CONNS" "$DEPTH") || exit 1
    stop "$PID"
  fi
}

# rss_per APP WHAT: moonlet (not under valgrind) on CPU 0 serving APP;
# WHAT is "sleep" (5,000 requests at once, each sleeping 1 s: peak RSS
# over them) or "idle" (10,000 keep-alive connections after a request
# each: RSS with them).  Prints (RSS - RSS before) / count, in bytes.
rss_per() {
  : > "$T/moonlet.out"
  taskset -c 0 "$ML" run "$HERE/apps/$1.lua" --port 0 --log-level warn \
    > "$T/moonlet.out" 2>> "$T/moonlet.err" &
  PID=$!
  STARTED="$STARTED $PID"
  line=$(wait_line "$T/moonlet.out" "listening on" 10) ||
    die "moonlet did not start ($1)"
  PORT=${line##*:}
  case $2 in
  sleep)
    taskset -c 1 "$BIN/client" burst "$PORT" /sleep 50 > /dev/null
    base=$(rss_kb "$PID" VmRSS)
    reset_peak "$PID"
    taskset -c 1 "$BIN/client" burst "$PORT" /sleep 5000 > "$T/rss.out"
    held=$(rss_kb "$PID" VmHWM) k=5000 ;;
  idle)
    taskset -c 1 "$BIN/client" count "$PORT" / 2000 50 > /dev/null
    base=$(rss_kb "$PID" VmRSS)
    : > "$T/rss.out"
    taskset -c 1 "$BIN/client" idle "$PORT" / 10000 3 > "$T/rss.out" &
    cp=$!
    STARTED="$STARTED $cp"
    wait_line "$T/rss.out" '^ready' 130 > /dev/null || die "idle: timeout"
    sleep 1
    held=$(rss_kb "$PID" VmRSS) k=10000
    wait $cp
    forget $cp ;;
  esac
  grep -q 'errors=0 not_2xx=0' "$T/rss.out" ||
    echo "bench: $2: $(cat "$T/rss.out")" >&2
  stop "$PID"
  echo $(((held - base) * 1024 / k))
}

# tls_fanin: moonlet's fan-in app under valgrind against one nginx
# backend, over http (M_PLAIN) then https (M_TLS, verified against $PKI's
# CA); RATIO is M_TLS / M_PLAIN.  The pool's handshakes happen in the
# warm-up: what is counted is the steady state.
tls_fanin() {
  make_pki
  bp=$((NGX_PORT + 1))
  TLS=1
  nginx_conf "$T/backend" "$bp" "Hello, World!"
  start_nginx "$T/backend" "$bp" 1
  TLS=0
  BACKEND=$PID
  BENCH_BACKEND_PORT=$bp
  export BENCH_BACKEND_PORT
  nginx_conf "$T/backend-plain" "$((bp + 1))" "Hello, World!"
  start_nginx "$T/backend-plain" "$((bp + 1))" 1
  PLAIN=$PID
  BENCH_BACKEND_PORT=$((bp + 1)) start_vg_moonlet moonlet-fanin-nginx fanin
  M_PLAIN=$(count moonlet-fanin-nginx /fanin "$FN" "$FCONNS") || exit 1
  stop "$PID"
  stop "$PLAIN"
  BENCH_BACKEND_CA="$PKI/ca.pem" start_vg_moonlet moonlet-tlsfanin fanin
  M_TLS=$(count moonlet-tlsfanin /fanin "$FN" "$FCONNS") || exit 1
  stop "$PID"
  stop "$BACKEND"
  BACKEND=""
  RATIO=$(awk -v a="$M_TLS" -v b="$M_PLAIN" 'BEGIN { printf "%.2f", a / b }')
}

# put_line PREFIX TEXT: TEXT replaces the line of results/latest.md that
# starts with PREFIX; else it goes after the last "- Instructions per"
# line, or at the end.
put_line() {
  awk -v p="$1" -v t="$2" '
    { line[++n] = $0 }
    index($0, p) == 1 { at = n; replace = 1 }
    !replace && index($0, "- Instructions per") == 1 { at = n }
    END {
      for (i = 1; i <= n; i++) {
        if (i == at && replace) { print t; continue }
        print line[i]
        if (i == at) print t
      }
      if (!at) print t
    }' "$RESULTS/latest.md" > "$T/latest.md" &&
    cat "$T/latest.md" > "$RESULTS/latest.md"
}

commit=$(git rev-parse --short HEAD 2>/dev/null)
[ "$(git status --porcelain runtime lua 2>/dev/null | wc -l)" -gt 0 ] &&
  commit="$commit + uncommitted changes"
day=$(date -u '+%Y-%m-%d')

FORMS_TABLE=""
MEM_TABLE=""
TLS_TABLE=""
for scen in $SCENARIOS; do
  case $scen in
  hello|headers|json|param)
    case $scen in
    hello) path=/ ;;
    headers) path=/headers ;;
    json) path=/json ;;
    param) path=/user/12345 ;;
    esac
    form "$scen" "$path"
    echo "instructions per request, $scen: keep-alive $MK, pipelined" \
      "$DEPTH deep $MP (nginx + ngx_lua $GK / $GP, ceiling ${LK:--} /" \
      "${LP:--})"
    echo "moonlet's top functions by own instructions ($scen, keep-alive):"
    cat "$T/moonlet-$scen.profile"
    FORMS_TABLE="$FORMS_TABLE| $scen | $MK | $MP | $GK | $GP |"
    FORMS_TABLE="$FORMS_TABLE ${LK:--} | ${LP:--} |
"
    [ $scen = hello ] || continue
    M=$MK
    PEERS_TEXT=""
    [ "$PEERS" = 1 ] && PEERS_TEXT=" (nginx + ngx_lua $GK, ceiling $LK)"
    if [ -f "$RESULTS/latest.md" ]; then
      text="- Instructions per request (hello, callgrind, \`make bench-instr\`,"
      text="$text $N requests on $CONNS connection(s), $day,"
      text="$text $commit): **moonlet $M**$PEERS_TEXT."
      put_line "- Instructions per request " "$text"
      cp "$T/moonlet-hello.profile" "$RESULTS/latest-profile.txt"
    fi ;;
  fanin)
    # The backend answers at once, natively, beside the client on CPU 1.
    taskset -c 1 "$BIN/limit" --port 0 > "$T/backend.out" \
      2> "$T/backend.err" &
    BACKEND=$!
    STARTED="$STARTED $BACKEND"
    line=$(wait_line "$T/backend.out" "listening on" 10) ||
      die "the fan-in backend did not start"
    BPORT=${line##*:}
    BENCH_BACKEND_PORT=$BPORT
    export BENCH_BACKEND_PORT
    measure fanin /fanin "$FN" "$FCONNS" --fanin "$BPORT"
    stop "$BACKEND"
    echo "instructions per fan-in request: $M$PEERS_TEXT"
    echo "(fan-in, callgrind, $FN requests on $FCONNS keep-alive" \
      "connection(s), a backend that answers at once)"
    echo "moonlet's top functions by own instructions (fan-in):"
    cat "$T/moonlet-fanin.profile"
    if [ -f "$RESULTS/latest.md" ]; then
      text="- Instructions per fan-in request (callgrind, \`make"
      text="$text bench-instr\`, $FN requests on $FCONNS connection(s), a"
      text="$text backend that answers at once, $day, $commit):"
      text="$text **moonlet $M**$PEERS_TEXT."
      put_line "- Instructions per fan-in request " "$text"
      cp "$T/moonlet-fanin.profile" "$RESULTS/latest-fanin-profile.txt"
    fi ;;
  tlsfanin)
    tls_fanin
    echo "instructions per fan-in request against nginx: http $M_PLAIN," \
      "https $M_TLS ($RATIO×)"
    echo "(callgrind, $FN requests on $FCONNS keep-alive connection(s)," \
      "the backend nginx answering after 20 ms, pooled connections)"
    echo "moonlet's top functions by own instructions (https fan-in):"
    cat "$T/moonlet-tlsfanin.profile"
    if [ -f "$RESULTS/latest.md" ]; then
      text="- Instructions per https fan-in request (callgrind, \`make"
      text="$text bench-instr\`, $FN requests on $FCONNS connection(s),"
      text="$text nginx as the backend, $day, $commit): **moonlet"
      text="$text $M_TLS**, $RATIO× its $M_PLAIN over http to the same"
      text="$text backend."
      put_line "- Instructions per https fan-in request " "$text"
    fi ;;
  pg)
    # Moonlet's pool and the peers' hold 10 connections: 10 clients.
    pg_up
    BENCH_PG_URL=$PG_URL
    export BENCH_PG_URL
    start_vg_moonlet moonlet-pg pg
    M_DB=$(count moonlet-pg /db "$PGN" 10 1 200) || exit 1
    cp "$T/moonlet-pg.profile" "$T/moonlet-pg-db.profile"
    M_Q=$(count moonlet-pg /queries "$PGQN" 10 1 50) || exit 1
    stop "$PID"
    pg_down
    echo "instructions per single-query request: $M_DB"
    echo "instructions per 20-query request: $M_Q"
    echo "(PostgreSQL, callgrind, $PGN and $PGQN requests on 10" \
      "keep-alive connections, a pool of 10; the server's side is not" \
      "counted)"
    echo "moonlet's top functions by own instructions (20 queries):"
    cat "$T/moonlet-pg.profile"
    if [ -f "$RESULTS/latest.md" ]; then
      text="- Instructions per PostgreSQL request (callgrind, \`make"
      text="$text bench-instr\`, 10 connections, $day, $commit): single"
      text="$text query **moonlet $M_DB**; 20 queries **moonlet $M_Q**."
      put_line "- Instructions per PostgreSQL request " "$text"
    fi ;;
  static4k|static1m)
    # app:static: the lookup on the thread pool counts too (callgrind
    # follows every thread); the file's bytes go by sendfile, unseen.
    [ -n "${BENCH_STATIC_DIR:-}" ] || static_files
    f=4k.bin
    [ $scen = static1m ] && f=1m.bin
    start_vg_moonlet "moonlet-$scen" static
    MK=$(count "moonlet-$scen" "/files/$f" "$((N / 4))" "$CONNS") || exit 1
    stop "$PID"
    echo "instructions per request, $scen: keep-alive $MK"
    FORMS_TABLE="$FORMS_TABLE| $scen | $MK | - | - | - | - | - |
" ;;
  sleep|idle)
    app=hello
    [ $scen = sleep ] && app=sleep
    b=$(rss_per $app $scen) || exit 1
    what="bytes per sleeping request (5,000 sleeping 1 s, peak RSS)"
    [ $scen = idle ] &&
      what="bytes per idle connection (10,000 after a request each)"
    echo "$what: $b"
    MEM_TABLE="$MEM_TABLE| $what | $b |
" ;;
  ws)
    measure ws /ws "$WN" 1
    echo "instructions per WebSocket echo: $M$PEERS_TEXT"
    echo "(ws, callgrind, $WN 32-byte messages echoed on 1 WebSocket)"
    echo "moonlet's top functions by own instructions (ws):"
    cat "$T/moonlet-ws.profile"
    if [ -f "$RESULTS/latest.md" ]; then
      text="- Instructions per WebSocket echo (32 bytes, callgrind, \`make"
      text="$text bench-instr\`, $WN messages on 1 WebSocket, $day,"
      text="$text $commit): **moonlet $M**$PEERS_TEXT."
      put_line "- Instructions per WebSocket echo " "$text"
      cp "$T/moonlet-ws.profile" "$RESULTS/latest-ws-profile.txt"
    fi ;;
  tls)
    make_pki
    TLS=1
    start_vg_moonlet moonlet-tls hello --tls-cert "$PKI/server.pem" \
      --tls-key "$PKI/server.key"
    M13=$(count_tls moonlet-tls "$TN" "$TCONNS") || exit 1
    M12=$(tls12 count_tls moonlet-tls12 "$TN" "$TCONNS") || exit 1
    stop "$PID"
    G13=- G12=-
    if [ "$PEERS" = 1 ] && command -v nginx > /dev/null; then
      start_vg_nginx nginx-tls
      G13=$(count_tls nginx-tls "$TN" "$TCONNS") || exit 1
      G12=$(tls12 count_tls nginx-tls12 "$TN" "$TCONNS") || exit 1
      stop "$PID"
    fi
    TLS=0
    echo "instructions per TLS keep-alive request (hello): TLS 1.3" \
      "moonlet $M13, TLS 1.2 moonlet $M12 (nginx + ngx_lua with ssl" \
      "$G13 / $G12)"
    echo "(tls, callgrind, $TN requests on $TCONNS connection(s), their" \
      "handshakes taken out)"
    echo "moonlet's top functions by own instructions (tls, TLS 1.3):"
    cat "$T/moonlet-tls.profile"
    TLS_TABLE="| TLS 1.3 | $M13 | $G13 |
| TLS 1.2 | $M12 | $G12 |
"
    if [ -f "$RESULTS/latest.md" ]; then
      text="- Instructions per TLS keep-alive request (hello, callgrind,"
      text="$text \`make bench-instr\`, $TN requests on $TCONNS"
      text="$text connection(s), handshakes taken out, $day, $commit):"
      text="$text TLS 1.3 **moonlet $M13** (nginx + ngx_lua with ssl"
      text="$text $G13); TLS 1.2 **moonlet $M12** ($G12)."
      put_line "- Instructions per TLS keep-alive request " "$text"
    fi ;;
  *) die "unknown scenario $scen" ;;
  esac
done
# results/instr.md: this run's tables, whole.
if [ -n "$FORMS_TABLE$MEM_TABLE${TLS_TABLE:-}" ]; then
  mkdir -p "$RESULTS"
  {
    echo "# Instructions and memory per request"
    echo
    echo "\`make bench-instr\`, $day, $commit: callgrind, $N requests on"
    echo "$CONNS connection(s), after a warm-up; pipelined: $DEPTH requests"
    echo "per write.  User-space instructions only (no system calls)."
    if [ -n "$FORMS_TABLE" ]; then
      echo
      echo "| form | moonlet keep-alive | moonlet pipelined |" \
        "nginx + ngx_lua keep-alive | pipelined | ceiling keep-alive |" \
        "pipelined |"
      echo "| --- | --- | --- | --- | --- | --- | --- |"
      printf '%s' "$FORMS_TABLE"
    fi
    if [ -n "${TLS_TABLE:-}" ]; then
      echo
      echo "TLS keep-alive hello: $TN requests on $TCONNS connection(s), the"
      echo "handshakes taken out (a run of $((TN * 2)) less a run of $TN)."
      echo
      echo "| TLS keep-alive hello | moonlet | nginx + ngx_lua with ssl |"
      echo "| --- | --- | --- |"
      printf '%s' "$TLS_TABLE"
    fi
    if [ -n "$MEM_TABLE" ]; then
      echo
      echo "| moonlet | bytes |"
      echo "| --- | --- |"
      printf '%s' "$MEM_TABLE"
    fi
    for f in hello headers json param; do
      [ -f "$T/moonlet-$f.profile" ] || continue
      echo
      echo "moonlet's top functions by own instructions ($f, keep-alive):"
      echo
      echo '```'
      cat "$T/moonlet-$f.profile"
      echo '```'
    done
  } > "$RESULTS/instr.md"
  echo "bench: wrote spec/bench/results/instr.md" >&2
fi

# BENCH_INSTR_KEEP=DIR keeps moonlet's callgrind dumps, for callgrind_annotate.
if [ -n "${BENCH_INSTR_KEEP:-}" ]; then
  mkdir -p "$BENCH_INSTR_KEEP" && cp "$T"/moonlet-*.callgrind "$BENCH_INSTR_KEEP"
fi
