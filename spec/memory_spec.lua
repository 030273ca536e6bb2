-- Memory held per connection, per waiting request and per idle
-- WebSocket, read from the server's RSS, and the Lua share of a waiting
-- request or WebSocket handler from the state's own count
-- (collectgarbage), which neither ASan nor valgrind changes.  The
-- benchmark (spec/bench, scenarios idle, sleep and wsidle) measures the
-- same at 10,000, 5,000 and 10,000; most bounds here are looser, so that
-- only a real regression trips them (the WebSocket's is the benchmark's
-- target).  Under valgrind or ASan RSS means something else, so the
-- checks are skipped there.
local H = require "spec.helpers"
local W = require "ws_helpers"
local cjson = require "cjson"

local measured = H.wrap == "" and not H.bin:find("asan", 1, true)
local N = 900   -- stays under a default limit of 1,024 descriptors

local function rss_kib(pid)
  local s = H.slurp("/proc/" .. pid .. "/status")
  return assert(tonumber(s:match("VmRSS:%s*(%d+)")), "no VmRSS")
end

-- Opens n connections and sends each one request; returns them.
local function open(srv, n, path, keep)
  local conns = {}
  for i = 1, n do
    local c = H.raw(srv.port, 10)
    c:send(("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n")
      :format(path, keep and "" or "Connection: close\r\n"))
    conns[i] = c
  end
  return conns
end

local function read_all(conns)
  for _, c in ipairs(conns) do
    local res = H.read_response(c)
    assert.equal(200, res.status)
  end
end

local function close_all(conns)
  for _, c in ipairs(conns) do c:close() end
end

local APP = [[
  local moonlet = require "moonlet"
  local app = moonlet.app()
  app:get("/", function() return "Hello, World!" end)
  app:get("/sleep", function()
    moonlet.sleep(1.5)
    return "slept"
  end)
  return app
]]

-- A fresh server (memory freed by earlier tests would be reused and hide
-- the cost), warmed up by a few requests one at a time.
local function fresh()
  local srv = H.start(H.write_app(APP))
  for _ = 1, 20 do assert.equal(200, H.get(srv, "/").status) end
  return srv
end

-- spec/apps/memory.lua's /mem: the state's bytes after a full collection
-- and its counts; with a count's name, once it has reached n (5 s at
-- most).
local function lua_mem(srv, count, n)
  local deadline, m = H.now() + 5, nil
  repeat
    m = cjson.decode(H.get(srv, "/mem").body)
  until count == nil or m[count] == n or H.now() > deadline
  if count ~= nil then assert.equal(n, m[count]) end
  return m
end

describe("memory", function()
  it("holds an idle keep-alive connection in well under 1 KiB", function()
    if not measured then return end
    local srv = fresh()
    local before = rss_kib(srv.pid)
    local conns = open(srv, N, "/", true)
    read_all(conns)           -- answered: each now waits for its next
    H.pause(0.2)
    local per = (rss_kib(srv.pid) - before) * 1024 / N
    close_all(conns)
    srv:stop()
    assert.is_true(per < 1024, ("%.0f bytes per idle connection"):format(per))
  end)

  it("holds a sleeping request in under 3.5 KiB, its connection included",
    function()
    if not measured then return end
    local srv = fresh()
    local before = rss_kib(srv.pid)
    local t0 = H.now()
    local conns = open(srv, N, "/sleep")
    H.pause(0.5)
    local held = rss_kib(srv.pid)
    assert.is_true(H.now() - t0 < 1.4, "the requests were not all asleep")
    read_all(conns)
    close_all(conns)
    srv:stop()
    local per = (held - before) * 1024 / N
    assert.is_true(per < 3584, ("%.0f bytes per sleeping request"):format(per))
  end)

  it("holds an idle WebSocket in under 2.5 KiB, its handler included",
    function()
    if not measured then return end
    local srv = H.start("spec/bench/apps/wsecho.lua")  -- the bench's
    finally(function() srv:stop() end)
    for _ = 1, 20 do W.connect(srv.port, "/ws"):close() end
    H.pause(0.2)
    local before = rss_kib(srv.pid)
    local conns = {}
    for i = 1, N do conns[i] = W.connect(srv.port, "/ws") end
    H.pause(0.2)
    local per = (rss_kib(srv.pid) - before) * 1024 / N
    close_all(conns)
    assert.is_true(per < 2560, ("%.0f bytes per idle WebSocket"):format(per))
  end)

  -- A thread (208 bytes), its first stack (40 slots, 720), three
  -- CallInfos (the request's body, the handler, sleep: 3 x 64) and the
  -- request object (64): 1,184 bytes, less the few pooled threads reused;
  -- a fourth CallInfo would make it about 1,230.
  it("holds a sleeping request's Lua in a thread's first stack", function()
    local srv = H.start("spec/apps/memory.lua")
    finally(function() srv:stop() end)
    local n, conns = 100, {}
    H.concurrent(srv, 4, "/sleep/1")       -- routes warm, threads pooled
    local before = lua_mem(srv)
    for i = 1, n do
      conns[i] = H.raw(srv.port, 10)
      conns[i]:send("GET /sleep/2000 HTTP/1.1\r\nHost: t\r\n"
        .. "Connection: close\r\n\r\n")
    end
    local during = lua_mem(srv, "sleeping", n)
    local per = (during.bytes - before.bytes) / n
    assert.is_true(per < 1200, "bytes per sleeping request: " .. per)
    for i = 1, n do
      assert.equal(200, H.read_response(conns[i]).status)
      conns[i]:close()
    end
    -- the pool keeps the threads: answering did not grow their stacks
    -- (a grown stack is 85 slots, 640 bytes more each)
    local after = lua_mem(srv)
    per = (after.bytes - before.bytes) / n
    assert.is_true(per < 1200, "bytes per pooled thread: " .. per)
  end)

  -- A WebSocket's handler waiting in ws:receive: the thread and its first
  -- stack (928 bytes), three CallInfos (the request's body, the handler,
  -- receive: 192), the request object (64) and the WebSocket's (40, no
  -- user value without a subprotocol): 1,224 bytes, and its slot in the
  -- registry.  A call deeper than receive on the way (req:websocket in
  -- Lua) would leave a fourth CallInfo: 1,288 and more.
  it("holds a WebSocket handler's Lua in a thread's first stack", function()
    local srv = H.start("spec/apps/memory.lua")
    finally(function() srv:stop() end)
    local n, conns = 100, {}
    local before = lua_mem(srv)
    for i = 1, n do
      conns[i] = W.connect(srv.port, "/ws")
    end
    local during = lua_mem(srv, "receiving", n)
    local per = (during.bytes - before.bytes) / n
    for i = 1, n do conns[i]:close() end
    assert.is_true(per < 1280, "bytes per WebSocket handler: " .. per)
  end)
end)
