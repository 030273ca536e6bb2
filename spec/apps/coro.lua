-- Coroutine behaviour: sleeps, the user's own coroutines, misuse.
local moonlet = require "moonlet"
local slow = require "slowmod"   -- sleeps at its top: require may wait
local app = moonlet.app()

moonlet.sleep(0.05)              -- the app file itself may wait
local loaded_at = moonlet.now()
local finished = {}              -- name -> true once a handler finished

app:get("/nap/<float:s>", function(req, s)
  moonlet.sleep(s)
  return "napped"
end)

app:get("/loaded", function(req)
  return { module = slow.value, loaded_at = loaded_at }
end)

-- A generator that waits between items, through coroutine.wrap.
app:get("/wrap", function(req)
  local items = {}
  local t0 = moonlet.now()
  for v in coroutine.wrap(function()
    for i = 1, 3 do
      moonlet.sleep(0.05)
      coroutine.yield(i)
    end
  end) do
    items[#items + 1] = v
  end
  return { items = items, took = moonlet.now() - t0 }
end)

-- coroutine.resume by hand, with values flowing both ways.
app:get("/resume", function(req)
  local co = coroutine.create(function(a)
    moonlet.sleep(0.01)
    local b = coroutine.yield(a + 1)
    moonlet.sleep(0.01)
    return b * 2
  end)
  local _, first = coroutine.resume(co, 1)
  local _, second = coroutine.resume(co, 10)
  return { first = first, second = second, status = coroutine.status(co) }
end)

-- An error inside a wrapped coroutine reaches the handler's pcall.
app:get("/wrap-error", function(req)
  local ok, err = pcall(coroutine.wrap(function()
    moonlet.sleep(0.01)
    error("inner failure")
  end))
  return { ok = ok, err = err }
end)

app:get("/bare-yield", function(req)
  coroutine.yield()
  return "unreachable"
end)

app:get("/sort-wait", function(req)
  local t = { 3, 1, 2 }
  table.sort(t, function(a, b) moonlet.sleep(0) return a < b end)
  return "sorted"
end)

app:get("/thread", function(req)
  return tostring(coroutine.running())
end)

app:get("/now", function(req)
  local t0 = moonlet.now()
  moonlet.sleep(0.1)
  return { elapsed = moonlet.now() - t0, type = math.type(t0) }
end)

-- Records when a sleeping handler really finishes, to show cancellation.
app:get("/mark/<name>", function(req, name)
  moonlet.sleep(0.5)
  finished[name] = true
  return "done"
end)

app:get("/finished/<name>", function(req, name)
  return { finished = finished[name] == true }
end)

app:get("/sleep-bad", function(req)
  moonlet.sleep(-1)
end)

-- Waits before and after the handler: an after hook and an errorhandler
-- that sleep, a handler that raises once it has waited, route values.
local waits = moonlet.app()
waits:after(function(req, resp)
  moonlet.sleep(0.02)
  resp.headers["X-Waited"] = "after"
end)
waits:errorhandler(500, function(req, err)
  moonlet.sleep(0.02)
  return "handled after a wait: " .. err.message, 500
end)
waits:get("/ok", function(req)
  moonlet.sleep(0.02)
  return "ok", 200, { ["X-Handler"] = "yes" }, "a fourth value"
end)
waits:get("/raise", function(req)
  moonlet.sleep(0.02)
  error("late boom")
end)
waits:get("/values/<int:a>/<b>/<float:c>", function(req, a, b, c)
  moonlet.sleep(0.01)
  return { a = a, b = b, c = c, path = req.path }
end)
app:mount("/waits", waits)

return app
