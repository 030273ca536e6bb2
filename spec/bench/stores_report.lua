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

local rps_of, conns_of = {}, {}   -- medians by "scenario conns server"

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
  rps_of[key] = rps
  conns_of[key] = tonumber(conns)
  print(("| %s | %s | %s | %.0f (%.0f-%.0f) | %.1f ms | %.0f us | %d | %s |")
    :format(WHAT[r1.scenario] or r1.scenario, r1.conns,
      NAMES[r1.server] or r1.server, rps, lo, hi, p99, cpu, errs, conns))
end

-- The issue's targets, checked on the medians: Redis >= 1.5x nginx +
-- lua-resty-redis on <= 4 Redis connections per worker; PostgreSQL >= 2x
-- aiohttp + asyncpg.
local function verdict(ok) return ok and "met" or "NOT met" end
local lines = {}
for _, key in ipairs(order) do
  local scen, conns, server = key:match("^(.-)\t(.-)\t(.-)$")
  local base = scen .. "\t" .. conns .. "\t"
  if server == "moonlet" and scen == "redis" and rps_of[base .. "nginx"] then
    local ratio = rps_of[key] / math.max(rps_of[base .. "nginx"], 1)
    local n = conns_of[key] or -1
    lines[#lines + 1] = ("- Redis GET, %s connections: %.2fx nginx + "
      .. "lua-resty-redis (target 1.5x: %s) on %d Redis connection(s) "
      .. "(target at most 4: %s)"):format(conns, ratio, verdict(ratio >= 1.5),
      n, verdict(n >= 0 and n <= 4))
  elseif server == "moonlet" and rps_of[base .. "aiohttp"] then
    local ratio = rps_of[key] / math.max(rps_of[base .. "aiohttp"], 1)
    lines[#lines + 1] = ("- %s: %.2fx aiohttp + asyncpg (target 2x: %s)")
      :format(WHAT[scen] or scen, ratio, verdict(ratio >= 2))
  end
end
if #lines > 0 then
  print()
  print("Targets:")
  print()
  for _, l in ipairs(lines) do print(l) end
end
