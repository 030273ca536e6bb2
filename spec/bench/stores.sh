#!/bin/sh
# stores.sh - the database scenarios of `make bench` (run.sh calls it for
# "redis" and "pg"): a Redis GET route against nginx + lua-resty-redis, and
# TechEmpower's single and 20 queries on PostgreSQL against aiohttp +
# asyncpg and Node + pg.  Each server runs one process on CPU 0; wrk,
# redis-server and PostgreSQL share CPU 1.  Raw lines go to
# results/stores.raw, the table to results/stores.md.
#
#   stores.sh redis pg        both (BENCH_DURATION, BENCH_RUNS as run.sh)
set -u
. spec/bench/lib.sh

D=${BENCH_DURATION:-10}
RUNS=${BENCH_RUNS:-3}
WARMUP=${BENCH_WARMUP:-2}
NGX_PORT=${BENCH_PORT:-18081}
RESULTS="$HERE/results"
PY=/usr/bin/python3              # Debian's, with python3-aiohttp/asyncpg

[ -x "$ML" ] || die "$ML is missing: run make first"
bench_tmp
raise_nofile
build_tools
taskset -cp 1 $$ > /dev/null
cp "$ML" "$T/moonlet-bin" && ML="$T/moonlet-bin"
RAW="$T/raw"
: > "$RAW"

log() {
  echo "bench: $*" >&2
}

# wrk_run CONNS PATH SECONDS: wrk on CPU 1; its BENCH line.
wrk_run() {
  taskset -c 1 wrk -t1 -c"$1" -d"${3}s" --timeout 10s \
    -s "$HERE/wrk/report.lua" "http://127.0.0.1:$PORT$2" 2>&1 |
    sed -n 's/^BENCH //p'
}

# measure SCEN SERVER RUN CONNS PATH [EXTRA]: one run with the server's
# CPU time; EXTRA is added to the record.
measure() {
  quiet
  c0=$(cpu_ticks "$PID")
  out=$(wrk_run "$4" "$5" "$D")
  c1=$(cpu_ticks "$PID")
  [ -n "$out" ] || out="requests=0 note=wrk failed"
  echo "scenario=$1 server=$2 run=$3 conns=$4 cpu_ticks=$((c1 - c0))" \
    "clk_tck=$CLK_TCK ${6:-} $out" >> "$RAW"
}

# wait_port PORT SECONDS: until GET PATH answers 200 ($3).
wait_ok() {
  i=0
  until "$BIN/client" get "$1" "$3" 2>/dev/null | grep -q '^200'; do
    i=$((i + 1))
    [ $i -ge $(($2 * 10)) ] && return 1
    sleep 0.1
  done
}

# start_cmd NAME PORT PATH CMD...: a peer on CPU 0 that serves PATH on
# PORT.  Sets PID and PORT.
start_cmd() {
  name=$1
  PORT=$2
  path=$3
  shift 3
  taskset -c 0 "$@" > "$T/$name.out" 2> "$T/$name.err" &
  PID=$!
  STARTED="$STARTED $PID"
  wait_ok "$PORT" 30 "$path" ||
    { cat "$T/$name.err" >&2; die "$name did not start"; }
}

# {====================== Redis ======================

# The nginx peer: / for start_nginx's probe, /redis with lua-resty-redis
# (Debian's lua-nginx-redis) and set_keepalive, as its users write it.
redis_nginx_conf() {
  mkdir -p "$1"
  cat > "$1/nginx.conf" <<EOF
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
pid $1/nginx.pid;
lock_file $1/nginx.lock;
error_log $1/error.log warn;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  lua_package_path "/usr/share/lua/5.1/?.lua;;";
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  server {
    listen 127.0.0.1:$2 backlog=4096;
    location = / { content_by_lua_block { ngx.print("ok") } }
    location = /redis {
      content_by_lua_block {
        local redis = require "nginx.redis"
        local red = redis:new()
        red:set_timeout(5000)
        local ok, err = red:connect("127.0.0.1", $3)
        if not ok then ngx.status = 502 ngx.print(err) return end
        local v, gerr = red:get("bench")
        if not v then ngx.status = 502 ngx.print(gerr) return end
        red:set_keepalive(60000, 1000)
        ngx.header.content_length = #v
        ngx.print(v)
      }
    }
  }
}
EOF
}

# redis_clients PID: the server's (its workers') connections to Redis.
redis_clients() {
  n=0
  for p in $(serving_pids "$1"); do
    c=$(ss -tnpH state established "( dport = :$RPORT )" 2>/dev/null |
      grep -c "pid=$p,")
    n=$((n + c))
  done
  echo $n
}

# One run, counting the server's Redis connections halfway through.
redis_measure() {
  ( sleep $((D / 2 + 1)); redis_clients "$PID" > "$T/clients" ) &
  sp=$!
  measure redis "$1" "$2" "$3" /redis "redis_conns=PENDING"
  wait $sp
  sed -i "\$s/redis_conns=PENDING/redis_conns=$(cat "$T/clients")/" "$RAW"
}

bench_redis() {
  RPORT=$(free_port)
  taskset -c 1 redis-server --port "$RPORT" --bind 127.0.0.1 --save '' \
    --appendonly no --dir "$T" --maxclients 20000 > "$T/redis.log" 2>&1 &
  RPID=$!
  STARTED="$STARTED $RPID"
  i=0
  until redis-cli -p "$RPORT" ping > /dev/null 2>&1; do
    i=$((i + 1)); [ $i -ge 100 ] && die "redis-server did not start"
    sleep 0.1
  done
  redis-cli -p "$RPORT" set bench "Hello, World!" > /dev/null
  for conns in 100 1000; do
    BENCH_REDIS_PORT=$RPORT start_moonlet "$HERE/apps/redis.lua"
    M_PID=$PID M_PORT=$PORT
    redis_nginx_conf "$T/nginx-redis" "$NGX_PORT" "$RPORT"
    start_nginx "$T/nginx-redis" "$NGX_PORT" 0
    N_PID=$PID N_PORT=$PORT
    for srv in moonlet nginx; do
      eval "PID=\$$(echo $srv | cut -c1 | tr mn MN)_PID"
      eval "PORT=\$$(echo $srv | cut -c1 | tr mn MN)_PORT"
      wrk_run "$conns" /redis "$WARMUP" > /dev/null
    done
    log "redis: ${RUNS}x ${D}s at $conns connections"
    r=1
    while [ $r -le "$RUNS" ]; do
      PID=$M_PID PORT=$M_PORT redis_measure moonlet $r $conns
      PID=$N_PID PORT=$N_PORT redis_measure nginx $r $conns
      r=$((r + 1))
    done
    stop "$M_PID"
    stop "$N_PID"
  done
  stop "$RPID"
}

# }======================

# {====================== PostgreSQL ======================

bench_pg() {
  pg_up
  BENCH_PG_URL=$PG_URL start_moonlet "$HERE/apps/pg.lua"
  M_PID=$PID M_PORT=$PORT
  p=$(free_port)
  start_cmd aiohttp "$p" /db "$PY" "$HERE/peers/aiohttp_pg.py" "$p" "$PG_URL"
  A_PID=$PID A_PORT=$PORT
  up="moonlet aiohttp"
  if node_pg; then
    p=$(free_port)
    start_cmd node "$p" /db env NODE_PATH="$NPM_DIR/node_modules" \
      node "$HERE/peers/node_pg.js" "$p" "$PG_URL"
    O_PID=$PID O_PORT=$PORT
    up="$up node"
  else
    log "pg: node-postgres could not be installed; Node left out"
  fi
  for path in /db /queries; do
    for srv in $up; do
      case $srv in moonlet) PORT=$M_PORT ;; aiohttp) PORT=$A_PORT ;;
        node) PORT=$O_PORT ;; esac
      wrk_run 100 $path "$WARMUP" > /dev/null
    done
    log "pg $path: ${RUNS}x ${D}s at 100 connections: $up"
    r=1
    while [ $r -le "$RUNS" ]; do
      for srv in $up; do
        case $srv in
        moonlet) PID=$M_PID PORT=$M_PORT ;;
        aiohttp) PID=$A_PID PORT=$A_PORT ;;
        node) PID=$O_PID PORT=$O_PORT ;;
        esac
        measure "pg$path" $srv $r 100 $path
      done
      r=$((r + 1))
    done
  done
  for p in $M_PID $A_PID ${O_PID:-}; do stop "$p"; done
  pg_down
}

# }======================

for s in "$@"; do
  case $s in
  redis) bench_redis ;;
  pg) bench_pg ;;
  *) die "unknown scenario $s" ;;
  esac
done

mkdir -p "$RESULTS"
cp "$RAW" "$RESULTS/stores.raw"
lua5.4 "$HERE/stores_report.lua" "$RAW" > "$RESULTS/stores.md" ||
  die "stores_report.lua failed"
cat "$RESULTS/stores.md"
log "wrote spec/bench/results/stores.md"
