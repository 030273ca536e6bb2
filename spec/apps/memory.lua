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

-- A WebSocket whose handler waits in receive, as the benchmark's.
local receiving = 0

app:get("/ws", function(req)
  local ws = req:websocket{ deflate = false }
  while true do
    receiving = receiving + 1
    local msg, kind = ws:receive()
    receiving = receiving - 1
    if not msg then return end
    ws:send(msg, kind)
  end
end)

-- The state's bytes after a full collection, the handlers asleep and
-- those waiting in ws:receive.
app:get("/mem", function()
  collectgarbage("collect")
  collectgarbage("collect")
  return { bytes = collectgarbage("count") * 1024, sleeping = sleeping,
    receiving = receiving }
end)

return app
