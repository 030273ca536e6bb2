-- Hot reload (API 8): --reload watches the app and its modules, SIGHUP
-- reloads, requests in flight finish on the old generation, a broken save
-- keeps the old code, and reloads do not leak.
local H = require "helpers"

-- An app whose every answer is TEXT; a timer counts its ticks in
-- moonlet.shared under "ticks:TEXT", so a spec can see it stop.
local function source(text, extra)
  return ([[
local moonlet = require "moonlet"
local app = moonlet.app()
local TEXT = %q
app:get("/", function(req) return TEXT end)
app:get("/sleep/<float:s>", function(req, s)
  moonlet.sleep(s)
  return TEXT
end)
app:get("/ticks/<name>", function(req, name)
  return tostring(moonlet.shared.get("ticks:" .. name))
end)
app:get("/task/<name>", function(req, name)
  return tostring(moonlet.shared.get("task:" .. name))
end)
moonlet.every(0.02, function()
  moonlet.shared.incr("ticks:" .. TEXT, 1, 0)
end)
moonlet.spawn(function()
  while true do
    moonlet.sleep(0.02)
    moonlet.shared.incr("task:" .. TEXT, 1, 0)
  end
end)
%s
return app
]]):format(text, extra or "")
end

-- Saves a file as most tools do (truncate, write) or, with 'rename', as
-- editors that write a new file and rename it over the old one.
local function save(path, text, rename)
  local tmp = rename and path .. ".tmp~" or path
  local f = assert(io.open(tmp, "w"))
  f:write(text)
  f:close()
  if rename then assert(os.rename(tmp, path)) end
end

local function body(srv, path)
  return H.get(srv, path or "/").body
end

-- Waits (bounded) until GET / answers text; returns the last answer.
local function wait_text(srv, text, timeout)
  local deadline, got = H.now() + (timeout or 5), nil
  repeat
    got = body(srv)
    if got == text then return got end
    H.pause(0.02)
  until H.now() > deadline
  return got
end

local function count(s, pattern)
  return select(2, s:gsub(pattern, ""))
end

-- Sends SIGHUP and waits until the log shows one more reload (or failure).
local function hup(srv, timeout)
  local before = count(srv:log(), "reload")
  os.execute("kill -HUP " .. srv.pid)
  local deadline = H.now() + (timeout or 5)
  while count(srv:log(), "reload") < before + 2 and H.now() < deadline do
    H.pause(0.005)
  end
end

local function rss_kib(pid)
  local status = H.slurp("/proc/" .. pid .. "/status")
  return tonumber(status:match("VmRSS:%s*(%d+)"))
end

describe("reload", function()
  local srv, path, dir
  after_each(function()
    if srv then srv:stop() end
    srv = nil
    if dir then os.execute("rm -rf " .. H.quote(dir)) end
  end)

  local function start(text, args, extra)
    path, dir = H.write_app(source(text, extra))
    srv = H.start(path, { args = args })
    return srv
  end

  it("loads a saved app file with --reload, by write or by rename", function()
    start("one", { "--reload" })
    assert.equal("one", body(srv))
    assert.truthy(H.wait_for_log(srv, "watching 1 file"))
    save(path, source("two"))
    assert.equal("two", wait_text(srv, "two"))
    save(path, source("three"), true)
    assert.equal("three", wait_text(srv, "three"))
    save(path, source("four"), true)          -- the watch outlived a rename
    assert.equal("four", wait_text(srv, "four"))
    assert.truthy(srv:log():match("app%.lua changed: reloading"))
  end)

  it("reloads when a module the app required changes", function()
    path, dir = H.write_app(source("main",
      'local m = require "lib.helper"\napp:get("/m", function() '
      .. 'return m.text end)'))
    os.execute("mkdir -p " .. H.quote(dir .. "/lib"))
    save(dir .. "/lib/helper.lua", 'return { text = "m1" }')
    srv = H.start(path, { args = { "--reload" } })
    assert.equal("m1", body(srv, "/m"))
    assert.truthy(H.wait_for_log(srv, "watching 2 file"))
    save(dir .. "/lib/helper.lua", 'return { text = "m2" }', true)
    local deadline = H.now() + 5
    while body(srv, "/m") ~= "m2" and H.now() < deadline do H.pause(0.02) end
    assert.equal("m2", body(srv, "/m"))
    save(dir .. "/unrelated.lua", "return 1")   -- not required: no reload
    save(dir .. "/lib/helper.lua~", "junk")
    H.pause(0.3)
    assert.equal(1, count(srv:log(), "reloaded"))
  end)

  it("keeps serving through 10 saves under 20 looping clients", function()
    start("version 1", { "--reload" })
    local client = H.write_app([[
local socket = require "socket"
local port, stop, out, keep = tonumber(arg[1]), arg[2], arg[3], arg[4] == "1"
local ok, failed, seen, errs = 0, 0, {}, {}
local deadline, c = socket.gettime() + 60, nil
local function stopped()
  local f = io.open(stop)
  if f then f:close() end
  return f ~= nil
end
local function one()
  if not c then
    c = socket.tcp()
    c:settimeout(5)
    local r, err = c:connect("127.0.0.1", port)
    if not r then c = nil; return nil, "connect: " .. err end
  end
  c:send("GET / HTTP/1.1\r\nHost: t\r\n"
    .. (keep and "" or "Connection: close\r\n") .. "\r\n")
  local line, err = c:receive("*l")
  if not line then return nil, "status: " .. err end
  local len, close
  repeat
    local h = c:receive("*l")
    if not h then return nil, "head" end
    len = len or tonumber(h:lower():match("^content%-length:%s*(%d+)"))
    close = close or h:lower():match("^connection:%s*close") ~= nil
  until h == ""
  local b = c:receive(len or 0)
  if close or not keep then c:close(); c = nil end
  return line:match(" 200 ") and b, line
end
while not stopped() and socket.gettime() < deadline do
  local b, err = one()
  if b then
    ok = ok + 1
    if seen[#seen] ~= b then seen[#seen + 1] = b end
  else
    failed = failed + 1
    errs[#errs + 1] = tostring(err)
    if c then c:close(); c = nil end
  end
end
local f = io.open(out .. ".tmp", "w")
f:write(ok, "\n", failed, "\n", table.concat(seen, ","), "\n",
  table.concat(errs, ";"), "\n")
f:close()
os.rename(out .. ".tmp", out)
]], "client.lua")
    local stop, outs = dir .. "/stop", {}
    for i = 1, 20 do
      outs[i] = dir .. "/client" .. i .. ".out"
      os.execute(("lua5.4 %s %d %s %s %d >/dev/null 2>&1 &"):format(
        H.quote(client), srv.port, H.quote(stop), H.quote(outs[i]), i % 2))
    end
    H.pause(0.3)
    for v = 2, 11 do
      save(path, source("version " .. v), v % 2 == 0)
      assert.equal("version " .. v, wait_text(srv, "version " .. v))
      H.pause(0.05)
    end
    save(stop, "")
    local results, deadline = {}, H.now() + 10
    for i = 1, 20 do
      while H.slurp(outs[i]) == "" and H.now() < deadline do H.pause(0.05) end
      results[i] = H.slurp(outs[i])
    end
    local total = 0
    for i = 1, 20 do
      local ok, failed, seen, errs =
        results[i]:match("^(%d+)\n(%d+)\n([^\n]*)\n([^\n]*)")
      assert.is_not_nil(ok, "client " .. i .. " did not report")
      assert.equal("0", failed, "client " .. i .. ": " .. tostring(errs))
      total = total + tonumber(ok)
      -- each client saw versions only ever move forward, up to the last
      local last = 0
      for v in seen:gmatch("version (%d+)") do
        assert.is_true(tonumber(v) > last, "client " .. i .. ": " .. seen)
        last = tonumber(v)
      end
      assert.equal(11, last, "client " .. i .. ": " .. seen)
    end
    assert.is_true(total > 200, "only " .. total .. " requests")
    assert.equal(10, count(srv:log(), "reloaded"))
  end)

  it("finishes a request on the generation it started on", function()
    start("old", { "--reload" })
    local c = H.raw(srv.port)
    c:send("GET /sleep/2 HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.2)
    local t0 = H.now()
    save(path, source("new"))
    assert.equal("new", wait_text(srv, "new"))
    local res = H.read_response(c)
    assert.equal(200, res.status)
    assert.equal("old", res.body)
    assert.is_true(H.now() - t0 > 1.2)
    -- the next request on that kept-alive connection: the new generation
    c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal("new", H.read_response(c).body)
    c:close()
  end)

  it("stops the old generation's timers and tasks", function()
    start("first")
    H.pause(0.1)
    save(path, source("second"))
    hup(srv)
    assert.equal("second", body(srv))
    local a = tonumber(body(srv, "/ticks/first"))
    H.pause(0.2)
    assert.equal(a, tonumber(body(srv, "/ticks/first")))
    local b = tonumber(body(srv, "/ticks/second"))
    H.pause(0.2)
    assert.is_true(tonumber(body(srv, "/ticks/second")) > b)
    a = tonumber(body(srv, "/task/first"))
    H.pause(0.2)
    assert.equal(a, tonumber(body(srv, "/task/first")))
    b = tonumber(body(srv, "/task/second"))
    H.pause(0.2)
    assert.is_true(tonumber(body(srv, "/task/second")) > b)
  end)

  it("keeps the old code when a save is broken, and logs where", function()
    start("good", { "--reload" })
    save(path, "local moonlet = require 'moonlet'\nlocal x = = 1\n")
    assert.truthy(H.wait_for_log(srv, "reload failed: still serving", 5))
    assert.truthy(srv:log():match("app%.lua:2: unexpected symbol"))
    assert.equal("good", body(srv))
    save(path, source("better"))
    assert.equal("better", wait_text(srv, "better"))
    -- an error while loading
    save(path, source("worse", 'error("boom at load")'))
    assert.truthy(H.wait_for_log(srv, "app%.lua:%d+: boom at load", 5))
    assert.equal("better", body(srv))
    -- no app returned
    local n = count(srv:log(), "reload failed")
    save(path, "local moonlet = require 'moonlet'\nreturn 42\n")
    local deadline = H.now() + 5
    while count(srv:log(), "reload failed") == n and H.now() < deadline do
      H.pause(0.02)
    end
    assert.truthy(srv:log():match("must end with 'return app'"))
    assert.equal("better", body(srv))
    save(path, source("best"), true)
    assert.equal("best", wait_text(srv, "best"))
  end)

  it("watches a broken module it has never loaded, to see its fix", function()
    start("base", { "--reload" })
    save(dir .. "/extra.lua", "return {")
    save(path, source("base", 'local e = require "extra"'))
    assert.truthy(H.wait_for_log(srv, "extra%.lua:1:", 5))
    assert.equal("base", body(srv))
    save(dir .. "/extra.lua", "return {}")
    assert.truthy(H.wait_for_log(srv, "extra%.lua changed: reloading", 5))
    assert.truthy(H.wait_for_log(srv, "reloaded", 5))
  end)

  it("reloads on SIGHUP without --reload, and the newest save wins", function()
    start("a")
    save(path, source("b"))
    hup(srv)
    assert.equal("b", body(srv))
    -- many signals at once: loads do not pile up, the last text is served
    save(path, source("c", "moonlet.sleep(0.05)"))
    for _ = 1, 5 do
      os.execute("kill -HUP " .. srv.pid)
      H.pause(0.01)
    end
    save(path, source("d", "moonlet.sleep(0.05)"))
    os.execute("kill -HUP " .. srv.pid)
    assert.equal("d", wait_text(srv, "d"))
  end)

  it("stops cleanly while a reload is still loading", function()
    start("x")
    save(path, source("y", "moonlet.sleep(5)"))
    os.execute("kill -HUP " .. srv.pid)
    H.pause(0.2)
    local t0 = H.now()
    assert.equal(0, srv:kill("TERM", 5))
    assert.is_true(H.now() - t0 < 2)
    assert.is_nil(srv:log():match("reloaded"))
  end)

  it("does not grow with 200 reloads", function()
    start("mem")
    for _ = 1, 20 do hup(srv) end
    local before = rss_kib(srv.pid)
    for _ = 1, 180 do hup(srv) end
    local after = rss_kib(srv.pid)
    assert.equal(200, count(srv:log(), "reloaded"))
    assert.equal("mem", body(srv))
    io.stderr:write(("RSS after 20 reloads %d KiB, after 200 %d KiB\n")
      :format(before, after))
    -- a sanitizer keeps freed memory in quarantine, valgrind is the
    -- process: only a plain build's RSS says anything
    if os.getenv("ASAN_OPTIONS") or H.wrap ~= "" then return end
    assert.is_true(after - before < 3 * 1024,
      ("RSS grew from %d to %d KiB"):format(before, after))
  end)
end)
