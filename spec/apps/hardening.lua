-- Runaway handlers and timers, for spec/hardening_spec.lua.
local moonlet = require "moonlet"
local app = moonlet.app()

local timer_runs = 0

app:get("/", function() return "ok" end)

app:get("/spin/<float:s>", function(req, s)
  local t0 = os.clock()
  while os.clock() - t0 < s do end
  return "spun"
end)

app:get("/forever", function()
  local n = 0
  while true do n = n + 1 end
end)

app:get("/swallow", function()   -- a pcall in the hot loop
  while true do pcall(function() for _ = 1, 1e6 do end end) end
end)

app:get("/hog", function()
  local t = {}
  for i = 1, 1e8 do t[i] = ("x"):rep(100) .. i end
  return "never"
end)

app:get("/spin-timer", function()
  moonlet.after(0.05, function()
    timer_runs = timer_runs + 1
    while true do end
  end)
  return "started"
end)

app:get("/timer-runs", function() return { runs = timer_runs } end)

return app
