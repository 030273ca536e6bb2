-- The WebSocket scenarios: GET /ws echoes every message; its handler
-- waits in receive between them (idle: it only waits).
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/ws", function(req)
  local ws = req:websocket{ deflate = false }
  while true do
    local msg, kind = ws:receive()
    if not msg then return end
    ws:send(msg, kind)
  end
end)

app:get("/", function() return "Hello, World!" end)

return app
