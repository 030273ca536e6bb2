-- moonlet.redis against the throwaway server in REDIS_URL (and
-- REDIS_AUTH_URL, one with a password) (spec/redis_spec.lua).
local moonlet = require "moonlet"
local redis = moonlet.redis
local app = moonlet.app()

local URL = os.getenv("REDIS_URL")
local AUTH_URL = os.getenv("REDIS_AUTH_URL")
local null = moonlet.null

-- at load time; 'early' is used again while the server is down
local loaded, early
do
  early = assert(redis.connect(URL))
  assert(early:set("loaded", "yes"))
  loaded = early:get("loaded")
end

local function kind(v)
  if v == null then return "null" end
  return math.type(v) or type(v)
end

app:get("/load", function() return { v = loaded } end)

app:get("/types", function()
  local r = assert(redis.connect(URL))
  r:del("list", "h")
  local status = r:set("k", "v")
  local int = r:incr("n")
  local bulk = r:get("k")
  local nilr = r:get("missing")
  r:rpush("list", "a", "b", "")
  local arr = r:lrange("list", 0, -1)
  r:hset("h", "f", "1")
  local all = r:call("HGETALL", "h")
  local empty = r:lrange("nothing", 0, -1)
  local bin = "a\0b\r\n"
  r:set("bin", bin)
  local nested = r:call("EVAL", "return {1, 'x', {2, false}}", 0)
  local e, emsg = r:call("NOSUCHCOMMAND")
  local w, wmsg = r:incr("k")
  return { status = status, int = kind(int), bulk = bulk,
    nilr = kind(nilr), arr = arr, all = all, empty = #empty,
    bin = r:get("bin") == bin, nested_kind = kind(nested[3][2]),
    nested = { nested[1], nested[2], nested[3][1] },
    e = e == nil, emsg = emsg, w = w == nil, wmsg = wmsg }
end)

app:get("/pipeline/<int:n>", function(_, n)
  local r = assert(redis.connect(URL))
  r:del("p")
  local replies = r:pipeline(function(p)
    for _ = 1, n do p:incr("p") end
    p:call("GET", "p")
    p:incr("k")                 -- "k" holds "v": an error in its slot
    p:get("missing")
  end)
  return { count = #replies, first = replies[1], last_incr = replies[n],
    get = replies[n + 1], err = replies[n + 2], null = replies[n + 3] == null }
end)

-- 200 coroutines INCR at once: exactly 200, on one connection
app:get("/incr/<int:n>", function(_, n)
  local r = assert(redis.connect(URL))
  r:del("c")
  local fns = {}
  for i = 1, n do
    fns[i] = function() return r:incr("c") end
  end
  local res = { moonlet.gather(table.unpack(fns)) }
  local seen, dup = {}, false
  for _, v in ipairs(res) do
    if seen[v] then dup = true end
    seen[v] = true
  end
  return { final = r:get("c"), dup = dup, n = #res }
end)

-- n transactions at once: a dedicated connection each, then back to a
-- bounded idle list
app:get("/burst/<int:n>", function(_, n)
  local r = assert(redis.connect(URL))
  r:del("burst")
  local fns = {}
  for i = 1, n do
    fns[i] = function()
      return r:transaction(function(tx)
        tx:multi()
        tx:incr("burst")
        return tx:exec()
      end)
    end
  end
  moonlet.gather(table.unpack(fns))
  return { final = r:get("burst") }
end)

app:get("/auth", function(req)
  local r, err = redis.connect(req.query.url or AUTH_URL)
  if not r then return { err = err } end
  local db = r:call("CLIENT", "INFO")
  return { ok = r:set("x", "1"), info = db }
end)

app:get("/connect", function(req)
  local r, err = redis.connect(req.query.url, { timeout = 0.5 })
  return { ok = r ~= nil, err = err }
end)

app:get("/get/<key>", function(_, key)
  local r, err = redis.connect(URL)
  if not r then return { err = err } end
  local v, gerr = r:get(key)
  return { v = v ~= null and v or nil, err = gerr }
end)

app:get("/blpop/<float:s>", function(_, s)
  local r = assert(redis.connect(URL))
  local v, err = r:blpop("queue", s)
  return { v = v, err = err }
end)

app:get("/blpop_wake", function()
  local r = assert(redis.connect(URL))
  r:del("q2")
  moonlet.spawn(function()
    moonlet.sleep(0.1)
    r:rpush("q2", "hi")       -- the shared connection is not blocked
  end)
  local t0 = moonlet.now()
  local v = r:blpop("q2", 5)
  return { v = v, took = moonlet.now() - t0 }
end)

app:get("/tx", function()
  local r = assert(redis.connect(URL))
  r:set("tk", "1")
  local res = r:transaction(function(tx)
    tx:watch("tk")
    local v = tonumber(tx:get("tk"))
    tx:multi()
    tx:set("tk", v + 1)
    tx:incr("tk")
    return tx:exec()
  end)
  -- a watched key changed by someone else: EXEC gives null
  local aborted = r:transaction(function(tx)
    tx:watch("tk")
    r:set("tk", "100")           -- another connection
    tx:multi()
    tx:set("tk", "never")
    return tx:exec()
  end)
  local ok, err = pcall(r.transaction, r, function(tx)
    tx:multi()
    tx:set("tk", "discarded")
    error("boom")
  end)
  return { res = res, tk = r:get("tk"), aborted = aborted == null,
    raised = not ok and tostring(err):match("boom") ~= nil }
end)

app:get("/pubsub", function()
  local sub = assert(redis.subscribe(URL, "news", "other"))
  local none, terr = sub:receive(0.1)
  local r = assert(redis.connect(URL))
  local n = r:publish("news", "hello")
  r:publish("other", "world")
  local c1, m1 = sub:receive(2)
  local c2, m2 = sub:receive(2)
  local psub = assert(redis.psubscribe(URL, "ne*"))
  r:publish("news", "again")
  local pc, pm, pat = psub:receive(2)
  sub:close()
  psub:close()
  local _, cerr = sub:receive(0.1)
  return { none = none == nil, terr = terr, n = n, c1 = c1, m1 = m1,
    c2 = c2, m2 = m2, pc = pc, pm = pm, pat = pat, cerr = cerr }
end)

app:get("/misuse", function()
  local r = assert(redis.connect(URL))
  local ok, err = pcall(r.call, r, "MULTI")
  return { ok = ok, err = tostring(err) }
end)

app:get("/clients", function()
  local r = assert(redis.connect(URL))
  local list = r:call("CLIENT", "LIST")
  local n = 0
  for _ in list:gmatch("[^\n]+") do n = n + 1 end
  return { n = n }
end)

-- the server stalls (DEBUG SLEEP on a connection of its own): the
-- commands queued behind it time out, all of them
app:get("/stall", function()
  local r = assert(redis.connect(URL, { timeout = 0.5 }))
  local sleeper = assert(redis.connect(URL, { timeout = 5 }))
  moonlet.spawn(function()
    sleeper:transaction(function(tx) tx:call("DEBUG", "SLEEP", "1.2") end)
  end)
  moonlet.sleep(0.05)
  local t0 = moonlet.now()
  local fns = {}
  for i = 1, 5 do
    fns[i] = function()
      local v, err = r:get("loaded")
      return err
    end
  end
  local res, n = { moonlet.gather(table.unpack(fns)) }, 0
  for _, e in ipairs(res) do
    if e == "timeout" then n = n + 1 end
  end
  local took = moonlet.now() - t0
  moonlet.sleep(1.3)
  local ok = r:set("after", "ok") and r:get("after")
  return { timeouts = n, took = took, after = ok }
end)

-- rediss:// against a TLS-only server (REDIS_TLS_URL, its CA in
-- REDIS_TLS_CA)
app:get("/tls", function(req)
  local tls
  if req.query.ca then tls = { ca_file = os.getenv("REDIS_TLS_CA") } end
  if req.query.noverify then tls = { verify = false } end
  local r, err = redis.connect(os.getenv("REDIS_TLS_URL"),
    { tls = tls, timeout = 2 })
  if not r then return { err = err } end
  local ok = r:set("over_tls", "yes")
  local replies = r:pipeline(function(p) p:incr("tls_n"); p:get("over_tls") end)
  local sub = assert(redis.subscribe({ url = os.getenv("REDIS_TLS_URL"),
    tls = tls }, "tls_news"))
  r:publish("tls_news", "secret")
  local ch, msg = sub:receive(2)
  sub:close()
  return { ok = ok, v = replies[2], ch = ch, msg = msg }
end)

-- Redis killed under its connections: the shared one, idle dedicated
-- ones (/warm), a BLPOP, a subscriber and a stalled pipeline of 100
app:get("/warm", function()
  local r = assert(redis.connect(URL))
  assert(r:set("warm", "1"))
  moonlet.gather(function() return r:blpop("nothing", 0.05) end,
    function() return r:blpop("nothing", 0.05) end)
  return { ok = r:transaction(function(tx) return tx:get("warm") end) }
end)

app:get("/sub_wait", function()
  local sub, err = redis.subscribe(URL, "never")
  if not sub then return { err = err } end
  local _, rerr = sub:receive(30)
  return { err = rerr }
end)

-- subscribed, not receiving, while messages come and the server dies:
-- what came before is still read (one read, one left)
app:get("/sub_idle/<float:s>", function(_, s)
  local sub = assert(redis.subscribe(URL, "idle_ch"))
  moonlet.sleep(s)
  local _, m = sub:receive(1)
  return { m = m }
end)

app:get("/pipe_stalled", function()
  local r = assert(redis.connect(URL, { timeout = 20 }))
  local res, err = r:pipeline(function(p)
    p:call("DEBUG", "SLEEP", "10")
    for _ = 1, 99 do p:incr("stalled") end
  end)
  return { n = res and #res, err = err }
end)

-- every kind of command while the server is down: nil and why
app:get("/down", function()
  local out = {}
  out.get = select(2, early:get("loaded"))
  out.blpop = select(2, early:blpop("q", 0.1))
  out.pipe = select(2, early:pipeline(function(p) p:get("loaded") end))
  out.tx = select(2, early:transaction(function(tx)
    return tx:get("loaded")
  end))
  out.sub = select(2, redis.subscribe(URL, "news"))
  return out
end)

local from_timer
moonlet.after(0.05, function()
  local r = assert(redis.connect(URL))
  from_timer = r:get("loaded")
end)
app:get("/timer", function() return { v = from_timer } end)

return app
