#!/bin/sh
# shared.sh - `make bench-shared`: moonlet.shared's get, set and incr from
# Lua, with 1 and 2 workers, beside nginx's lua_shared_dict (ngx.shared.DICT)
# with the same number of workers; then how long the store's calls hold
# its lock (shared_lock.c).  Each worker runs N calls on 1,000 keys in one
# request, all workers at once (shared_client.lua); the table gives the
# median calls per second of BENCH_RUNS runs.  Servers on CPU 0 (one
# worker) or CPUs 0-1 (two); results/shared.md.
#
#   BENCH_RUNS=3   BENCH_SHARED_N=2000000   BENCH_PORT=18081
set -u
. spec/bench/lib.sh

RUNS=${BENCH_RUNS:-3}
N=${BENCH_SHARED_N:-2000000}
NGX_PORT=${BENCH_PORT:-18081}
OUT="$HERE/results/shared.md"

[ -x "$ML" ] || die "$ML is missing: run make first"
command -v nginx > /dev/null || die "nginx is missing"
bench_tmp

cpus() { [ "$1" = 1 ] && echo 0 || echo 0-1; }

# start_ml WORKERS: sets PID and PORT.
start_ml() {
  : > "$T/ml.out"
  taskset -c "$(cpus "$1")" "$ML" run "$HERE/apps/shared.lua" --port 0 \
    --workers "$1" --log-level warn > "$T/ml.out" 2>> "$T/ml.err" &
  PID=$!
  STARTED="$STARTED $PID"
  line=$(wait_line "$T/ml.out" "listening on" 10) ||
    { cat "$T/ml.err" >&2; die "moonlet did not start"; }
  PORT=${line##*:}
}

# start_ngx WORKERS: nginx + ngx_lua with a 16 MiB lua_shared_dict and the
# same routes.  Sets PID and PORT.
start_ngx() {
  d="$T/nginx$1"
  mkdir -p "$d"
  cat > "$d/nginx.conf" <<NGX
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
daemon off;
master_process on;
worker_processes $1;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $d/body;
  proxy_temp_path $d/proxy;
  fastcgi_temp_path $d/fastcgi;
  uwsgi_temp_path $d/uwsgi;
  scgi_temp_path $d/scgi;
  lua_shared_dict bench 16m;
  init_by_lua_block {
    keys = {}
    for i = 1, 1000 do keys[i] = "key:" .. i end
    function answer(body)      -- with a length: the client reads one
      ngx.header.content_length = #body
      ngx.print(body)
    end
  }
  server {
    listen 127.0.0.1:$NGX_PORT reuseport;
    location = /who {
      content_by_lua_block { answer(tostring(ngx.worker.id())) }
    }
    location = /prepare {
      content_by_lua_block {
        local d = ngx.shared.bench
        for i = 1, 1000 do d:set(keys[i], i) end
        answer("ok")
      }
    }
    location ~ ^/run/(get|set|incr)/([0-9]+)\$ {
      content_by_lua_block {
        local d, op, n = ngx.shared.bench, ngx.var[1], tonumber(ngx.var[2])
        if op == "get" then
          for i = 1, n do d:get(keys[i % 1000 + 1]) end
        elseif op == "set" then
          for i = 1, n do d:set(keys[i % 1000 + 1], i) end
        else
          for i = 1, n do d:incr(keys[i % 1000 + 1], 1, 0) end
        end
        answer(tostring(ngx.worker.id()))
      }
    }
  }
}
NGX
  taskset -c "$(cpus "$1")" nginx -p "$d" -c "$d/nginx.conf" \
    -e "$d/error.log" > "$d/stdout" 2>&1 &
  PID=$!
  STARTED="$STARTED $PID"
  PORT=$NGX_PORT
  i=0
  until curl -sf "http://127.0.0.1:$PORT/who" > /dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 100 ] || { cat "$d/error.log" >&2; die "nginx did not start"; }
    sleep 0.1
  done
}

median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# one SERVER WORKERS OP: the median of RUNS runs, calls per second.
one() {
  r=1
  : > "$T/fail"
  while [ $r -le "$RUNS" ]; do
    taskset -c 1 lua5.4 "$HERE/shared_client.lua" "$PORT" "$2" "$3" "$N" ||
      echo "$1 $2 $3" >> "$T/fail"
    r=$((r + 1))
  done | median
  [ ! -s "$T/fail" ] || die "the client failed: $(cat "$T/fail")"
}

{
  echo "# moonlet.shared against lua_shared_dict"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, $("$ML" version);"
  echo "$(nginx -v 2>&1 | sed 's/^.*: //') with libnginx-mod-http-lua" \
       "$(dpkg-query -W -f '${Version}' libnginx-mod-http-lua 2>/dev/null)" \
       "(LuaJIT). $N calls per worker on 1,000 keys, all workers at once;"
  echo "median of $RUNS runs, calls per second (all workers together)."
  echo
  echo "| workers | call | moonlet.shared | ngx.shared.DICT |"
  echo "| --- | --- | ---: | ---: |"
} > "$T/table"

for w in 1 2; do
  start_ml "$w"
  curl -sf "http://127.0.0.1:$PORT/prepare" > /dev/null || die "prepare"
  for op in get set incr; do one moonlet "$w" "$op" > "$T/ml-$w-$op"; done
  stop "$PID"
  start_ngx "$w"
  curl -sf "http://127.0.0.1:$PORT/prepare" > /dev/null || die "prepare"
  for op in get set incr; do one nginx "$w" "$op" > "$T/ngx-$w-$op"; done
  stop "$PID"
  for op in get set incr; do
    echo "| $w | $op | $(cat "$T/ml-$w-$op") | $(cat "$T/ngx-$w-$op") |" \
      >> "$T/table"
  done
done

cc -std=c99 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -iquote runtime \
  -o "$T/shared_lock" "$HERE/shared_lock.c" runtime/base/shared.c \
  runtime/base/arena.c runtime/base/log.c \
  $(pkg-config --cflags libuv lua5.4) \
  $(pkg-config --libs libuv) -lpthread || die "cannot build shared_lock"
{ echo; taskset -c 0 "$T/shared_lock"; } >> "$T/table"
cp "$T/table" "$OUT"
cat "$OUT"
