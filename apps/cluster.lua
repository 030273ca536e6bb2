-- apps/cluster.lua: one of several hosts behind a load balancer, sharing
-- everything through Redis (make cluster; docs/running.md, "Running on
-- many machines").  A counter (GET / reads it, POST /hit increments it),
-- a message board (GET and POST /messages), a live feed of the board over
-- server-sent events fed by Redis pub/sub, so a message posted through
-- one host reaches a reader on any other (GET /feed), and a readiness
-- route for the balancer's health checks (GET /ready).
--
--   REDIS_URL=redis://127.0.0.1:6379 HOST_NAME=h1 moonlet run apps/cluster.lua
local moonlet = require "moonlet"
local redis = moonlet.redis
local json = moonlet.json

local app = moonlet.app()
local URL = os.getenv("REDIS_URL") or "redis://127.0.0.1:6379"
local HOST = os.getenv("HOST_NAME") or "moonlet"
local MAX_MESSAGE = 500

-- A connection from this worker's pool; a handler without Redis is a 503.
local function db()
  local r, err = redis.connect(URL)
  if not r then
    moonlet.abort(503, "redis: " .. err)
  end
  return r
end

local function check(v, err)
  if v == nil then
    moonlet.abort(503, "redis: " .. tostring(err))
  end
  return v
end

app:get("/", function(req)
  local n = check(db():get("hits"))
  return { host = HOST, hits = n == moonlet.null and 0 or tonumber(n) }
end)

-- The answer is sent only once Redis has counted it: a client that saw a
-- 200 saw an increment that Redis holds.
app:post("/hit", function(req)
  local n = check(db():incr("hits"))
  return ("hit %d %s"):format(n, HOST)
end)

app:get("/messages", function(req)
  local list = check(db():lrange("board", 0, 19))
  local out = {}
  for i, m in ipairs(list) do out[i] = json.decode(m) end
  return { host = HOST, messages = out }
end)

app:post("/messages", function(req)
  local text = req.form.text or req.body
  if text == "" or #text > MAX_MESSAGE then
    return { error = "text: 1 to " .. MAX_MESSAGE .. " bytes" }, 400
  end
  local msg = json.encode { text = text, host = HOST, at = os.time() }
  local r = db()
  check(r:pipeline(function(p)
    p:lpush("board", msg)
    p:ltrim("board", 0, 99)
    p:publish("board", msg)
  end))
  return { posted = true, host = HOST }, 201
end)

-- Every message posted on any host, as it is posted: one subscriber per
-- reader, a comment every 15 s so a gone reader is noticed.
app:get("/feed", function(req)
  local sub, err = redis.subscribe(URL, "board")
  if not sub then
    return "redis: " .. err, 503
  end
  local ev = req:sse()
  ev:send { event = "hello", data = HOST }
  while true do
    local channel, message = sub:receive(15)
    local ok
    if channel then
      ok = ev:send { event = "message", data = message }
    elseif message == "timeout" then
      ok = ev:send { event = "ping", data = HOST }
    end
    if not ok then break end
  end
  sub:close()
end)

-- The balancer's health check: 503 once the host is stopping
-- (--drain-delay), so it is taken out before its listener closes.
app:get("/ready", function()
  if moonlet.draining() then
    return "draining", 503
  end
  return "ready"
end)

return app
