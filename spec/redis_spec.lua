-- moonlet.redis against real redis-servers started for this file (one
-- open, one with a password), on free ports, without persistence.
local helpers = require "helpers"
local stores = require "stores"
local cjson = require "cjson"
local socket = require "socket"

describe("moonlet.redis", function()
  local rd, rd_auth, rd_tls, srv

  local function get(path, timeout)
    local res = helpers.get(srv, path, { timeout = timeout or 30 })
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function esc(s)
    return (s:gsub("[^%w%-_.~]", function(c)
      return ("%%%02X"):format(c:byte())
    end))
  end

  local function blocked()
    local n = 0
    for l in rd:cli("CLIENT", "LIST"):gmatch("[^\n]+") do
      if l:match("cmd=blpop") then n = n + 1 end
    end
    return n
  end

  setup(function()
    rd = stores.redis()
    rd_auth = stores.redis({ password = "s3cret" })
    rd_tls = stores.redis({ tls = true })
    srv = helpers.start("spec/apps/redis.lua", { env = ("REDIS_URL=%s "
      .. "REDIS_AUTH_URL=redis://:s3cret@127.0.0.1:%d/3 REDIS_TLS_URL=%s "
      .. "REDIS_TLS_CA=%s"):format(rd.url, rd_auth.port, rd_tls.url,
        rd_tls.ca) })
  end)

  teardown(function()
    if srv then srv:stop() end
    if rd then rd:stop() end
    if rd_auth then rd_auth:stop() end
    if rd_tls then rd_tls:stop() end
  end)

  it("works at app load and in a timer callback", function()
    assert.equal("yes", get("/load").v)
    local v
    for _ = 1, 100 do
      v = get("/timer").v
      if v then break end
      socket.sleep(0.02)
    end
    assert.equal("yes", v)
  end)

  it("turns every reply type into a Lua value", function()
    local t = get("/types")
    assert.equal("OK", t.status)              -- status
    assert.equal("integer", t.int)            -- integer
    assert.equal("v", t.bulk)                 -- bulk
    assert.equal("null", t.nilr)              -- nil: moonlet.null
    assert.same({ "a", "b", "" }, t.arr)      -- array
    assert.same({ "f", "1" }, t.all)
    assert.equal(0, t.empty)
    assert.is_true(t.bin)                     -- binary-safe
    assert.same({ 1, "x", 2 }, t.nested)      -- nested arrays
    assert.equal("null", t.nested_kind)       -- Lua false -> nil reply
    assert.is_true(t.e)                       -- error reply: nil, message
    assert.matches("^ERR unknown command", t.emsg)
    assert.is_true(t.w)
    assert.equal("ERR value is not an integer or out of range", t.wmsg)
  end)

  it("runs a pipeline of 100 in order, errors in their slots", function()
    local p = get("/pipeline/100")
    assert.equal(103, p.count)
    assert.equal(1, p.first)
    assert.equal(100, p.last_incr)
    assert.equal("100", p.get)
    assert.same({ false, "ERR value is not an integer or out of range" },
      p.err)
    assert.is_true(p.null)
  end)

  it("gives 200 concurrent INCRs exactly 200, on one connection", function()
    local r = get("/incr/200")
    assert.equal("200", r.final)
    assert.equal(200, r.n)
    assert.is_false(r.dup)
    -- the app's commands share one connection: a few in all, not 200
    assert.is_true(get("/clients").n <= 4)
  end)

  it("keeps at most 16 idle connections of its own after a burst",
    function()
      assert.equal("40", get("/burst/40").final)
      -- 40 were open at once; then 16 idle ones and the shared one stay
      assert.is_true(get("/clients").n <= 17)
    end)

  it("authenticates and selects the database from the URL", function()
    local a = get("/auth")
    assert.equal("OK", a.ok)
    assert.matches("db=3", a.info)
    assert.equal("1", rd_auth:cli("-n", "3", "GET", "x"))
    local bad = get("/auth?url=" .. esc(("redis://:nope@127.0.0.1:%d")
      :format(rd_auth.port)))
    assert.matches("^auth: WRONGPASS", bad.err)
  end)

  it("reports connection failures as short strings", function()
    local port = stores.free_port()
    assert.same({ ok = false, err = "connection refused" }, get(
      "/connect?url=" .. esc(("redis://127.0.0.1:%d"):format(port))))
    assert.matches("^dns: ", get("/connect?url="
      .. esc("redis://nowhere.invalid:6379")).err)
    assert.matches("^bad url", get("/connect?url=" .. esc("http://x")).err)
  end)

  it("times out against a server that never answers", function()
    local silent = assert(socket.bind("127.0.0.1", 0))
    local _, port = silent:getsockname()
    local t0 = socket.gettime()
    local r = get("/connect?url=" .. esc(("redis://127.0.0.1:%d")
      :format(port)))
    silent:close()
    assert.same({ ok = false, err = "timeout" }, r)
    assert.is_true(socket.gettime() - t0 < 3)
  end)

  it("blocks in BLPOP on a connection of its own", function()
    local w = get("/blpop_wake")
    assert.same({ "q2", "hi" }, w.v)
    assert.is_true(w.took < 2)
    assert.equal(cjson.null, get("/blpop/0.2").v)  -- timed out: null
  end)

  it("closes a BLPOP's connection when its client leaves", function()
    local c = helpers.raw(srv.port)
    c:send("GET /blpop/30 HTTP/1.1\r\nHost: t\r\n\r\n")
    local n
    for _ = 1, 100 do
      n = blocked()
      if n == 1 then break end
      socket.sleep(0.02)
    end
    assert.equal(1, n)
    c:close()
    for _ = 1, 100 do                          -- within 2 s, not 30
      n = blocked()
      if n == 0 then break end
      socket.sleep(0.02)
    end
    assert.equal(0, n)
    assert.equal("yes", get("/load").v)
  end)

  it("runs MULTI/EXEC/WATCH transactions on their own connection", function()
    local t = get("/tx")
    assert.same({ "OK", 3 }, t.res)
    assert.is_true(t.aborted)                  -- WATCH saw the change
    assert.is_true(t.raised)
    assert.equal("100", t.tk)                  -- the raising one discarded
  end)

  it("subscribes to channels and patterns", function()
    local s = get("/pubsub")
    assert.is_true(s.none)
    assert.equal("timeout", s.terr)
    assert.equal(1, s.n)                       -- subscribed when it returned
    assert.equal("news", s.c1)
    assert.equal("hello", s.m1)
    assert.equal("other", s.c2)
    assert.equal("world", s.m2)
    assert.equal("news", s.pc)
    assert.equal("again", s.pm)
    assert.equal("ne*", s.pat)
    assert.equal("closed", s.cerr)
  end)

  it("speaks TLS for rediss://, verifying the server's certificate",
    function()
      local t = get("/tls?ca=1")
      assert.is_nil(t.err)
      assert.equal("OK", t.ok)
      assert.equal("yes", t.v)
      assert.equal("tls_news", t.ch)
      assert.equal("secret", t.msg)
      assert.equal("yes", rd_tls:cli("GET", "over_tls"))
      -- the throwaway CA is not in the system's store
      assert.matches("^tls: .*verif", get("/tls").err)
      assert.equal("yes", get("/tls?noverify=1").v)
    end)

  it("refuses connection-state commands on the shared connection", function()
    assert.matches("r:transaction", get("/misuse").err)
  end)

  it("fails pending commands with timeout when the server stalls", function()
    local r = get("/stall")
    assert.equal(5, r.timeouts)
    assert.is_true(r.took < 3, r.took)
    assert.equal("ok", r.after)                -- a new connection
  end)

  it("survives Redis killed under idle, blocked, piped and subscribed "
    .. "connections, and recovers", function()
    assert.equal("1", get("/warm").ok)         -- idle dedicated ones
    local function open(path) return helpers.start_get(srv, path, 30) end
    local result = helpers.finish_json
    local blpop, sub = open("/blpop/30"), open("/sub_wait")
    local idle = open("/sub_idle/3")
    local list
    for _ = 1, 100 do
      list = rd:cli("CLIENT", "LIST")
      local _, subs = list:gsub("cmd=subscribe", "")
      if list:match("cmd=blpop") and subs == 2 then break end
      socket.sleep(0.02)
    end
    assert.matches("cmd=blpop", list)
    assert.equal("1", rd:cli("PUBLISH", "idle_ch", "m1"))
    rd:cli("PUBLISH", "idle_ch", "m2")           -- left unread
    local pipe = open("/pipe_stalled")           -- the server sleeps in it
    socket.sleep(0.5)
    rd:kill()
    assert.equal("closed", result(blpop).err)
    assert.equal("closed", result(sub).err)
    assert.equal("closed", result(pipe).err)
    assert.same({ m = "m1" }, result(idle))
    local down = get("/down")                    -- errors, not a crash
    for _, k in ipairs { "get", "blpop", "pipe", "tx", "sub" } do
      assert.equal("connection refused", down[k], k)
    end
    assert.is_nil(srv:status())
    assert(rd:start())
    rd:cli("SET", "survivor", "2")
    local up
    for _ = 1, 50 do
      up = get("/get/survivor")
      if up.v == "2" then break end
      socket.sleep(0.1)
    end
    assert.equal("2", up.v)
    assert.equal(103, get("/pipeline/100").count)
    assert.same({ "q2", "hi" }, get("/blpop_wake").v)
    assert.same({ "OK", 3 }, get("/tx").res)
    assert.equal("hello", get("/pubsub").m1)
  end)
end)
