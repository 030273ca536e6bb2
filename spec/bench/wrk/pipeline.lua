-- wrk script: sends DEPTH requests (default 16, `-- DEPTH` after the URL)
-- in one write per connection; wrk's latency is then per batch.
local depth = 16

function init(args)
  depth = tonumber(args[1]) or depth
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format(nil, nil)
  end
  batch = table.concat(r)
end

function request()
  return batch
end

-- wrk's own CPU ticks (all threads), so run.sh can tell what else ran
-- on CPU 1.
local function own_ticks()
  local f = io.open("/proc/self/stat")
  if not f then return 0 end
  local rest = f:read("*a"):match("%) (.*)")
  f:close()
  local n, t = 0, 0
  for v in rest:gmatch("%S+") do
    n = n + 1
    if n == 12 or n == 13 then t = t + tonumber(v) end
  end
  return t
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(("BENCH requests=%d duration_us=%d connect=%d read=%d " ..
    "write=%d timeout=%d status=%d p50_us=%d p99_us=%d max_us=%d " ..
    "wrk_ticks=%d\n"):format(
    summary.requests, summary.duration, e.connect, e.read, e.write,
    e.timeout, e.status, latency:percentile(50), latency:percentile(99),
    latency.max, own_ticks()))
end
