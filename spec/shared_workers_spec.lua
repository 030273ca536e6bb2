-- moonlet.shared under --workers: one store for every worker.  Increments
-- and adds from both workers at once, TTLs seen across workers, a worker
-- killed while it hammers the store and while it holds the store's lock,
-- a store filled past --shared-size, and values kept across SIGHUP.
local H = require "helpers"

-- POST /eval to whichever worker takes the connection; the result lines.
local function eval(srv, code)
  local res = H.post(srv, "/eval", code)
  assert.equal(200, res.status)
  return res.body
end

-- Runs code (a function body) on worker 'id' only: new connections until
-- that worker takes one (a restarting worker may take a second or two).
-- Returns the result lines, without the id.
local function on_worker(srv, id, code)
  local deadline = H.now() + 5
  repeat
    local out = eval(srv, ("if moonlet.worker.id ~= %d then return "
      .. "moonlet.worker.id end return moonlet.worker.id, (function() %s "
      .. "end)()"):format(id, code))
    local got, rest = out:match("^integer:(%d+)\n?(.*)$")
    if tonumber(got) == id then return rest end
  until H.now() > deadline
  error("worker " .. id .. " never answered: " .. srv:log())
end

-- The pid of worker 'id', once it is a different one than 'old'.
local function pid_of(srv, id, old, timeout)
  local deadline = H.now() + (timeout or 10)
  repeat
    local pid = tonumber(on_worker(srv, id, "return moonlet.worker.pid")
      :match("%d+"))
    if pid ~= old then return pid end
    H.pause(0.05)
  until H.now() > deadline
  error("worker " .. id .. " was not restarted")
end

-- SIGKILL to a worker, then waits until the master has reaped it: until
-- then its listening socket may still take connections it never answers.
local function kill_worker(srv, pid)
  os.execute("kill -KILL " .. pid)
  assert.truthy(H.wait_for_log(srv, "worker %d %(pid " .. pid
    .. "%) was killed by signal 9", 5))
end

local function count(s, pattern)
  return select(2, s:gsub(pattern, ""))
end

describe("moonlet.shared with two workers", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/shared.lua", { args = { "--workers", "2" } })
  end)
  teardown(function() srv:stop() end)

  it("counts 2 x 200 concurrent increments exactly, from either worker",
    function()
    local res = H.concurrent(srv, 400, "/incr")
    local by, values = {}, {}
    for _, r in ipairs(res) do
      assert.equal(200, r.status)
      local id, v = r.body:match("^(%d+) (%d+)$")
      by[id] = (by[id] or 0) + 1
      values[tonumber(v)] = true
    end
    assert.truthy(by["1"] and by["2"], "both workers served")
    for i = 1, 400 do                       -- each increment saw its own
      assert.truthy(values[i], "no increment answered " .. i)
    end
    assert.equal("integer:400", on_worker(srv, 1, "return shared.get('hits')"))
    assert.equal("integer:400", on_worker(srv, 2, "return shared.get('hits')"))
  end)

  it("lets exactly one of 200 concurrent adds win", function()
    local res = H.concurrent(srv, 200, "/add/prize")
    local won, exists, by = 0, 0, {}
    for _, r in ipairs(res) do
      local id, what = r.body:match("^(%d+) (.*)$")
      by[id] = true
      if what == "won" then won = won + 1 end
      if what == "exists" then exists = exists + 1 end
    end
    assert.truthy(by["1"] and by["2"], "both workers served")
    assert.equal(1, won)
    assert.equal(199, exists)
  end)

  it("sees a TTL set by one worker from the other", function()
    on_worker(srv, 1, "shared.set('brief', 'here', 0.4)")
    assert.equal("string:here", on_worker(srv, 2, "return shared.get('brief')"))
    H.pause(0.5)
    assert.equal("nil", on_worker(srv, 2, "return shared.get('brief')"))
    assert.equal("nil", on_worker(srv, 1, "return shared.get('brief')"))
    assert.equal("boolean:true",
      on_worker(srv, 2, "return shared.add('brief', 'again')"))
  end)

  it("keeps counting when a hammering worker is killed; the new one sees it",
    function()
    local conns = {}
    for i = 1, 8 do
      conns[i] = H.raw(srv.port, 20)
      conns[i]:send("GET /hammer HTTP/1.1\r\nHost: t\r\n\r\n")
    end
    local deadline = H.now() + 5
    while not (eval(srv, "return shared.get('hammering:1') and "
        .. "shared.get('hammering:2')"):match("integer")) do
      assert.truthy(H.now() < deadline, "both workers hammer")
      H.pause(0.05)
    end
    local victim = tonumber(eval(srv, "return shared.get('hammering:1')")
      :match("%d+"))
    kill_worker(srv, victim)
    local after = tonumber(on_worker(srv, 2, "return shared.get('hammer')")
      :match("%d+"))
    H.pause(0.2)
    local later = tonumber(on_worker(srv, 2, "return shared.get('hammer')")
      :match("%d+"))
    assert.truthy(later > after, "worker 2 kept hammering")
    pid_of(srv, 1, victim)
    local seen = tonumber(on_worker(srv, 1, "return shared.get('hammer')")
      :match("%d+"))
    assert.truthy(seen >= later, "the restarted worker sees the count")
    eval(srv, "shared.set('stop', true)")
    for _, c in ipairs(conns) do c:close() end
    eval(srv, "shared.delete('stop')")
  end)

  it("keeps its values across SIGHUP, in every worker", function()
    on_worker(srv, 2, "shared.set('kept', 'yes')")
    local before = count(srv:log(), "reloaded")
    os.execute("kill -HUP " .. srv.pid)
    local deadline = H.now() + 10
    while count(srv:log(), "reloaded") < before + 2 do
      assert.truthy(H.now() < deadline, "both workers reload")
      H.pause(0.05)
    end
    assert.equal("string:yes", on_worker(srv, 1, "return shared.get('kept')"))
    assert.equal("string:yes", on_worker(srv, 2, "return shared.get('kept')"))
    assert.equal("integer:400", on_worker(srv, 1, "return shared.get('hits')"))
  end)
end)

describe("moonlet.shared with a small store", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/shared.lua", {
      args = { "--workers", "2", "--shared-size", "64k" },
      env = "MOONLET_SHARED_STALL=stall APP_SHARED_SIZE=131072" })
  end)
  teardown(function() srv:stop() end)

  it("takes --shared-size over the app's shared_size", function()
    assert.equal("integer:65536",
      on_worker(srv, 1, "return shared.stats().size"))
    assert.equal("integer:65536",
      on_worker(srv, 2, "return shared.stats().size"))
  end)

  it("evicts old keys when full; add and incr answer no memory", function()
    local v = string.rep("v", 200)
    assert.equal("boolean:true", on_worker(srv, 1, [[
      for i = 1, 2000 do assert(shared.set('k' .. i, ]] .. ("%q"):format(v)
      .. [[)) end
      return true]]))
    assert.equal("nil\nboolean:true\nboolean:true", on_worker(srv, 2, [[
      return shared.get('k1'), shared.get('k2000') ~= nil,
        shared.stats().evictions > 1000]]))
    assert.equal("nil\nstring:no memory\nnil\nstring:no memory",
      on_worker(srv, 1, [[
      for i = 1, 1000 do
        if not shared.add('f' .. i, i) then break end
      end
      local ok, err = shared.add('big', ]] .. ("%q"):format(v) .. [[)
      return ok, err, shared.incr('fresh', 1, 0)]]))
    assert.equal("boolean:true", on_worker(srv, 2,
      "return shared.get('k2000') ~= nil"))
  end)

  it("goes on when a worker dies holding the store's lock", function()
    on_worker(srv, 1, "shared.set('keep', 'safe')")
    local c = H.raw(srv.port, 20)         -- a write that stops, locked
    c:send("POST /eval HTTP/1.1\r\nHost: t\r\nContent-Length: 31\r\n\r\n"
      .. "shared.set('stall', 'new') --  ")
    local pid = tonumber(H.wait_for_log(srv,
      "MOONLET_SHARED_STALL: process (%d+) stops holding the lock", 5))
    assert.truthy(pid, "a worker stalls holding the lock")
    kill_worker(srv, pid)
    c:close()
    assert.equal("string:safe\nstring:new\ninteger:1", eval(srv,
      "return shared.get('keep'), shared.get('stall'), "
      .. "shared.stats().recoveries"))
    assert.truthy(srv:log():match("a process died holding the store's "
      .. "lock; rebuilt it"))
    local id = tonumber(srv:log():match("worker (%d) %(pid " .. pid .. "%)"))
    pid_of(srv, id, pid)
    assert.equal("string:safe", on_worker(srv, id,
      "return shared.get('keep')"))
  end)
end)
