-- Timers: after, every, stop, errors in callbacks, waits in callbacks.
local moonlet = require "moonlet"
local app = moonlet.app()

local counts = { after = 0, every = 0, stopped = 0, failing = 0, slept = 0 }

moonlet.after(0.1, function() counts.after = counts.after + 1 end)
moonlet.every(0.05, function() counts.every = counts.every + 1 end)

local stopped
stopped = moonlet.every(0.05, function()
  counts.stopped = counts.stopped + 1
  if counts.stopped == 2 then stopped:stop() end
end)

moonlet.every(0.05, function()
  counts.failing = counts.failing + 1
  error("timer boom " .. counts.failing)
end)

moonlet.every(0.05, function()
  moonlet.sleep(0.01)          -- callbacks run in coroutines
  counts.slept = counts.slept + 1
end)

local cancelled = moonlet.after(0.05, function() counts.never = true end)
cancelled:stop()

app:get("/counts", function(req)
  return counts
end)

-- A timer made by a handler outlives the request.
app:get("/later/<float:s>", function(req, s)
  local t = moonlet.after(s, function() counts.later = moonlet.now() end)
  return { active = t:active(), now = moonlet.now() }
end)

app:get("/bad", function(req)
  local ok, err = pcall(moonlet.after, "soon", function() end)
  local ok2, err2 = pcall(moonlet.every, 1)
  return { err = err, err2 = err2 }
end)

return app
