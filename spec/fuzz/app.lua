-- The app behind the fuzz harness: routes that read every part of a
-- request, so the fuzzer's bytes reach the parsers and the Lua side.
local moonlet = require "moonlet"
local app = moonlet.app{ secret_key = "fuzz-secret-of-16-bytes" }

app:get("/", function() return "hi" end)

app:route("/echo/<path:p>", { methods = { "GET", "POST", "PUT", "PATCH" } },
  function(req, p)
    local form_ok, form = pcall(function() return req.form end)
    return {
      p = p, path = req.path, raw = req.raw_path, q = req.query,
      all = req:query_all("a"), h = req.headers, c = req.cookies,
      body = #req.body, form = form_ok and form or false,
      files = form_ok and #(function() local n = {} for k in pairs(req.files)
        do n[#n + 1] = k end return n end)() or 0,
    }
  end)

app:get("/int/<int:n>", function(req, n) return { n = n } end)
app:get("/float/<float:x>", function(req, x) return { x = x } end)
app:get("/user/<name>/<int:id>", function(req, name, id)
  return app:url_for("user", { name = name, id = id })
end, { name = "user" })
app:post("/json", function(req) return req:json() end)
app:get("/session", function(req)       -- the cookie's base64url and JSON
  local n = math.tointeger(req.session.n) or 0
  req.session.n = n + 1
  req:flash(req.query.m or "m")
  return { n = n, csrf = req:csrf_token(), f = req:flashes() }
end)
app:get("/error", function() error("boom") end)
app:get("/abort/<int:s>", function(req, s)
  if s >= 200 and s <= 999 then moonlet.abort(s) end
  return "no"
end)
app:get("/stream", function(req)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  out:write("a")
  out:write("b")
end)
app:get("/sse", function(req)
  local ev = req:sse()
  ev:send{ data = req.query.d or "x\ny", event = "e", id = 1 }
end)
app:get("/wait", function() moonlet.sleep(0) return "z" end)
app:get("/docs/", function() return "docs" end)
local big = ("b"):rep(16384)
app:get("/big", function() return big end)   -- outgrows socket buffers
app:get("/header", function(req)
  return "h", 200, { ["X-Echo"] = req.query.v or "" }
end)

app:get("/ws", function(req)               -- frames after a handshake
  local ws = req:websocket{ max_message = 4096, protocols = { "p" } }
  while true do
    local msg, kind = ws:receive(0.2)
    if not msg and kind ~= "timeout" then return end
    if msg then ws:send(msg, kind) else ws:ping("p") end
  end
end)

app:errorhandler(404, function(req, err) return "nothing at " .. req.path end)

return app
