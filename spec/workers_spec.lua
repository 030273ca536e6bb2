-- --workers (API 11): a master and N workers on one port, restarts, signals
-- passed on, graceful stops, and {single = true} timers.
local H = require "helpers"

-- id and pid of the worker that answers GET /who on a new connection.
local function who(srv)
  local res = H.get(srv, "/who")
  assert.equal(200, res.status)
  local id, pid = res.body:match("^(%d+) (%d+)$")
  return tonumber(id), tonumber(pid)
end

-- The pids (as a set) and ids seen over n requests.
local function survey(srv, n)
  local pids, ids, count = {}, {}, 0
  for _ = 1, n do
    local id, pid = who(srv)
    if not pids[pid] then count = count + 1 end
    pids[pid], ids[id] = id, true
  end
  return pids, ids, count
end

-- Waits until there are two distinct pids among the workers.
local function wait_two(srv)
  local pids, ids, count
  for _ = 1, 10 do
    pids, ids, count = survey(srv, 20)
    if count == 2 then break end
  end
  return pids, ids, count
end

local function lines(path)
  local t = {}
  for l in H.slurp(path):gmatch("[^\n]+") do t[#t + 1] = tonumber(l) end
  return t
end

local function distinct(list, from)
  local set, n = {}, 0
  for i = from or 1, #list do
    if not set[list[i]] then set[list[i]], n = true, n + 1 end
  end
  return set, n
end

-- Sends a slow request to each of n new connections; returns them.
local function in_flight(srv, n, seconds)
  local conns = {}
  for i = 1, n do
    conns[i] = H.raw(srv.port, 10)
    conns[i]:send(("GET /sleep/%s HTTP/1.1\r\nHost: t\r\n\r\n"):format(
      seconds))
  end
  return conns
end

describe("workers", function()
  local srv
  after_each(function()
    if srv then srv:stop() end
    srv = nil
  end)

  it("answers from two workers, each with its own id and pid", function()
    srv = H.start("spec/apps/workers.lua", { args = { "--workers", "2" } })
    local pids, ids, count = wait_two(srv)
    assert.equal(2, count)
    assert.is_true(ids[1] and ids[2])
    for pid in pairs(pids) do assert.are_not.equal(srv.pid, pid) end
    -- one listening line, from the master, once both listen
    assert.equal(1, select(2, H.slurp(srv.out):gsub("moonlet listening", "")))
  end)

  it("restarts a worker that is killed, and keeps answering", function()
    srv = H.start("spec/apps/workers.lua", { args = { "--workers", "2" } })
    local pids = wait_two(srv)
    local victim, id = next(pids)
    os.execute("kill -9 " .. victim)
    assert.truthy(H.wait_for_log(srv, ("worker %d %%(pid %d%%) was killed by "
      .. "signal 9"):format(id, victim), 5))
    assert.truthy(H.wait_for_log(srv, "worker " .. id .. " %(pid %d+%) "
      .. "listens again", 5))
    local seen, fresh = {}, nil
    for _ = 1, 60 do
      local wid, pid = who(srv)            -- every request answered
      assert.are_not.equal(victim, pid)
      seen[pid] = true
      if wid == id then fresh = pid end
    end
    assert.is_not_nil(fresh, "the restarted worker never answered")
    assert.is_nil(srv:status())
  end)

  it("passes SIGHUP to every worker", function()
    local src = 'local m = require "moonlet"\nlocal app = m.app()\n'
      .. 'app:get("/", function() return "%s " .. m.worker.pid end)\n'
      .. 'return app\n'
    local path, dir = H.write_app(src:format("old"))
    srv = H.start(path, { args = { "--workers", "2" } })
    local f = assert(io.open(path, "w"))
    f:write(src:format("new"))
    f:close()
    os.execute("kill -HUP " .. srv.pid)
    assert.truthy(H.wait_for_log(srv, "SIGHUP: reloading 2 worker"))
    local deadline = H.now() + 5
    while select(2, srv:log():gsub("reloaded", "")) < 2
        and H.now() < deadline do
      H.pause(0.02)
    end
    for _ = 1, 20 do
      assert.matches("^new %d+$", H.get(srv, "/").body)
    end
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("reloads every worker on a save with --reload", function()
    local src = 'local m = require "moonlet"\nlocal app = m.app()\n'
      .. 'app:get("/", function() return "%s" end)\nreturn app\n'
    local path, dir = H.write_app(src:format("before"))
    srv = H.start(path, { args = { "--workers", "2", "--reload" } })
    assert.truthy(H.wait_for_log(srv, "watching 1 file.*watching 1 file"))
    local f = assert(io.open(path, "w"))
    f:write(src:format("after"))
    f:close()
    local deadline = H.now() + 5
    while select(2, srv:log():gsub("reloaded", "")) < 2
        and H.now() < deadline do
      H.pause(0.02)
    end
    for _ = 1, 20 do assert.equal("after", H.get(srv, "/").body) end
    os.execute("rm -rf " .. H.quote(dir))
  end)

  for _, n in ipairs { 1, 2 } do
    it(("lets 1 s requests finish on SIGTERM, then exits 0 (%d worker%s)")
        :format(n, n > 1 and "s" or ""), function()
      srv = H.start("spec/apps/workers.lua",
        { args = { "--workers", tostring(n) } })
      local conns = in_flight(srv, 6, 1)
      H.pause(0.3)
      local t0 = H.now()
      srv:kill("TERM", 0)
      for i = 1, 6 do
        local res = H.read_response(conns[i])
        assert.equal(200, res.status)
        assert.matches("^slept %d+$", res.body)
        conns[i]:close()
      end
      assert.equal(0, srv:kill("0", 10))
      assert.is_true(H.now() - t0 < 5)
      assert.is_nil(srv:log():match("killing"))
    end)
  end

  it("refuses new connections while draining, and closes at a second "
    .. "signal", function()
    srv = H.start("spec/apps/workers.lua",
      { args = { "--workers", "2", "--grace", "30" } })
    local conns = in_flight(srv, 4, 20)
    H.pause(0.3)
    srv:kill("TERM", 0)
    H.pause(0.3)
    local c = require("socket").tcp()
    c:settimeout(1)
    assert.is_nil((c:connect("127.0.0.1", srv.port)))
    c:close()
    local t0 = H.now()
    assert.equal(0, srv:kill("INT", 10))
    assert.is_true(H.now() - t0 < 5)
    for i = 1, 4 do conns[i]:close() end
  end)

  it("runs a {single = true} timer in one worker, then in another once "
    .. "that one dies", function()
    local log = os.tmpname()
    srv = H.start("spec/apps/workers.lua",
      { args = { "--workers", "2" }, env = "SINGLE_LOG=" .. H.quote(log) })
    H.pause(0.6)
    local before = lines(log)
    local set, n = distinct(before)
    assert.equal(1, n, "ran in " .. n .. " workers")
    assert.is_true(#before >= 5)
    local holder = next(set)
    os.execute("kill -9 " .. holder)
    H.pause(0.1)
    local from = #lines(log) + 1
    assert.truthy(H.wait_for_log(srv, "listens again", 5))
    H.pause(0.6)
    local after = lines(log)
    set, n = distinct(after, from)
    assert.equal(1, n, "ran in " .. n .. " workers after the kill")
    assert.is_nil(set[holder])
    assert.is_true(#after - from >= 5)
    os.remove(log)
  end)

  it("takes 'auto' as one worker per CPU", function()
    srv = H.start("spec/apps/workers.lua",
      { args = { "--workers", "auto" } })
    local _, ids = survey(srv, 20)
    for id in pairs(ids) do assert.is_true(id >= 1) end
  end)

  it("exits 1 when the app cannot load in the workers", function()
    local path, dir = H.write_app("local x = nil\nx.boom = 1\n")
    local code, out, err = H.cli({ "run", path, "--port", "0",
      "--workers", "2" })
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("app%.lua:2:", err)
    code, out, err = H.cli({ "run", dir .. "/missing.lua", "--workers", "2" })
    assert.equal(1, code)
    assert.matches("cannot open", err)
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("is worker 1 with its own pid in a single process", function()
    srv = H.start("spec/apps/workers.lua")
    local id, pid = who(srv)
    assert.equal(1, id)
    assert.equal(srv.pid, pid)
  end)
end)
