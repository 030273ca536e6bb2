# lib.sh - shared by run.sh and instr.sh (sourced, POSIX sh): build the
# bench tools, start and stop the servers under a temporary directory,
# read CPU and memory from /proc.  Only PIDs started here are signalled.

ROOT=$(pwd)
BUILD=${BUILD:-build}
ML="$ROOT/$BUILD/moonlet"
BIN="$ROOT/$BUILD/bench"
HERE="$ROOT/spec/bench"
CLK_TCK=$(getconf CLK_TCK)
STARTED=""              # every PID started here, for the cleanup
T=""

die() {
  echo "bench: $*" >&2
  exit 1
}

# The temporary directory every server and log lives under; removed, with
# every process started here, at exit.
bench_tmp() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/moonlet-bench.XXXXXX") || die "mktemp"
  trap 'bench_cleanup' EXIT
  trap 'exit 130' INT TERM
}

bench_cleanup() {
  [ -z "${PG_PID:-}" ] || pg_down   # a cluster pg_up made, failed or not
  # nginx masters first get SIGTERM, so they stop their workers too.
  for p in $STARTED; do
    kill -TERM $(pgrep -P "$p") "$p" 2>/dev/null
  done
  case $STARTED in *[0-9]*) sleep 0.5 ;; esac
  for p in $STARTED; do
    kill -KILL $(pgrep -P "$p") "$p" 2>/dev/null
  done
  [ -n "$T" ] && rm -rf "$T"
}

# Raises the open-file limit for this shell and its children.
raise_nofile() {
  ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
  [ "$(ulimit -n)" -ge 11000 ] 2>/dev/null ||
    echo "bench: warning: ulimit -n is $(ulimit -n); idle needs 11000" >&2
}

# Compiles limit and client against the llhttp objects `make` built.
build_tools() {
  mkdir -p "$BIN"
  CF="-std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g -Wall
      -Wextra -I/usr/share/include/llhttp $(pkg-config --cflags libuv)"
  LL="$ROOT/$BUILD/llhttp/api.o $ROOT/$BUILD/llhttp/http.o
      $ROOT/$BUILD/llhttp/llhttp.o"
  for tool in limit client wsclient; do
    if [ ! -x "$BIN/$tool" ] || [ "$HERE/$tool.c" -nt "$BIN/$tool" ]; then
      # shellcheck disable=SC2086
      cc $CF -o "$BIN/$tool" "$HERE/$tool.c" $LL \
        $(pkg-config --libs libuv) || die "cannot build $tool"
    fi
  done
  if [ ! -x "$BIN/tlsclient" ] || [ "$HERE/tlsclient.c" -nt "$BIN/tlsclient" ]
  then
    # shellcheck disable=SC2086
    cc $CF -o "$BIN/tlsclient" "$HERE/tlsclient.c" \
      $(pkg-config --libs openssl) || die "cannot build tlsclient"
  fi
}

# make_pki: the TLS scenarios' throwaway CA and certificate for localhost
# and 127.0.0.1 (spec/tls/make-certs.sh), in $T/pki; sets PKI.
make_pki() {
  PKI="$T/pki"
  [ -f "$PKI/server.pem" ] ||
    sh "$ROOT/spec/tls/make-certs.sh" "$PKI" > /dev/null ||
    die "cannot make the certificates"
}

# wait_line FILE PATTERN SECONDS: waits for a line in FILE; prints it.
wait_line() {
  i=0
  while [ $i -lt $(($3 * 20)) ]; do
    if grep -q "$2" "$1" 2>/dev/null; then
      grep -m1 "$2" "$1"
      return 0
    fi
    sleep 0.05
    i=$((i + 1))
  done
  return 1
}

# forget PID: a reaped process leaves the cleanup list (its PID may be
# reused by a process that is not ours).
forget() {
  STARTED=$(echo " $STARTED " | sed "s/ $1 / /")
}

# alive PID: running (a zombie waiting to be reaped is not).
alive() {
  st=$(sed "s/^.*) //" "/proc/$1/stat" 2>/dev/null | cut -c1)
  [ -n "$st" ] && [ "$st" != Z ]
}

# stop PID: SIGTERM, up to 10 s, then SIGKILL; reaps it.
stop() {
  [ -n "$1" ] || return 0
  kill -TERM "$1" 2>/dev/null
  i=0
  while alive "$1" && [ $i -lt 200 ]; do
    sleep 0.05
    i=$((i + 1))
  done
  kill -KILL "$1" 2>/dev/null
  wait "$1" 2>/dev/null
  forget "$1"
  return 0
}

# static_files: the directory app:static and nginx serve in the static
# scenarios: 4k.bin and 1m.bin, random bytes (BENCH_STATIC_DIR).
static_files() {
  BENCH_STATIC_DIR="$T/static"
  export BENCH_STATIC_DIR
  mkdir -p "$BENCH_STATIC_DIR"
  head -c 4096 /dev/urandom > "$BENCH_STATIC_DIR/4k.bin"
  head -c 1048576 /dev/urandom > "$BENCH_STATIC_DIR/1m.bin"
  # nginx's workers run as another user: they must read their way in.
  chmod 755 "$T" "$BENCH_STATIC_DIR"
  chmod 644 "$BENCH_STATIC_DIR"/*.bin
}

# start_moonlet APP [LOGLEVEL]: moonlet on CPU 0, ephemeral port; with
# TLS=1, HTTPS with $PKI's pair.  Sets PID (the process) and PORT.
start_moonlet() {
  : > "$T/moonlet.out"
  set -- "$1" "${2:-warn}"
  [ "${TLS:-0}" = 1 ] &&
    set -- "$@" --tls-cert "$PKI/server.pem" --tls-key "$PKI/server.key"
  taskset -c 0 "$ML" run "$1" --port 0 --log-level "$2" $(shift 2; echo "$@") \
    > "$T/moonlet.out" 2>> "$T/moonlet.err" &
  PID=$!
  STARTED="$STARTED $PID"
  line=$(wait_line "$T/moonlet.out" "listening on" 10) ||
    { cat "$T/moonlet.err" >&2; die "moonlet did not start ($1)"; }
  PORT=${line##*:}
}

# start_node: Node's ws echo server on CPU 0.  Sets PID and PORT.
start_node() {
  : > "$T/node.out"
  NODE_PATH=/usr/share/nodejs taskset -c 0 node "$HERE/node/ws_echo.js" \
    > "$T/node.out" 2>> "$T/node.err" &
  PID=$!
  STARTED="$STARTED $PID"
  line=$(wait_line "$T/node.out" "listening on" 10) ||
    { cat "$T/node.err" >&2; die "node did not start"; }
  PORT=${line##*:}
}

# start_limit [ARGS...]: the ceiling on CPU 0.  Sets PID and PORT.
start_limit() {
  : > "$T/limit.out"
  taskset -c 0 "$BIN/limit" --port 0 "$@" > "$T/limit.out" \
    2>> "$T/limit.err" &
  PID=$!
  STARTED="$STARTED $PID"
  line=$(wait_line "$T/limit.out" "listening on" 10) ||
    die "limit did not start"
  PORT=${line##*:}
}

# nginx_conf DIR PORT BODY [BACKEND_PORT]: a one-worker nginx + ngx_lua
# config with the bench routes; BODY is what / answers.  With TLS=1 it
# listens with ssl on $PKI's pair (TLS 1.2 and 1.3, session tickets, as
# moonlet), and with HS_LOG=1 logs the first request of each connection
# (one per handshake: "CONNECTION r" when it resumed a session, "CONNECTION
# ." when it was a full one) to DIR/handshakes.log; with BACKEND_TLS=1 its /fanin talks
# TLS to the backend, verified, reusing pooled connections as ngx_lua
# does.
nginx_conf() {
  mkdir -p "$1"
  if [ "${TLS:-0}" = 1 ]; then
    ssl="ssl"
    ssl_conf="ssl_certificate $PKI/server.pem;
    ssl_certificate_key $PKI/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;"
    [ "${HS_LOG:-0}" = 1 ] && ssl_conf="$ssl_conf
    access_log $1/handshakes.log first if=\$ml_first;"
  else
    ssl=""
    ssl_conf=""
  fi
  lua_ssl=""
  [ -n "${PKI:-}" ] && lua_ssl="lua_ssl_trusted_certificate $PKI/ca.pem;"
  if [ "${BACKEND_TLS:-0}" = 1 ]; then
    backend_tls='if sock:getreusedtimes() == 0 then
          local s, e = sock:sslhandshake(nil, "localhost", true)
          if not s then ngx.status = 502 ngx.print(e) return end
        end'
  else
    backend_tls=""
  fi
  cat > "$1/nginx.conf" <<EOF
# generated by spec/bench/lib.sh
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $(ulimit -n);
pid $1/nginx.pid;
lock_file $1/nginx.lock;
error_log $1/error.log notice;
events {
  worker_connections 20000;
}
http {
  access_log off;
  map \$connection_requests \$ml_first { 1 1; default 0; }
  log_format first "\$connection \$ssl_session_reused";
  $lua_ssl
  keepalive_requests 1000000;
  client_body_temp_path $1/body;
  proxy_temp_path $1/proxy;
  fastcgi_temp_path $1/fastcgi;
  uwsgi_temp_path $1/uwsgi;
  scgi_temp_path $1/scgi;
  server {
    listen 127.0.0.1:$2 $ssl backlog=4096;
    $ssl_conf
    default_type "text/html; charset=utf-8";
    location = / {
      content_by_lua_block {
        ngx.header.content_length = #"$3"
        ngx.print("$3")
      }
    }
    location /files/ {
      alias ${BENCH_STATIC_DIR:-/nonexistent}/;
    }
    location = /headers {
      content_by_lua_block {
        ngx.header["Content-Type"] = "text/plain"
        ngx.header.content_length = #"$3"
        ngx.print("$3")
      }
    }
    location = /json {
      default_type application/json;
      content_by_lua_block {
        local body = require("cjson").encode({ message = "Hello, World!" })
        ngx.header.content_length = #body
        ngx.print(body)
      }
    }
    location ~ ^/user/(-?[0-9]+)\$ {
      content_by_lua_block {
        local id = tostring(tonumber(ngx.var[1]))
        ngx.header.content_length = #id
        ngx.print(id)
      }
    }
    location = /ws {
      content_by_lua_block {
        local server = require "nginx.websocket.server"
        local wb = server:new{ timeout = 600000, max_payload_len = 1048576 }
        if not wb then return ngx.exit(400) end
        while true do
          local data, typ = wb:recv_frame()
          if not data then
            if wb.fatal then return end
          elseif typ == "close" then
            wb:send_close()
            return
          elseif typ == "ping" then
            wb:send_pong(data)
          elseif typ == "text" then
            wb:send_text(data)
          elseif typ == "binary" then
            wb:send_binary(data)
          end
        end
      }
    }
    location = /sleep {
      content_by_lua_block {
        ngx.sleep(1)
        ngx.header.content_length = 13
        ngx.print("Hello, World!")
      }
    }
    location = /backend {
      content_by_lua_block {
        ngx.sleep(0.02)
        ngx.header.content_length = 13
        ngx.print("Hello, World!")
      }
    }
    location = /fanin {
      content_by_lua_block {
        local sock = ngx.socket.tcp()
        sock:settimeout(30000)
        local ok, err = sock:connect("127.0.0.1", ${4:-0})
        if not ok then ngx.status = 502 ngx.print(err) return end
        $backend_tls
        sock:send("GET /backend HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        local line = sock:receive("*l")
        local len
        while line do
          line = sock:receive("*l")
          if not line or line == "" then break end
          local v = line:match("^[Cc]ontent%-[Ll]ength:%s*(%d+)")
          if v then len = tonumber(v) end
        end
        local body = len and sock:receive(len)
        if not body then ngx.status = 502 sock:close() return end
        sock:setkeepalive(60000, 2000)
        ngx.header.content_length = #body
        ngx.print(body)
      }
    }
  }
}
EOF
}

# start_nginx DIR PORT CPU: nginx (master + one worker) on CPU; PID is the
# master.  The config must exist.  Waits until / answers.
start_nginx() {
  taskset -c "$3" nginx -p "$1" -c "$1/nginx.conf" -e "$1/error.log" \
    > "$1/stdout" 2>&1 &
  PID=$!
  STARTED="$STARTED $PID"
  PORT=$2
  i=0
  until get_ok "$PORT" /; do
    i=$((i + 1))
    if [ $i -ge 100 ] || ! alive "$PID"; then
      cat "$1/error.log" "$1/stdout" >&2
      die "nginx did not start on port $PORT"
    fi
    sleep 0.1
  done
}

# get_ok PORT PATH: one GET answers 200 (over TLS with TLS=1).
get_ok() {
  if [ "${TLS:-0}" = 1 ]; then
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
      --cacert "$PKI/ca.pem" "https://localhost:$1$2")" = 200 ]
  else
    "$BIN/client" get "$1" "$2" 2>/dev/null | grep -q '^200 '
  fi
}

# serving_pids PID: the process(es) that serve: nginx's workers, or PID.
serving_pids() {
  kids=$(pgrep -P "$1" 2>/dev/null | tr '\n' ' ')
  if [ -n "$kids" ]; then echo "$kids"; else echo "$1"; fi
}

# cpu_ticks PID: user+system ticks of PID, its reaped children and its
# live children (nginx's workers, old ones after a reload included).
cpu_ticks() {
  t=0
  for p in $1 $(pgrep -P "$1" 2>/dev/null); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null |
        awk '{ print $12 + $13 + $14 + $15 }')
    t=$((t + ${v:-0}))
  done
  echo $t
}

# rss_kb PID FIELD: a /proc/PID/status field (VmRSS, VmHWM) in KiB,
# summed over the serving processes.
rss_kb() {
  t=0
  for p in $(serving_pids "$1"); do
    v=$(awk -v f="$2:" '$1 == f { print $2 }' "/proc/$p/status" 2>/dev/null)
    t=$((t + ${v:-0}))
  done
  echo $t
}

# reset_peak PID: restarts VmHWM at the current RSS (Linux 4.0+).
reset_peak() {
  for p in $(serving_pids "$1"); do
    echo 5 > "/proc/$p/clear_refs" 2>/dev/null
  done
  return 0
}

# cpu_busy N: ticks CPU N has spent busy, all processes and interrupts
# together; less the server's (CPU 0) or wrk's (CPU 1) own, what else ran.
cpu_busy() {
  awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}

# quiet: waits until both CPUs are nearly idle for half a second, so
# another process's burst does not land in a run (the machine may be
# shared); at most BENCH_QUIET_WAIT seconds in all over a whole bench
# (default 120), then it stops waiting.
QUIET_LEFT=$((${BENCH_QUIET_WAIT:-120} * 2))
quiet() {
  while [ "$QUIET_LEFT" -gt 0 ]; do
    a=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)
    sleep 0.5
    b=$(awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat)
    # busy ticks in 0.5 s over 2 CPUs; 10% of one CPU is CLK_TCK / 20
    [ $((b - a)) -le $((CLK_TCK / 20)) ] && return 0
    QUIET_LEFT=$((QUIET_LEFT - 1))
    [ "$QUIET_LEFT" -eq 0 ] &&
      echo "bench: warning: the machine is busy; no more waiting" >&2
  done
  return 0
}

# free_port: a free TCP port on 127.0.0.1 (bound once, then let go).
free_port() {
  lua5.4 -e 'local s = require("socket").bind("127.0.0.1", 0)
    local _, port = s:getsockname() print(port) s:close()'
}

# pg_up: a PostgreSQL cluster for the run (spec/stores.lua: initdb as the
# postgres user, a free port, data under /tmp) with TechEmpower's 10,000-
# row world table, its postmaster and backends on CPU 1.  Sets PG_URL,
# PG_PID and PG_DIR; pg_down stops it by PID and removes its directory.
pg_up() {
  lua5.4 -e 'package.path = "spec/?.lua;" .. package.path
    local pg = require("stores").postgres()
    assert(pg:psql("CREATE TABLE world (id int PRIMARY KEY, " ..
      "randomnumber int NOT NULL); INSERT INTO world SELECT i, " ..
      "1 + floor(random() * 10000) FROM generate_series(1, 10000) i; " ..
      "ANALYZE world", "app"))
    assert(pg:psql("GRANT SELECT ON world TO app", "app"))
    print(pg.url, pg.pid, pg.dir)' > "$T/pg.env" ||
    die "PostgreSQL did not start"
  read -r PG_URL PG_PID PG_DIR < "$T/pg.env"
  taskset -cp 1 "$PG_PID" > /dev/null   # and the backends it forks
}

pg_down() {
  kill -INT "$PG_PID" 2>/dev/null
  i=0
  while kill -0 "$PG_PID" 2>/dev/null && [ $i -lt 200 ]; do
    sleep 0.05; i=$((i + 1))
  done
  case $PG_DIR in /tmp/moonlet-pg.*) rm -rf "$PG_DIR" ;; esac
  PG_PID=""
}

NPM_DIR="$ROOT/$BUILD/bench/npm" # node-postgres from npm, installed once

# node-postgres, once per build tree.
node_pg() {
  [ -d "$NPM_DIR/node_modules/pg" ] && return 0
  mkdir -p "$NPM_DIR"
  npm install --silent --no-audit --no-fund --prefix "$NPM_DIR" pg@8 \
    > "$T/npm.log" 2>&1 || { cat "$T/npm.log" >&2; return 1; }
}
