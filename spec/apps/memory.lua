-- What a waiting request holds in Lua, for spec/memory_spec.lua.
local moonlet = require "moonlet"
local app = moonlet.app()

local sleeping = 0

app:get("/sleep/<int:ms>", function(req, ms)
  sleeping = sleeping + 1
  moonlet.sleep(ms / 1000)
  sleeping = sleeping - 1
  return "slept"
end)

-- The state's bytes after a full collection, and the handlers asleep.
app:get("/mem", function()
  collectgarbage("collect")
  collectgarbage("collect")
  return { bytes = collectgarbage("count") * 1024, sleeping = sleeping }
end)

return app
