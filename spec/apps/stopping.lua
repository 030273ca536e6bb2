-- The app stopping_spec.lua stops: fast routes for keep-alive load, and
-- thread.run jobs that never return.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/", function() return "ok" end)

app:get("/job/spin", function()
  return moonlet.thread.run(function() while true do end end)
end)

app:get("/job/swallow", function()    -- a pcall in the hot loop
  return moonlet.thread.run(function()
    while true do pcall(function() for _ = 1, 1e5 do end end) end
  end)
end)

app:get("/job/c", function()          -- stuck where no hook runs
  return moonlet.thread.run(function() os.execute("sleep 4") end)
end)

return app
