#!/bin/bash
# run.sh - `make cluster`: three moonlet hosts behind HAProxy, with one
# Redis, each in a network namespace of its own on one bridge (198.18.0.0/24,
# no default route: nothing leaves the machine).  Drives bounded load
# through HAProxy, stops one host gracefully mid-run and starts it again,
# kills another, checks that a message posted through one host reaches a
# reader on another, and reports.  Its last lines are "errors: N" and
# "lost: N"; exit 0 only when both are 0 and the message arrived.  Cleans
# up every namespace and process it made, also when interrupted.  Root.
#
#   CLUSTER_DURATION=25   seconds of load      CLUSTER_CONNS=50
#   MOONLET_BIN=build/moonlet   CLUSTER_APP=apps/cluster.lua
#   CLUSTER_KEEP=1: keep the logs (their folder is named at the end)
set -u

BIN=$(realpath "${MOONLET_BIN:-build/moonlet}")
APP=$(realpath "${CLUSTER_APP:-apps/cluster.lua}")
HERE=$(cd "$(dirname "$0")" && pwd)
D=${CLUSTER_DURATION:-25}
CONNS=${CLUSTER_CONNS:-50}
P="ml$$"                     # names of this run: namespaces, interfaces
NET=198.18.0
HOSTS="h1 h2 h3"
declare -A IP=([lb]=$NET.2 [cl]=$NET.3 [redis]=$NET.10 [h1]=$NET.11
               [h2]=$NET.12 [h3]=$NET.13)
declare -A HOSTPID=()
PIDS=""                      # every process started here
T=""

say() { echo "cluster: $*" >&2; }
die() { say "$*"; exit 1; }
# ns NAME CMD...: CMD in that namespace.  Background jobs use
# "ip netns exec" itself, so that $! is the command's own PID (ip execs
# it), not a subshell's.
ns() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

cleanup() {
  local p
  trap - EXIT INT TERM
  {                                 # the last started first; no
    for p in $(echo $PIDS | tr ' ' '\n' | tac); do     # "Killed" lines
      kill -KILL $(pgrep -P "$p") "$p"
    done
    wait
  } 2>/dev/null
  for n in br lb cl redis $HOSTS; do
    ip netns del "$P-$n" 2>/dev/null
  done
  if [ -n "$T" ]; then
    if [ -n "${CLUSTER_KEEP:-}" ]; then say "logs kept in $T"
    else rm -rf "$T"; fi
  fi
}

[ "$(id -u)" = 0 ] || die "needs root (network namespaces)"
[ -x "$BIN" ] || die "$BIN is missing: run make first"
for tool in ip haproxy redis-server redis-cli wrk curl python3; do
  command -v $tool > /dev/null || die "$tool is missing (make test-deps)"
done
T=$(mktemp -d "${TMPDIR:-/tmp}/moonlet-cluster.XXXXXX") || die "mktemp"
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# {======================================================
# The network: a bridge in a namespace of its own, one veth per host
# =======================================================

make_net() {
  local n
  ip netns add "$P-br" || die "cannot make namespaces"
  ns br ip link add br0 type bridge
  ns br ip link set br0 up
  ns br ip link set lo up
  for n in lb cl redis $HOSTS; do
    ip netns add "$P-$n"
    ip link add "$P$n" type veth peer name "$P${n}b"
    ip link set "$P$n" netns "$P-$n"
    ip link set "$P${n}b" netns "$P-br"
    ns br ip link set "$P${n}b" master br0 up
    ns "$n" ip link set lo up
    ns "$n" ip link set "$P$n" name eth0
    ns "$n" ip addr add "${IP[$n]}/24" dev eth0
    ns "$n" ip link set eth0 up
  done
}

# }======================================================

# wait_for SECONDS CMD...: until CMD succeeds; 1 when it never did.
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" > /dev/null 2>&1; do
    [ "$(date +%s)" -lt $end ] || return 1
    sleep 0.1
  done
}

start_redis() {
  ip netns exec "$P-redis" redis-server --bind "${IP[redis]}" --port 6379 --save '' \
    --appendonly no --protected-mode no --daemonize no \
    > "$T/redis.log" 2>&1 &
  PIDS="$PIDS $!"
  wait_for 10 ns redis redis-cli -h "${IP[redis]}" ping ||
    die "Redis did not start: $(cat "$T/redis.log")"
}

# A host: two workers, the PROXY protocol from the balancer and the test
# client only, and a drain delay longer than two failed health checks.
start_host() {
  local h=$1
  ip netns exec "$P-$h" env REDIS_URL="redis://${IP[redis]}:6379" HOST_NAME="$h" \
    "$BIN" run "$APP" --host "${IP[$h]}" --port 8080 --workers 2 \
    --proxy-protocol --forwarded-allow-ips "${IP[lb]},${IP[cl]}" \
    --drain-delay 1 --grace 10 >> "$T/$h.log" 2>&1 &
  HOSTPID[$h]=$!
  PIDS="$PIDS $!"
  wait_for 10 ns cl curl -sf --haproxy-protocol \
    "http://${IP[$h]}:8080/ready" ||
    die "$h did not start: $(tail -n 20 "$T/$h.log")"
}

start_haproxy() {
  local h
  {
    cat <<EOF
global
  maxconn 8192
  stats socket $T/haproxy.sock mode 600 level admin
defaults
  mode http
  option http-keep-alive
  timeout connect 1s
  timeout client 30s
  timeout server 10s
  timeout http-request 10s
  retries 3
  option redispatch 1
  retry-on conn-failure empty-response
frontend www
  bind ${IP[lb]}:80
  default_backend hosts
backend hosts
  balance roundrobin
  option httpchk GET /ready
  http-check expect status 200
  default-server inter 250ms fall 2 rise 2 send-proxy-v2 check
EOF
    for h in $HOSTS; do echo "  server $h ${IP[$h]}:8080"; done
  } > "$T/haproxy.cfg"
  ip netns exec "$P-lb" haproxy -f "$T/haproxy.cfg" -db > "$T/haproxy.log" 2>&1 &
  PIDS="$PIDS $!"
  wait_for 10 ns cl curl -sf "http://${IP[lb]}/ready" ||
    die "HAProxy did not start: $(cat "$T/haproxy.log")"
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Sleeps until SECONDS after the load began.
at() {
  local left
  left=$(awk -v a="$LOAD_T0" -v b="$(now)" -v s="$1" \
    'BEGIN { d = a + s - b; printf "%.2f", (d > 0 ? d : 0) }')
  sleep "$left" &                 # a signal's trap runs at once, not
  wait $!                          # once the sleep is over
}

# SIGTERM to a host, then waits until it has drained and exited.
stop_host() {
  local pid=${HOSTPID[$1]} t0
  t0=$(now)
  kill -TERM "$pid"
  wait "$pid" 2>/dev/null
  STOP_SECONDS=$(since "$t0")
}

# SIGKILL to a host's master and workers at once: a crash, no drain.
kill_host() {
  local pid=${HOSTPID[$1]}
  kill -KILL $(pgrep -P "$pid") "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
}

# {======================================================
# The message: posted through h1, read from h3's feed
# =======================================================

start_reader() {
  ip netns exec "$P-cl" curl -sN --haproxy-protocol --max-time $((D + 30)) \
    "http://${IP[h3]}:8080/feed" > "$T/feed.txt" 2>/dev/null &
  READER=$!
  PIDS="$PIDS $!"
  wait_for 5 grep -q "event: hello" "$T/feed.txt"
}

# Runs beside the load: posts through h1, then waits up to 5 s for the
# message on h3's feed; writes 1 (arrived) or 0 to $T/arrived.
post_message() {
  local msg="hello from h1, run $P"
  ns cl curl -sf --haproxy-protocol --data-urlencode "text=$msg" \
    "http://${IP[h1]}:8080/messages" > "$T/post.txt" 2>&1
  if wait_for 5 grep -q "$msg" "$T/feed.txt"; then echo 1
  else echo 0; fi > "$T/arrived"
}

# }======================================================

# HAProxy's per-server counters: "name stot hrsp_5xx wretr wredis".
haproxy_stats() {
  python3 - "$T/haproxy.sock" <<'EOF'
import csv, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b"show stat\n")
data = b""
while True:
    b = s.recv(65536)
    if not b:
        break
    data += b
rows = csv.DictReader(data.decode().lstrip("# ").splitlines())
for r in rows:
    if r["pxname"] == "hosts" and r["svname"] != "BACKEND":
        print(r["svname"], r["stot"] or 0, r["hrsp_5xx"] or 0,
              r["wretr"] or 0, r["wredis"] or 0)
EOF
}

main() {
  local h e1 e2
  make_net
  start_redis
  for h in $HOSTS; do start_host "$h"; done
  start_haproxy
  start_reader
  say "3 hosts, HAProxy and Redis up; ${D} s of load through HAProxy"
  LOAD_T0=$(now)
  ip netns exec "$P-cl" wrk -t2 -c"$CONNS" -d"${D}s" --timeout 10s -s "$HERE/load.lua" \
    "http://${IP[lb]}/" > "$T/wrk.txt" 2>&1 &
  WRK=$!
  PIDS="$PIDS $!"
  e1=$(awk -v d="$D" 'BEGIN { printf "%.1f", d * 0.3 }')
  e2=$(awk -v d="$D" 'BEGIN { printf "%.1f", d * 0.6 }')
  at "$e1"
  post_message &
  POSTER=$!
  stop_host h1
  EVENTS="  $e1 s: SIGTERM h1: it drained and exited in $STOP_SECONDS s"
  start_host h1
  EVENTS="$EVENTS; started again at $(since "$LOAD_T0") s
"
  at "$e2"
  kill_host h2
  EVENTS="$EVENTS  $e2 s: SIGKILL h2 (master and workers), left down"
  wait "$WRK"
  wait "$POSTER"
  ARRIVED=$(cat "$T/arrived" 2>/dev/null)
  report
}

report() {
  local hits acked errors lost st name tot r5 retr redis served=""
  hits=$(ns redis redis-cli -h "${IP[redis]}" get hits)
  acked=$(sed -n 's/^acked //p' "$T/wrk.txt")
  errors=$(sed -n 's/^failed //p' "$T/wrk.txt")
  [ -n "$acked" ] && [ -n "$errors" ] ||
    { cat "$T/wrk.txt"; die "wrk did not finish"; }
  lost=$(( acked > ${hits:-0} ? acked - ${hits:-0} : 0 ))
  echo "moonlet cluster: 3 hosts (h1 h2 h3, 2 workers each) behind HAProxy," \
       "one Redis"
  echo "load: wrk ${D} s, 2 threads, $CONNS connections, GET / and" \
       "POST /hit (1 in 10)"
  echo "events:"
  echo "$EVENTS"
  sed -n 's/^\(requests\|status\|socket\) .*/  &/p' "$T/wrk.txt"
  echo "requests per host (HAProxy: total, 5xx, retries, redispatches):"
  haproxy_stats | while read -r name tot r5 retr redis; do
    printf '  %-8s %7d %5d %5d %5d\n' "$name" "$tot" "$r5" "$retr" "$redis"
  done
  echo "counter: Redis holds $hits; clients saw $acked increments" \
       "acknowledged ($(( ${hits:-0} > acked ? ${hits:-0} - acked : 0 ))" \
       "counted but never acknowledged: cut off by the kill, or retried)"
  if [ "$ARRIVED" = 1 ]; then
    echo "message: posted through h1, arrived on h3's feed"
  else
    echo "message: posted through h1, NOT seen on h3's feed"
  fi
  echo "errors: $errors"
  echo "lost: $lost"
  [ "$errors" = 0 ] && [ "$lost" = 0 ] && [ "$ARRIVED" = 1 ]
}

main
