-- Outbound HTTP from handlers: each route calls a backend with
-- moonlet.http (URLs come in query parameters) and answers JSON of what it
-- got: status, headers, body, url, err, elapsed.
local moonlet = require "moonlet"
local core = require "moonlet.core"
local http = moonlet.http
local app = moonlet.app()

local function outcome(res, err, t0)
  local o = { err = err, elapsed = moonlet.now() - t0 }
  if res then
    o.status, o.headers, o.body, o.url = res.status, res.headers, res.body,
      res.url
  end
  return o
end

-- Headers from repeated "h=Name: Value" parameters.
local function headers_of(req)
  local h = {}
  for _, line in ipairs(req:query_all("h")) do
    local k, v = line:match("^([^:]+):%s*(.*)$")
    h[k] = v
  end
  return h
end

local function options(req)
  local q = req.query
  local body = q.body
  if q.tbody then
    body = { name = "moon", n = 3, list = { 1, 2, 3 } }
  end
  return { method = q.method, url = q.url, headers = headers_of(req),
    body = body, timeout = tonumber(q.timeout),
    follow_redirects = q.follow ~= "0" }
end

-- One exchange, the way the query describes it.
app:route("/one", { methods = { "GET", "POST" } }, function(req)
  local t0 = moonlet.now()
  local res, err = http.request(options(req))
  return outcome(res, err, t0)
end)

-- Several exchanges in a row: "u=METHOD URL" parameters, in order; the
-- pool's connection count before and after.
app:get("/seq", function(req)
  local before = core.http_connects()
  local list = {}
  for i, u in ipairs(req:query_all("u")) do
    local method, url = u:match("^(%u+) (.*)$")
    local t0 = moonlet.now()
    local res, err = http.request { method = method, url = url,
      timeout = tonumber(req.query.timeout) }
    list[i] = outcome(res, err, t0)
  end
  return { results = list, connects = core.http_connects() - before }
end)

app:get("/connects", function(req)
  return { n = core.http_connects() }
end)

-- Shorthands: get and post.
app:get("/get", function(req)
  local t0 = moonlet.now()
  local res, err = http.get(req.query.url, { headers = headers_of(req) })
  return outcome(res, err, t0)
end)

app:get("/post", function(req)
  local t0 = moonlet.now()
  local body = req.query.body or { hello = "world", n = 1 }
  local res, err = http.post(req.query.url, body,
    { headers = headers_of(req) })
  return outcome(res, err, t0)
end)

-- GET url?i=1 .. url?i=n one after another, then url?i=1 .. url?i=3
-- again: the i each backend answer echoes, in order ("-" for a failure).
app:get("/many", function(req)
  local url, n, seen = req.query.url, tonumber(req.query.n), {}
  local function fetch(i)
    local res = http.get(url .. "?i=" .. i)
    seen[#seen + 1] = res and res:json().query:match("^i=(%d+)$") or "-"
  end
  for i = 1, n do fetch(i) end
  for i = 1, 3 do fetch(i) end
  return { seen = seen }
end)

app:get("/json", function(req)
  local res, err = http.get(req.query.url)
  if not res then return { err = err } end
  local ok, v = pcall(res.json, res)
  return { ok = ok, value = ok and v or nil, err = not ok and v or nil }
end)

-- res.headers in any case.
app:get("/case", function(req)
  local res = assert(http.get(req.query.url))
  local h = res.headers
  return { lower = h["x-mixed-case"], mixed = h["X-Mixed-Case"],
    upper = h["X-MIXED-CASE"], cookie = h["Set-Cookie"],
    ctype = h["Content-Type"], len = h["content-length"] }
end)

-- res.headers read late (after a full collection), twice, written to,
-- walked with pairs.
app:get("/late-headers", function(req)
  local res = assert(http.get(req.query.url))
  collectgarbage()
  collectgarbage()
  local h = res.headers
  h["x-added"] = "1"
  local names = {}
  for k in pairs(res.headers) do names[#names + 1] = k end
  table.sort(names)
  return { same = rawequal(h, res.headers), added = res.headers["X-Added"],
    ctype = res.headers["Content-Type"], names = names,
    status = res.status, body = res.body }
end)

-- A header value with CR LF: raises, so a 500.
app:get("/crlf", function(req)
  http.get(req.query.url, { headers = { ["X-Bad"] = "a\r\nX-Injected: 1" } })
  return "sent"
end)

-- POST n bytes of "x" to url: a request written over many writes.
app:get("/bigpost", function(req)
  local t0 = moonlet.now()
  local res, err = http.post(req.query.url, ("x"):rep(tonumber(req.query.n)),
    { timeout = 20 })
  return outcome(res, err, t0)
end)

-- Misuse raises at the caller's line: a 500, the line in the log.
app:get("/misuse", function(req)
  if req.query.kind == "get" then
    http.get(42)                                  -- misuse: get
  elseif req.query.kind == "getopts" then
    http.get("http://127.0.0.1/", { timeout = -1 })  -- misuse: getopts
  elseif req.query.kind == "opts" then
    http.request { url = "http://h/", tls = { cert = 1 } }  -- misuse: opts
  else
    http.request { url = "ftp://127.0.0.1/" }     -- misuse: request
  end
end)

app:get("/https", function(req)
  local res, err = http.get("https://127.0.0.1:1/")
  return { res = res ~= nil, err = err }
end)

app:get("/nonhttp", function(req)
  local ok, err = pcall(http.get, req.query.url)
  return { ok = ok, err = tostring(err) }
end)

-- Concurrency through tasks.
app:get("/gather", function(req)
  local url = req.query.url
  local t0 = moonlet.now()
  local function status()
    local res, err = http.get(url)
    return res and res.status or err
  end
  local a, b, c = moonlet.gather(status, status, status)
  return { results = { a, b, c }, elapsed = moonlet.now() - t0 }
end)

app:get("/first", function(req)
  local t0 = moonlet.now()
  local body = moonlet.first(function()
    return assert(http.get(req.query.slow)).body
  end, function()
    return assert(http.get(req.query.fast)).body
  end)
  return { body = body, elapsed = moonlet.now() - t0 }
end)

app:get("/timeout", function(req)
  local t0 = moonlet.now()
  local res, err = moonlet.timeout(tonumber(req.query.t), http.get,
    req.query.url)
  return outcome(res, err, t0)
end)

app:get("/spawn", function(req)
  local t0 = moonlet.now()
  local t = moonlet.spawn(http.get, req.query.url)
  local res, err = t:wait()
  return outcome(res, err, t0)
end)

-- A task fetching something slow, cancelled: its exchange is abandoned.
app:get("/spawn-cancel", function(req)
  local t = moonlet.spawn(http.get, req.query.url)
  moonlet.sleep(tonumber(req.query.after) or 0.2)
  local was = t:cancel()
  local res, err = t:wait()
  return { was_running = was, res = res ~= nil, err = err, done = t:done() }
end)

-- A future resolved by a task with what it fetched.
app:get("/future", function(req)
  local f = moonlet.future()
  moonlet.spawn(function()
    local res, err = http.get(req.query.url)
    if res then f:set(res.status, res.body) else f:fail(err) end
  end)
  local ok, status, body = pcall(f.get, f, 5)
  return { ok = ok, status = status, body = body }
end)

-- Many exchanges at once: parameters name the URL of each kind and how
-- many of each; 'short' is the timeout for the kind "hang".  Counts the
-- outcomes ("200", "404", "timeout", "connection refused" ...).
app:get("/mixed", function(req)
  local q = req.query
  local per = tonumber(q.per) or 20
  local kinds = { ok = q.ok, refused = q.refused, hang = q.hang,
    notfound = q.notfound, chunked = q.chunked }
  local tasks = {}
  for kind, url in pairs(kinds) do
    for _ = 1, per do
      tasks[#tasks + 1] = moonlet.spawn(function()
        local res, err = http.get(url, {
          timeout = kind == "hang" and (tonumber(q.short) or 0.1) or 10 })
        if res then
          if kind == "chunked" and res.body ~= "hello from chunk" then
            return "bad chunked body"
          end
          return tostring(res.status)
        end
        return err
      end)
    end
  end
  local counts = {}
  for _, t in ipairs(tasks) do
    local ok, v = pcall(t.wait, t)
    v = ok and v or ("error: " .. tostring(v))
    counts[v] = (counts[v] or 0) + 1
  end
  return { counts = counts, n = #tasks }
end)

return app
