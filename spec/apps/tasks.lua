-- Tasks and futures: moonlet.spawn, gather, first, timeout, future.
-- Side effects go in 'marks' (GET /marks shows them), so a spec can tell
-- that something cancelled never ran on.
local moonlet = require "moonlet"
local app = moonlet.app()

local marks = {}            -- name -> value, set when something finished
local futures = {}          -- name -> future, shared by requests

local function mark(name, v)
  marks[name] = v == nil and true or v
end

-- At load time: a task waited on, and one left running.
local load_task = moonlet.spawn(function(a, b)
  moonlet.sleep(0.02)
  return a + b
end, 20, 22)
local load_result = load_task:wait()
moonlet.spawn(function()
  moonlet.sleep(0.05)
  mark("load-detached")
end)

-- In a timer: a task waited on, and one left running after it returns.
moonlet.after(0.01, function()
  local t = moonlet.spawn(function()
    moonlet.sleep(0.02)
    return "from a timer"
  end)
  mark("timer-waited", t:wait())
  moonlet.spawn(function()
    moonlet.sleep(0.05)
    mark("timer-detached")
  end)
end)

app:get("/marks", function(req)
  return { marks = marks, load_result = load_result }
end)

app:get("/multi", function(req)
  local t = moonlet.spawn(function(a, b)
    moonlet.sleep(0.01)
    return a, b, a + b, nil, "last"
  end, 1, 2)
  local r = table.pack(t:wait())
  return { n = r.n, values = { r[1], r[2], r[3], r[4], r[5] },
    done = t:done() }
end)

app:get("/immediate", function(req)
  -- no wait inside: the task ends on the loop's next turn
  local t = moonlet.spawn(function(x) return x * 2 end, 21)
  return { value = t:wait() }
end)

app:get("/wait-error", function(req)
  local t = moonlet.spawn(function()
    moonlet.sleep(0.01)
    error("task went wrong")
  end)
  local ok, err = pcall(t.wait, t)
  local ok2, err2 = pcall(t.wait, t)         -- again: the same error
  return { ok = ok, err = err, ok2 = ok2, err2 = err2 }
end)

app:get("/wait-timeout/<name>", function(req, name)
  local t = moonlet.spawn(function()
    moonlet.sleep(0.3)
    mark(name)
    return "finished"
  end)
  local a, b = t:wait(0.05)
  local done_then = t:done()
  local later = t:wait(5)
  return { a = a, b = b, done_then = done_then, later = later }
end)

-- Cancel a sleeping task, or one waiting on a request to this server's
-- /slow-mark, which is then cancelled too (its client left).
app:get("/cancel/<name>", function(req, name)
  local port = req.query.port
  local t = moonlet.spawn(function()
    if port then
      moonlet.http.get(("http://127.0.0.1:%s/slow-mark/%s"):format(port, name))
    else
      moonlet.sleep(0.3)
    end
    mark(name)
  end)
  moonlet.sleep(tonumber(req.query.after) or 0.1)
  local was = t:cancel()
  local a, b = t:wait()
  local again = t:cancel()
  return { was = was, a = a, b = b, again = again, done = t:done() }
end)

app:get("/slow-mark/<name>", function(req, name)
  mark(name .. "-callee-started")
  moonlet.sleep(0.6)
  mark(name .. "-callee")
  return "slow"
end)

-- A task spawned by a handler that then sleeps, or waits on it (t:wait,
-- gather): cancelled with the request when its client leaves.
app:get("/child/<name>", function(req, name)
  local how = req.query.how
  local function child()
    mark(name .. "-started")
    moonlet.sleep(0.6)
    mark(name)
  end
  if how == "wait" then
    moonlet.spawn(child):wait()
  elseif how == "gather" then
    moonlet.gather(child)
  else
    moonlet.spawn(child)
    moonlet.sleep(1)
  end
  mark(name .. "-handler")
  return "unreachable once the client left"
end)

-- A task left running by a handler that returned normally.
app:get("/detached/<name>", function(req, name)
  moonlet.spawn(function()
    moonlet.sleep(0.2)
    mark(name)
  end)
  return "returned"
end)

local function sleeper(s, v)
  return function()
    moonlet.sleep(s)
    return v, "extra"          -- gather keeps only the first result
  end
end

app:get("/gather", function(req)
  local t0 = moonlet.now()
  local a, b, c = moonlet.gather(sleeper(0.2, "a"), sleeper(0.05, "b"),
    sleeper(0, "c"))
  return { results = { a, b, c }, elapsed = moonlet.now() - t0 }
end)

app:get("/gather-timing", function(req)
  local t0 = moonlet.now()
  moonlet.gather(sleeper(0.3), sleeper(0.3), sleeper(0.3))
  return { elapsed = moonlet.now() - t0 }
end)

-- Errors: the first in argument order wins, raised once all settled.
app:get("/gather-error/<name>", function(req, name)
  local t0 = moonlet.now()
  local ok, err = pcall(moonlet.gather,
    sleeper(0.05, "fine"),
    function() moonlet.sleep(0.15) error("first in order") end,
    function() moonlet.sleep(0.01) error("first in time") end,
    function() moonlet.sleep(0.3) mark(name) end)
  return { ok = ok, err = err, elapsed = moonlet.now() - t0 }
end)

app:get("/gather-empty", function(req)
  return { n = select("#", moonlet.gather()) }
end)

app:get("/first/<name>", function(req, name)
  local t0 = moonlet.now()
  local a, b = moonlet.first(
    function() moonlet.sleep(0.3) mark(name .. "-1") return "slow" end,
    function() moonlet.sleep(0.05) return "fast", 2 end,
    function() moonlet.sleep(0.4) mark(name .. "-3") return "slower" end)
  return { a = a, b = b, elapsed = moonlet.now() - t0 }
end)

app:get("/first-error", function(req)
  local ok, err = pcall(moonlet.first,
    function() moonlet.sleep(0.3) return "late" end,
    function() moonlet.sleep(0.02) error("fastest failed") end)
  return { ok = ok, err = err }
end)

app:get("/timeout-fast", function(req)
  local r = table.pack(moonlet.timeout(1, function(x)
    moonlet.sleep(0.02)
    return x, "two", 3
  end, "one"))
  return { n = r.n, values = { r[1], r[2], r[3] } }
end)

app:get("/timeout-slow/<name>", function(req, name)
  local t0 = moonlet.now()
  local a, b = moonlet.timeout(0.1, function()
    moonlet.sleep(0.4)
    mark(name)
    return "too late"
  end)
  return { a = a, b = b, elapsed = moonlet.now() - t0 }
end)

app:get("/timeout-error", function(req)
  local ok, err = pcall(moonlet.timeout, 1, function()
    moonlet.sleep(0.01)
    error("inside timeout")
  end)
  return { ok = ok, err = err }
end)

-- Futures shared between requests.
app:get("/future/new/<name>", function(req, name)
  futures[name] = moonlet.future()
  return { made = name }
end)

app:get("/future/get/<name>", function(req, name)
  local f = futures[name]
  mark(name .. "-waiters", (marks[name .. "-waiters"] or 0) + 1)
  local r = table.pack(pcall(f.get, f, tonumber(req.query.t)))
  return { ok = r[1], n = r.n - 1, values = { r[2], r[3], r[4] },
    done = f:done() }
end)

app:get("/future/set/<name>", function(req, name)
  futures[name]:set(req.query.v, 2, true)
  local ok, err = pcall(futures[name].set, futures[name], "again")
  local ok2, err2 = pcall(futures[name].fail, futures[name], "again")
  return { ok = ok, err = err, ok2 = ok2, err2 = err2 }
end)

app:get("/future/fail/<name>", function(req, name)
  futures[name]:fail("it failed")
  local ok, err = pcall(futures[name].set, futures[name], 1)
  return { ok = ok, err = err }
end)

-- Several waiters in one handler, all woken with the same values.
app:get("/future/local", function(req)
  local f = moonlet.future()
  local waiters = {}
  for i = 1, 3 do
    waiters[i] = moonlet.spawn(function()
      return table.pack(f:get())
    end)
  end
  moonlet.sleep(0.02)
  f:set("x", 7)
  local got = {}
  for i = 1, 3 do
    local r = waiters[i]:wait()
    got[i] = { n = r.n, values = { r[1], r[2] } }
  end
  return { got = got, after = { f:get() } }
end)

return app
