-- WebSocket routes for spec/ws_spec.lua and the clients' specs.
local moonlet = require "moonlet"
local app = moonlet.app{ keepalive_timeout = 0.3 }

local function echo(ws)
  while true do
    local msg, kind, code, reason = ws:receive()
    if not msg then
      moonlet.log("info", "ws closed", code, reason)
      return
    end
    ws:send(msg, kind)
  end
end

-- Logs when the handler ends, however it ends (cancelled too).
local function on_end(what)
  return setmetatable({}, { __close = function()
    moonlet.log("info", what, "ended")
  end })
end

app:get("/echo", function(req)
  local ws = req:websocket{ protocols = { "chat.v1", "chat.v2" } }
  if ws.protocol then ws:send("protocol " .. ws.protocol) end
  echo(ws)
end)

app:get("/plain", function(req)
  echo(req:websocket{ deflate = false })
end)

app:get("/small", function(req)
  echo(req:websocket{ max_message = 100 })
end)

-- Options req:websocket refuses, each raising at the caller's line; the
-- request is still a plain one after them.
app:get("/badopts", function(req)
  local out = {}
  for _, opts in ipairs { 7, { protocols = "x" }, { protocols = { 1 } },
      { max_message = 1.5 }, { max_message = 0 }, { ping_interval = -1 },
      { ping_interval = "1" }, { ping_interval = 0 / 0 } } do
    local ok, err = pcall(function() return req:websocket(opts) end)
    out[#out + 1] = tostring(ok) .. " " .. tostring(err)
  end
  return table.concat(out, "\n")
end)

-- What the request says still reads after the upgrade, which keeps only
-- its head (a decoded path too).
app:get("/after/<name>", function(req, name)
  local ws = req:websocket()
  local h = req.headers
  ws:send(table.concat({ req.method, req.path, name, req.query.x,
    req:header("x-test"), h["x-test"], h.upgrade, tostring(#req.body) },
    "|"))
end)

app:get("/bye", function(req)
  local ws = req:websocket()
  ws:send("bye")
end)

app:get("/boom", function(req)
  local ws = req:websocket()
  ws:send("about to fail")
  error("boom after the upgrade")
end)

app:get("/timeout", function(req)
  local ws = req:websocket()
  local msg, err = ws:receive(0.2)
  ws:send(tostring(msg) .. " " .. tostring(err))
  echo(ws)
end)

app:get("/close", function(req)
  local ws = req:websocket()
  local t0 = moonlet.now()
  local ok = ws:close(4000, "done here")
  ws:send("after")                 -- nil, "closed": not sent
  moonlet.log("info", "close returned", ok, "after",
    string.format("%.1f", moonlet.now() - t0))
end)

app:get("/heartbeat", function(req)
  local guard <close> = on_end("heartbeat")
  local ws = req:websocket{ ping_interval = 0.3 }
  echo(ws)
end)

app:get("/held", function(req)
  local guard <close> = on_end("held")
  echo(req:websocket())
end)

-- A room: every socket that joins receives what POST /say broadcasts,
-- sent from the POST's own coroutine.
local room = {}
app:get("/room", function(req)
  local ws = req:websocket()
  room[ws] = true
  ws:send("joined")
  while ws:receive() do end
  room[ws] = nil
end)

app:post("/say", function(req)
  local n = 0
  for ws in pairs(room) do
    if ws:send(req.body) then n = n + 1 end
  end
  return { sent = n }
end)

-- Two coroutines send at once: each message whole, each one's in order.
app:get("/interleave", function(req)
  local ws = req:websocket()
  local function burst(tag)
    for i = 1, 200 do
      ws:send(tag .. i .. ":" .. string.rep(tag, (i * 997) % 20000))
    end
  end
  local t = moonlet.spawn(burst, "a")
  burst("b")
  t:wait()
  ws:send("end")
  echo(ws)
end)

-- 50 MiB to a client that does not read: the sender waits, memory stays.
app:get("/flood", function(req)
  local guard <close> = on_end("flood")
  local ws = req:websocket()
  local chunk = string.rep("z", 1024 * 1024)
  for i = 1, 50 do
    if not ws:send(chunk, "binary") then break end
    moonlet.log("info", "flood sent", i)
  end
  echo(ws)
end)

-- The client: this server's own /echo, through moonlet.websocket.connect.
app:get("/client", function(req)
  local url = "ws://" .. req.headers.host .. (req.query.path or "/echo")
  local ws, err = moonlet.websocket.connect(url, { protocols = { "chat.v1" },
    headers = { ["X-From"] = "client" } })
  if not ws then return "connect failed: " .. err end
  local out = { "protocol " .. tostring(ws.protocol) }
  if ws.protocol then out[#out + 1] = (ws:receive()) end
  for _, m in ipairs { "hello", ("long "):rep(1000), "" } do
    ws:send(m)
    local got, kind = ws:receive(5)
    out[#out + 1] = kind .. " " .. #got
  end
  ws:send("\0\1\2", "binary")
  local got, kind = ws:receive(5)
  out[#out + 1] = kind .. " " .. #got
  out[#out + 1] = tostring(ws:close(4005, "client done"))
  out[#out + 1] = table.concat({ tostring(select(2, ws:receive())) }, " ")
  return table.concat(out, "\n")
end)

app:get("/client-fail", function(req)
  local ws, err = moonlet.websocket.connect(req.query.url,
    { timeout = tonumber(req.query.timeout) })
  return tostring(ws) .. " " .. tostring(err)
end)

-- wss://: ?url=, ?ca= (a CA file to trust), ?verify=0.
app:get("/client-tls", function(req)
  local ws, err = moonlet.websocket.connect(req.query.url, { tls = {
    ca_file = req.query.ca, verify = req.query.verify ~= "0" } })
  if not ws then return "connect failed: " .. err end
  ws:send("over tls " .. ("x"):rep(100000))
  local got = ws:receive(5)
  ws:close()
  return "got " .. #got
end)

-- Never answers: a handshake that times out.
app:get("/slow", function()
  local guard <close> = on_end("slow")
  moonlet.log("info", "slow started")
  moonlet.sleep(30)
end)

app:get("/", function() return "ok" end)

return app
