-- The https client's spec app: each route calls a TLS backend with
-- moonlet.http, the URL and TLS options coming in query parameters
-- (ca, verify=0, cert, key, sni, timeout), and answers JSON of what it
-- got.
local moonlet = require "moonlet"
local core = require "moonlet.core"
local http = moonlet.http
local app = moonlet.app()

local function options(q)
  local tls
  if q.ca or q.verify or q.cert or q.sni then
    tls = { ca_file = q.ca, verify = q.verify ~= "0", cert = q.cert,
      key = q.key, server_name = q.sni }
  end
  return { url = q.url, tls = tls, timeout = tonumber(q.timeout) }
end

local function outcome(res, err)
  if not res then
    return { err = err }
  end
  return { status = res.status, body = res.body }
end

app:get("/one", function(req)
  return outcome(http.request(options(req.query)))
end)

-- n calls in a row; the connections the pool opened meanwhile.
app:get("/seq", function(req)
  local before, list = core.http_connects(), {}
  local o = options(req.query)
  for i = 1, tonumber(req.query.n) do
    list[i] = outcome(http.request(o))
  end
  return { results = list, connects = core.http_connects() - before }
end)

-- rounds of n calls at once; the connections the pool opened meanwhile.
app:get("/fan", function(req)
  local before, statuses = core.http_connects(), {}
  local o = options(req.query)
  local function one()
    local res, err = http.request(o)
    return res and res.status or err
  end
  for _ = 1, tonumber(req.query.rounds) do
    local fns = {}
    for i = 1, tonumber(req.query.n) do fns[i] = one end
    for _, st in ipairs { moonlet.gather(table.unpack(fns)) } do
      statuses[tostring(st)] = (statuses[tostring(st)] or 0) + 1
    end
  end
  return { statuses = statuses, connects = core.http_connects() - before }
end)

-- n calls, each to one of the URLs given (u=...), ok or not.
app:get("/mixed", function(req)
  local urls, ok, failed = req:query_all("u"), 0, 0
  local o = options(req.query)
  for i = 1, tonumber(req.query.n) do
    o.url = urls[(i - 1) % #urls + 1]
    local res = http.request(o)
    if res then ok = ok + 1 else failed = failed + 1 end
  end
  return { ok = ok, failed = failed }
end)

return app
