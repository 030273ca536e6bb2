-- load.lua - wrk's script for make cluster: GET / nine times in ten,
-- POST /hit the tenth; counts statuses, and the increments acknowledged
-- (a 200 whose body begins "hit "), then prints, once for all threads:
--   requests N / status CODE N / socket errors / acked N / failed N
-- where failed counts what the client saw fail: socket errors, timeouts
-- and any status but 200.
local get, hit
local threads = {}

n, acked, counts = 0, 0, {}

function setup(thread)
  threads[#threads + 1] = thread
end

-- Formatted here, not when the script loads: wrk sets the Host header
-- (which HTTP/1.1 requires) only after loading it.
function init()
  get = wrk.format("GET", "/")
  hit = wrk.format("POST", "/hit", { ["Content-Length"] = "0" }, "")
end

function request()
  n = n + 1
  return n % 10 == 0 and hit or get
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
  if status == 200 and body:sub(1, 4) == "hit " then
    acked = acked + 1
  end
end

function done(summary, latency, requests)
  local all, ack, failed = {}, 0, 0
  for _, t in ipairs(threads) do
    ack = ack + t:get("acked")
    for status, c in pairs(t:get("counts")) do
      all[status] = (all[status] or 0) + c
    end
  end
  local e = summary.errors
  io.write(("requests %d in %.1f s (%.0f/s), p99 %.1f ms\n"):format(
    summary.requests, summary.duration / 1e6,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(99) / 1000))
  for status, c in pairs(all) do
    io.write(("status %d: %d\n"):format(status, c))
    if status ~= 200 then failed = failed + c end
  end
  io.write(("socket errors: connect %d, read %d, write %d, timeout %d\n")
    :format(e.connect, e.read, e.write, e.timeout))
  failed = failed + e.connect + e.read + e.write + e.timeout
  io.write(("acked %d\nfailed %d\n"):format(ack, failed))
end
