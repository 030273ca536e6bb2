#!/bin/sh
# run.sh - `make bench`: moonlet against nginx + ngx_lua and against the
# bare libuv + llhttp ceiling (limit.c), scenario by scenario; raw numbers
# go to results/latest.raw, the tables (report.lua) to results/latest.md.
# Servers on CPU 0, load generators on CPU 1; see README.md here.
#
#   BENCH_DURATION=10  seconds per wrk run     BENCH_RUNS=3  runs per case
#   BENCH_SCENARIOS="hello pipeline headers pipeline_headers json
#                    pipeline_json param pipeline_param fanin static4k
#                    static1m idle sleep reload ws32 ws4k wsidle tls handshake
#                    tlsidle tlsfanin redis pg"
#                    (the last two:
#                    stores.sh, stores.md)
# The return forms (hello, headers, json, param, each keep-alive and
# pipelined) run interleaved: one run of each, server by server, then the
# next round.
#   BENCH_PORT=18081   nginx's port (the backend takes the next one)
set -u
. spec/bench/lib.sh

D=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-2}
FORMS="hello pipeline headers pipeline_headers json pipeline_json param
       pipeline_param"
SCENARIOS=${BENCH_SCENARIOS:-$FORMS fanin static4k static1m idle sleep reload ws32 ws4k wsidle tls handshake tlsidle tlsfanin redis pg}
NGX_PORT=${BENCH_PORT:-18081}
BACKEND_PORT=$((NGX_PORT + 1))
SERVERS="moonlet nginx limit"
WS_SERVERS="moonlet nginx node"   # the WebSocket scenarios' three
TLS_SERVERS="moonlet nginx"       # the TLS scenarios' (no TLS ceiling)
TLS=0                   # 1: the servers listen with TLS ($PKI's pair)
BACKEND_TLS=0           # 1: the fan-in backend too
HS_FILE=""              # the backend's log of handshakes, if counted
WRK_HEADER=""           # a header wrk adds to every request
WS_CONNS=100
IDLE_CONNS=10000
TLS_IDLE_CONNS=2000     # tlsidle: full handshakes, one at a time
SLEEPERS=5000
RELOADS=10
RESULTS="$HERE/results"
BACKEND=""              # the fan-in backend's PID while it runs

[ -x "$ML" ] || die "$ML is missing: run make first"
command -v wrk > /dev/null || die "wrk is missing"
command -v nginx > /dev/null || die "nginx is missing"
[ -f /usr/lib/nginx/modules/ngx_http_lua_module.so ] ||
  die "libnginx-mod-http-lua is missing"
[ "$(nproc)" -ge 2 ] || die "needs 2 CPUs (server on 0, load on 1)"

bench_tmp
raise_nofile
build_tools
# This shell and what it starts run on CPU 1 unless told otherwise, off
# the servers' CPU; the binary is copied, so a rebuild meanwhile (the tree
# may be shared) changes nothing in this run.
taskset -cp 1 $$ > /dev/null
cp "$ML" "$T/moonlet-bin" && ML="$T/moonlet-bin"
RAW="$T/raw"
META="$T/meta"
: > "$RAW"
: > "$META"

record() {
  echo "$*" >> "$RAW"
}

meta() {
  printf '%s\t%s\n' "$1" "$2" >> "$META"
}

log() {
  echo "bench: $*" >&2
}

pkgver() {
  dpkg-query -W -f '${Version}' "$1" 2>/dev/null || echo "?"
}

collect_meta() {
  dirty=$(git status --porcelain runtime lua 2>/dev/null | wc -l)
  meta date "$(date -u '+%Y-%m-%d %H:%M UTC')"
  meta cpu "$(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -n 1)"
  meta cores "$(nproc --all)"  # this shell is pinned to one CPU by now
  meta memory "$(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' \
    /proc/meminfo)"
  meta kernel "$(uname -sr)"
  meta os "$(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release)"
  meta moonlet "$("$ML" version)"
  meta commit "$(git rev-parse --short HEAD 2>/dev/null)$(
    [ "$dirty" -gt 0 ] && echo " + $dirty uncommitted files in runtime/ lua/")"
  meta nginx "$(nginx -v 2>&1 | sed 's/^.*: //')"
  meta ngx_lua "libnginx-mod-http-lua $(pkgver libnginx-mod-http-lua)"
  meta luajit "$(dpkg-query -W -f '${db:Status-Abbrev}${Package} ${Version}\n' \
    'libluajit*' 2>/dev/null | sed -n 's/^ii *//p' | head -n 1)"
  meta wrk "wrk $(pkgver wrk)"
  meta cc "$(cc --version | head -n 1)"
  meta duration "$D"
  meta runs "$RUNS"
  meta "load average at start" "$(cut -d" " -f1-3 /proc/loadavg)"
}

# start SERVER APP [LIMIT ARGS...]: one of the three on CPU 0; PID, PORT.
start() {
  srv=$1
  app=$2
  shift 2
  case $srv in
  moonlet)
    if [ "$BACKEND_TLS" = 1 ]; then
      BENCH_BACKEND_CA="$PKI/ca.pem" BENCH_BACKEND_PORT=$BACKEND_PORT \
        start_moonlet "$HERE/apps/$app.lua"
    else
      BENCH_BACKEND_PORT=$BACKEND_PORT start_moonlet "$HERE/apps/$app.lua"
    fi ;;
  nginx)
    nginx_conf "$T/nginx" "$NGX_PORT" "Hello, World!" "$BACKEND_PORT"
    start_nginx "$T/nginx" "$NGX_PORT" 0 ;;
  limit)
    start_limit "$@" ;;
  node)
    start_node ;;
  esac
}

# probe SCEN SERVER PATH: one request first; a server that cannot answer
# is recorded as n/a instead of being measured.
probe() {
  if [ "$TLS" = 1 ]; then
    get_ok "$PORT" "$3" && return 0
    note="n/a (GET $3 over TLS failed)"
    log "$1/$2: $note"
    record "scenario=$1 server=$2 run=0 note=$note"
    return 1
  fi
  got=$(taskset -c 1 "$BIN/client" get "$PORT" "$3" 2>&1)
  case $got in
  200\ *) return 0 ;;
  501\ no\ moonlet.http*)
    note="n/a (no moonlet.http yet)" ;;
  *) note="n/a (GET $3 answered: $(echo "$got" | head -c 80))" ;;
  esac
  log "$1/$2: $note"
  record "scenario=$1 server=$2 run=0 note=$note"
  return 1
}

# wrk_once CONNS PATH SECONDS [PIPELINE]: wrk on CPU 1; prints its line.
# With TLS=1, https (wrk verifies nothing and resumes no session: a new
# connection is a full handshake); WRK_HEADER adds a header.
wrk_once() {
  scheme=http
  [ "$TLS" = 1 ] && scheme=https
  if [ -n "${4:-}" ]; then
    set -- "$1" "$2" "$3" -s "$HERE/wrk/pipeline.lua" \
      "$scheme://127.0.0.1:$PORT$2" -- "$4"
  elif [ -n "$WRK_HEADER" ]; then
    set -- "$1" "$2" "$3" -H "$WRK_HEADER" -s "$HERE/wrk/report.lua" \
      "$scheme://127.0.0.1:$PORT$2"
  else
    set -- "$1" "$2" "$3" -s "$HERE/wrk/report.lua" \
      "$scheme://127.0.0.1:$PORT$2"
  fi
  c=$1
  s=$3
  shift 3
  taskset -c 1 wrk -t1 -c"$c" -d"${s}s" --timeout 5s "$@" 2>&1 |
    sed -n 's/^BENCH //p'
}

# measure SCEN SERVER RUN CONNS PATH [PIPELINE]: one wrk run with the
# server's CPU time and peak RSS over it.  A run during which something
# else took over 10% of CPU 0 or CPU 1 is done again, twice at most, and
# the least disturbed attempt is kept; BENCH_RETRIES (default 12) bounds
# the attempts added over a whole bench.
RETRIES_LEFT=${BENCH_RETRIES:-12}
measure() {
  try=1
  best=""
  while [ $try -le 3 ]; do
    quiet
    reset_peak "$PID"
    a0=$(cpu_busy 0)
    a1=$(cpu_busy 1)
    k0=$(cpu_ticks "$BACKEND")
    pr=$(cpu_probe)
    h0=$(lines "$HS_FILE")
    c0=$(cpu_ticks "$PID")
    out=$(wrk_once "$4" "$5" "$D" "${6:-}")
    c1=$(cpu_ticks "$PID")
    h1=$(lines "$HS_FILE")
    k1=$(cpu_ticks "$BACKEND")
    a1=$(($(cpu_busy 1) - a1 - (k1 - k0)))
    a0=$(($(cpu_busy 0) - a0 - c1 + c0))
    [ -n "$out" ] || out="requests=0 wrk_ticks=0 note=wrk failed"
    wt=$(echo "$out" | sed -n 's/.*wrk_ticks=\([0-9]*\).*/\1/p')
    a1=$((a1 - ${wt:-0}))
    worst=$a0
    [ $a1 -gt $a0 ] && worst=$a1
    if [ -z "$best" ] || [ $worst -lt $best ]; then
      best=$worst
      line="cpu_ticks=$((c1 - c0)) other_ticks=$a0 other1_ticks=$a1"
      line="$line clk_tck=$CLK_TCK rss_kb=$(rss_kb "$PID" VmHWM)"
      [ -n "$HS_FILE" ] && line="$line handshakes=$((h1 - h0))" &&
        line="$line resumed=$(resumed "$HS_FILE" "$h0" "$h1")"
      line="$line probe_us=$pr $out"
    fi
    [ $((worst * 10)) -gt $((CLK_TCK * D)) ] && [ "$RETRIES_LEFT" -gt 0 ] ||
      break
    log "$1/$2 run $3: something else ran on CPU 0 or 1; again"
    RETRIES_LEFT=$((RETRIES_LEFT - 1))
    try=$((try + 1))
  done
  record "scenario=$1 server=$2 run=$3 conns=$4 $line"
  show_run "$1/$2 run $3" "$line"
}

# cpu_probe: client.c's fixed arithmetic on CPU 0, in µs: how fast the
# servers' CPU is at this moment (the machine's speed drifts).
cpu_probe() {
  taskset -c 0 "$BIN/client" probe | sed -n 's/^probe_us=\([0-9]*\).*/\1/p'
}

# show_run WHAT LINE: one line of progress: requests/s, server CPU per
# request and the CPU probe of a measured run.
show_run() {
  echo "$2" | awk -v w="$1" '{
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    s = v["duration_us"] / 1e6
    if (s > 0 && v["requests"] > 0)
      printf "bench: %s: %.0f requests/s, %.2f µs CPU per request, " \
        "CPU probe %.1f ms\n", w, v["requests"] / s,
        1e6 * v["cpu_ticks"] / v["clk_tck"] / v["requests"],
        v["probe_us"] / 1000
    else printf "bench: %s: no requests\n", w
  }' >&2
}

# resumed FILE FROM TO: how many of FILE's lines FROM+1..TO say "r" (a
# handshake that resumed a session).
resumed() {
  awk -v a="$2" -v b="$3" 'NR > a && NR <= b && $2 == "r"' "$1" | wc -l
}

# lines FILE: its line count (0 when there is none).
lines() {
  if [ -n "$1" ] && [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi
}

# throughput SCEN APP PATH CONNS [PIPELINE]: scenarios 1-5.  The three
# servers run side by side (idle ones cost nothing) and take turns, run
# by run, so a slow phase of the machine hits them alike.
throughput() {
  up=""
  for srv in $SERVERS; do
    case $1 in
    fanin) start "$srv" "$2" --fanin "$BACKEND_PORT" ;;
    *) start "$srv" "$2" ;;
    esac
    if probe "$1" "$srv" "$3"; then
      up="$up $srv"
      eval "PID_$srv=$PID PORT_$srv=$PORT"
      wrk_once "$4" "$3" "$WARMUP" "${5:-}" > /dev/null
    else
      stop "$PID"
    fi
  done
  log "$1: ${RUNS}x ${D}s at $4 connections:$up"
  r=1
  while [ $r -le "$RUNS" ]; do
    for srv in $up; do
      eval "PID=\$PID_$srv PORT=\$PORT_$srv"
      measure "$1" "$srv" $r "$4" "$3" "${5:-}"
    done
    r=$((r + 1))
  done
  for srv in $up; do
    eval "stop \$PID_$srv"
  done
}

# form SCEN: sets F_APP, F_PATH and F_DEP, the moonlet app, the path and
# the pipelining depth ("-": none) of a return-form scenario.
form() {
  F_DEP=-
  case $1 in
  pipeline*) F_DEP=16 ;;
  esac
  case $1 in
  hello|pipeline) F_APP=hello F_PATH=/ ;;
  *headers) F_APP=headers F_PATH=/headers ;;
  *json) F_APP=json F_PATH=/json ;;
  *param) F_APP=param F_PATH=/user/12345 ;;
  esac
}

# forms SCEN...: the return-form scenarios, interleaved.  One moonlet per
# app, one nginx and one ceiling serve them all, side by side (idle ones
# cost nothing); each round runs every scenario once on every server, so
# a slow phase of the machine hits every ratio alike.
forms() {
  apps=""
  for scen in "$@"; do
    form "$scen"
    case " $apps " in *" $F_APP "*) ;; *) apps="$apps $F_APP" ;; esac
  done
  for app in $apps; do
    start moonlet "$app"
    eval "PID_moonlet_$app=$PID PORT_moonlet_$app=$PORT"
  done
  start nginx hello
  PID_nginx=$PID PORT_nginx=$PORT
  start limit hello
  PID_limit=$PID PORT_limit=$PORT
  targets=""
  for scen in "$@"; do
    form "$scen"
    for srv in $SERVERS; do
      if [ $srv = moonlet ]; then
        eval "PID=\$PID_moonlet_$F_APP PORT=\$PORT_moonlet_$F_APP"
      else
        eval "PID=\$PID_$srv PORT=\$PORT_$srv"
      fi
      probe "$scen" "$srv" "$F_PATH" || continue
      dep=$F_DEP
      [ "$dep" = - ] && dep=""
      wrk_once 100 "$F_PATH" "$WARMUP" "$dep" > /dev/null
      targets="$targets $scen:$srv:$PID:$PORT:$F_PATH:$F_DEP"
    done
  done
  log "return forms: ${RUNS} rounds of ${D}s runs at 100 connections:$targets"
  r=1
  while [ $r -le "$RUNS" ]; do
    for t in $targets; do
      IFS=: read -r scen srv PID PORT path dep <<EOF2
$t
EOF2
      [ "$dep" = - ] && dep=""
      measure "$scen" "$srv" $r 100 "$path" "$dep"
    done
    r=$((r + 1))
  done
  for app in $apps; do
    eval "stop \$PID_moonlet_$app"
  done
  stop "$PID_nginx"
  stop "$PID_limit"
}

# idle [SCEN TOOL]: 10,000 keep-alive connections, one request each, then
# idle; the server's RSS before and with them.  A fresh server per run.
# tlsidle: the same over TLS with 2,000 (tlsclient: full handshakes, one
# at a time).
idle() {
  scen=${1:-idle}
  tool=${2:-client}
  n=$IDLE_CONNS
  [ "$tool" = tlsclient ] && n=$TLS_IDLE_CONNS
  r=1
  while [ $r -le "$RUNS" ]; do
    for srv in $SERVERS; do
      start "$srv" hello
      if [ "$tool" = client ]; then
        taskset -c 1 "$BIN/client" count "$PORT" / 2000 50 > /dev/null
      else
        taskset -c 1 "$BIN/tlsclient" idle "$PORT" / 200 0 > /dev/null
      fi
      quiet
      base=$(rss_kb "$PID" VmRSS)
      : > "$T/idle.out"
      taskset -c 1 "$BIN/$tool" idle "$PORT" / $n 4 > "$T/idle.out" &
      cp=$!
      STARTED="$STARTED $cp"
      line=$(wait_line "$T/idle.out" '^ready' 300) || line="ready note=timeout"
      sleep 1
      held=$(rss_kb "$PID" VmRSS)
      wait $cp
      forget $cp
      log "$scen/$srv run $r: $line, RSS $base -> $held KiB"
      record "scenario=$scen server=$srv run=$r base_kb=$base rss_kb=$held" \
        "conns=$n bytes_per_conn=$(((held - base) * 1024 / n))" \
        "${line#ready }"
      stop "$PID"
    done
    r=$((r + 1))
  done
}

# sleep: 5,000 requests at once, each sleeping 1 s in the handler;
# completion time and peak RSS per sleeping request.
sleepers() {
  r=1
  while [ $r -le "$RUNS" ]; do
    for srv in $SERVERS; do
      start "$srv" sleep --sleep 1000
      if ! probe sleep "$srv" /sleep; then stop "$PID"; continue; fi
      taskset -c 1 "$BIN/client" burst "$PORT" /sleep 50 > /dev/null
      quiet
      base=$(rss_kb "$PID" VmRSS)
      reset_peak "$PID"
      c0=$(cpu_ticks "$PID")
      out=$(taskset -c 1 "$BIN/client" burst "$PORT" /sleep $SLEEPERS)
      c1=$(cpu_ticks "$PID")
      peak=$(rss_kb "$PID" VmHWM)
      log "sleep/$srv run $r: $out, RSS $base -> peak $peak KiB"
      record "scenario=sleep server=$srv run=$r base_kb=$base rss_kb=$peak" \
        "bytes_per_req=$(((peak - base) * 1024 / SLEEPERS))" \
        "cpu_ticks=$((c1 - c0)) clk_tck=$CLK_TCK ${out#done }"
      stop "$PID"
    done
    r=$((r + 1))
  done
}

# rewrite SERVER I: the I-th new version of the app (alternating text),
# then SIGHUP.  Written aside and renamed, so no half file is ever read.
rewrite() {
  if [ $(($2 % 2)) -eq 1 ]; then text="Hello, Moon!"; else text="Hello, World!"; fi
  case $1 in
  moonlet)
    sed "s/Hello, World!/$text/" "$HERE/apps/hello.lua" > "$T/reload/app.new"
    mv "$T/reload/app.new" "$T/reload/app.lua" ;;
  nginx)
    nginx_conf "$T/nginx" "$NGX_PORT" "$text" "$BACKEND_PORT" ;;
  esac
  kill -HUP "$PID"
}

# reload: hello at 100 connections while the app is rewritten and
# reloaded 10 times; wrk's errors and p99 (steady p99: the hello scenario).
reload() {
  gap=$(awk -v d="$D" -v n=$RELOADS 'BEGIN { printf "%.3f", d / (n + 1) }')
  for srv in moonlet nginx; do
    : > "$T/moonlet.err"
    case $srv in
    moonlet)
      mkdir -p "$T/reload"
      cp "$HERE/apps/hello.lua" "$T/reload/app.lua"
      start_moonlet "$T/reload/app.lua" info ;;
    nginx) start nginx hello ;;
    esac
    log "reload/$srv: port $PORT, ${RUNS}x ${D}s with $RELOADS reloads"
    wrk_once 100 / "$WARMUP" > /dev/null
    r=1
    while [ $r -le "$RUNS" ]; do
      n0=$(grep -c 'reloaded \|: reconfiguring$' "$T/moonlet.err" \
        "$T/nginx/error.log" 2>/dev/null | awk -F: '{ s += $NF } END { print s }')
      quiet
      b0=$(cpu_busy 0)
      c0=$(cpu_ticks "$PID")
      a1=$(cpu_busy 1)
      wrk_once 100 / "$D" > "$T/wrk.out" &
      wp=$!
      STARTED="$STARTED $wp"
      i=1
      while [ $i -le $RELOADS ]; do
        sleep "$gap"
        rewrite $srv $i
        i=$((i + 1))
      done
      wait $wp
      forget $wp
      sleep 0.5 # old nginx workers finish and are reaped
      c1=$(cpu_ticks "$PID")
      b1=$(cpu_busy 0)
      a1=$(($(cpu_busy 1) - a1))
      n1=$(grep -c 'reloaded \|: reconfiguring$' "$T/moonlet.err" \
        "$T/nginx/error.log" 2>/dev/null | awk -F: '{ s += $NF } END { print s }')
      out=$(cat "$T/wrk.out")
      [ -n "$out" ] || out="requests=0 wrk_ticks=0 note=wrk failed"
      wt=$(echo "$out" | sed -n 's/.*wrk_ticks=\([0-9]*\).*/\1/p')
      record "scenario=reload server=$srv run=$r conns=100" \
        "cpu_ticks=$((c1 - c0)) other_ticks=$((b1 - b0 - c1 + c0))" \
        "other1_ticks=$((a1 - ${wt:-0}))" \
        "clk_tck=$CLK_TCK reloads=$((n1 - n0))" \
        "rss_kb=$(rss_kb "$PID" VmRSS) $out"
      r=$((r + 1))
    done
    stop "$PID"
    rm -f "$T/nginx/error.log"
  done
}

# ws_measure SCEN SERVER RUN SIZE: one echo run (wsclient, CPU 1) with
# the server's CPU time and peak RSS over it.
ws_measure() {
  quiet
  reset_peak "$PID"
  c0=$(cpu_ticks "$PID")
  out=$(taskset -c 1 "$BIN/wsclient" echo "$PORT" /ws $WS_CONNS "$4" "$D")
  c1=$(cpu_ticks "$PID")
  [ -n "$out" ] || out="messages=0 note=wsclient failed"
  record "scenario=$1 server=$2 run=$3 conns=$WS_CONNS size=$4" \
    "cpu_ticks=$((c1 - c0)) clk_tck=$CLK_TCK" \
    "rss_kb=$(rss_kb "$PID" VmHWM) ${out#BENCH }"
}

# ws_throughput SCEN SIZE: 100 WebSockets, each echoing SIZE-byte
# messages one at a time; the servers run side by side, taking turns.
ws_throughput() {
  for srv in $WS_SERVERS; do
    start "$srv" wsecho
    eval "PID_$srv=$PID PORT_$srv=$PORT"
    taskset -c 1 "$BIN/wsclient" echo "$PORT" /ws $WS_CONNS "$2" \
      "$WARMUP" > /dev/null
  done
  log "$1: ${RUNS}x ${D}s, $WS_CONNS WebSockets, $2-byte messages"
  r=1
  while [ $r -le "$RUNS" ]; do
    for srv in $WS_SERVERS; do
      eval "PID=\$PID_$srv PORT=\$PORT_$srv"
      ws_measure "$1" "$srv" $r "$2"
    done
    r=$((r + 1))
  done
  for srv in $WS_SERVERS; do
    eval "stop \$PID_$srv"
  done
}

# wsidle: 10,000 WebSockets whose handlers wait in receive; the
# server's RSS before and with them.  A fresh server per run.
wsidle() {
  r=1
  while [ $r -le "$RUNS" ]; do
    for srv in $WS_SERVERS; do
      start "$srv" wsecho
      taskset -c 1 "$BIN/wsclient" idle "$PORT" /ws 200 1 > /dev/null
      quiet
      base=$(rss_kb "$PID" VmRSS)
      : > "$T/wsidle.out"
      taskset -c 1 "$BIN/wsclient" idle "$PORT" /ws $IDLE_CONNS 4 \
        > "$T/wsidle.out" &
      cp=$!
      STARTED="$STARTED $cp"
      line=$(wait_line "$T/wsidle.out" '^ready' 200) ||
        line="ready note=timeout"
      sleep 1
      held=$(rss_kb "$PID" VmRSS)
      wait $cp
      forget $cp
      log "wsidle/$srv run $r: $line, RSS $base -> $held KiB"
      record "scenario=wsidle server=$srv run=$r base_kb=$base" \
        "rss_kb=$held bytes_per_conn=$(((held - base) * 1024 / IDLE_CONNS))" \
        "${line#ready }"
      stop "$PID"
    done
    r=$((r + 1))
  done
}

# tls_scenario SCEN: the TLS scenarios, moonlet against nginx with ssl on
# the same certificate: tls (hello, keep-alive), handshake (a new
# connection, so a full handshake, per request), tlsidle (bytes per idle
# TLS connection) and tlsfanin (fan-in to an nginx backend over https,
# its handshakes counted).
tls_scenario() {
  make_pki
  all=$SERVERS
  SERVERS=$TLS_SERVERS
  TLS=1
  case $1 in
  tls) throughput tls hello / 100 ;;
  handshake)
    WRK_HEADER="Connection: close"
    throughput handshake hello / 50
    WRK_HEADER="" ;;
  tlsidle) idle tlsidle tlsclient ;;
  tlsfanin)                 # TLS to the backend only: the plain fanin's
    HS_LOG=1                # clients, so the two compare
    nginx_conf "$T/backend" "$BACKEND_PORT" "Hello, World!"
    HS_LOG=0
    start_nginx "$T/backend" "$BACKEND_PORT" 1
    BACKEND=$PID
    HS_FILE="$T/backend/handshakes.log"
    TLS=0
    BACKEND_TLS=1
    throughput tlsfanin fanin /fanin 1000
    BACKEND_TLS=0
    HS_FILE=""
    stop "$BACKEND"
    BACKEND="" ;;
  esac
  TLS=0
  SERVERS=$all
}

collect_meta
meta node "$(node --version 2>/dev/null), ws $(pkgver node-ws)"
meta lua-resty-websocket "lua-nginx-websocket $(pkgver lua-nginx-websocket)"
started=$(date +%s)
forms_wanted=""
for s in $SCENARIOS; do
  case " $(echo $FORMS) " in *" $s "*) forms_wanted="$forms_wanted $s" ;; esac
done
[ -z "$forms_wanted" ] || forms $forms_wanted
for s in $SCENARIOS; do
  case $s in
  hello|pipeline|headers|pipeline_headers|json|pipeline_json|param|\
  pipeline_param) ;;
  fanin)
    nginx_conf "$T/backend" "$BACKEND_PORT" "Hello, World!"
    start_nginx "$T/backend" "$BACKEND_PORT" 1
    BACKEND=$PID
    throughput fanin fanin /fanin 1000
    stop "$BACKEND"
    BACKEND="" ;;
  static4k|static1m)
    [ -n "${BENCH_STATIC_DIR:-}" ] || static_files
    f=4k.bin
    [ $s = static1m ] && f=1m.bin
    all=$SERVERS
    SERVERS="moonlet nginx"     # the ceiling serves no files
    throughput $s static /files/$f 100
    SERVERS=$all ;;
  idle) idle ;;
  sleep) sleepers ;;
  reload) reload ;;
  tls|handshake|tlsidle|tlsfanin) tls_scenario "$s" ;;
  ws32) ws_throughput ws32 32 ;;
  ws4k) ws_throughput ws4k 4096 ;;
  wsidle) wsidle ;;
  redis|pg) STORES="${STORES:-} $s" ;;
  *) die "unknown scenario $s" ;;
  esac
done
meta elapsed "$(($(date +%s) - started)) s"

# The database scenarios have peers of their own and their own table.
if [ -n "${STORES:-}" ]; then
  sh "$HERE/stores.sh" $STORES || die "stores.sh failed"
fi

# Only the database scenarios: latest.md keeps the last full run's.
[ -s "$RAW" ] || exit 0
mkdir -p "$RESULTS"
cp "$RAW" "$RESULTS/latest.raw"
lua5.4 "$HERE/report.lua" "$RAW" "$META" "$RESULTS/latest.md" ||
  die "report.lua failed"
log "wrote spec/bench/results/latest.md"
