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

-- Same line as report.lua (wrk loads one script).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(("BENCH requests=%d duration_us=%d connect=%d read=%d " ..
    "write=%d timeout=%d status=%d p50_us=%d p99_us=%d max_us=%d\n"):format(
    summary.requests, summary.duration, e.connect, e.read, e.write,
    e.timeout, e.status, latency:percentile(50), latency:percentile(99),
    latency.max))
end
