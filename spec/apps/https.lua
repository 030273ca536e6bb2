-- The HTTPS server's spec app (spec/https_server_spec.lua): what the
-- request knows of its TLS session, streams and events sent piece by
-- piece, a static folder (STATIC_DIR), a WebSocket echo, and which worker
-- answered.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/hello", function(req)
  return "hello"
end)

app:get("/info", function(req)
  local t = req.tls
  return { scheme = req.scheme, tls = t and {
    version = t.version, cipher = t.cipher, sni = t.sni or moonlet.null,
    alpn = t.alpn or moonlet.null } or moonlet.null }
end)

app:get("/who", function(req)
  return tostring(moonlet.worker.id)
end)

app:post("/echo", function(req)
  return req.body
end)

-- Three pieces, 'gap' seconds apart.
app:get("/stream/<float:gap>", function(req, gap)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  for i = 1, 3 do
    if i > 1 then moonlet.sleep(gap) end
    if not out:write("piece " .. i .. "\n") then return end
  end
end)

app:get("/events/<float:gap>", function(req, gap)
  local ev = req:sse()
  for i = 1, 3 do
    if i > 1 then moonlet.sleep(gap) end
    ev:send{ id = i, data = "event " .. i }
  end
end)

app:get("/ws", function(req)
  local ws = req:websocket()
  while true do
    local msg, kind = ws:receive()
    if not msg then return end
    ws:send(msg, kind)
  end
end)

local dir = os.getenv("STATIC_DIR")
if dir then
  app:static("/files", dir)
end

return app
