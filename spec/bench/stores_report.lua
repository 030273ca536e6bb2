-- stores_report.lua RAW: the database scenarios' table (stores.sh) from
-- its raw lines, medians over runs (min-max), as markdown on stdout.
local rows, order = {}, {}
for line in io.lines(arg[1]) do
  local r = {}
  for k, v in line:gmatch("(%S+)=(%S+)") do r[k] = tonumber(v) or v end
  local key = ("%s\t%s\t%s"):format(r.scenario, r.conns, r.server)
  if not rows[key] then
    rows[key] = {}
    order[#order + 1] = key
  end
  table.insert(rows[key], r)
end

local function median(t, f)
  local v = {}
  for _, r in ipairs(t) do v[#v + 1] = f(r) end
  table.sort(v)
  return v[(#v + 1) // 2], v[1], v[#v]
end

local NAMES = { moonlet = "moonlet", nginx = "nginx + lua-resty-redis",
  aiohttp = "aiohttp + asyncpg", node = "Node + pg" }
local WHAT = { redis = "Redis GET route", ["pg/db"] = "PostgreSQL single query",
  ["pg/queries"] = "PostgreSQL 20 queries" }

print("| scenario | connections | server | requests/s | p99 | server CPU per request | errors | Redis connections |")
print("| --- | --- | --- | --- | --- | --- | --- | --- |")
for _, key in ipairs(order) do
  local t = rows[key]
  local r1 = t[1]
  local rps, lo, hi = median(t, function(r)
    return (r.requests or 0) / ((r.duration_us or 1) / 1e6)
  end)
  local p99 = median(t, function(r) return (r.p99_us or 0) / 1000 end)
  local cpu = median(t, function(r)
    return (r.cpu_ticks or 0) / (r.clk_tck or 100) * 1e6 /
      math.max(r.requests or 1, 1)
  end)
  local errs = median(t, function(r)
    return (r.connect or 0) + (r.read or 0) + (r.write or 0) +
      (r.timeout or 0) + (r.status or 0)
  end)
  local conns = r1.redis_conns and tostring(median(t, function(r)
    return tonumber(r.redis_conns) or -1 end)) or ""
  print(("| %s | %s | %s | %.0f (%.0f-%.0f) | %.1f ms | %.0f us | %d | %s |")
    :format(WHAT[r1.scenario] or r1.scenario, r1.conns,
      NAMES[r1.server] or r1.server, rps, lo, hi, p99, cpu, errs, conns))
end
