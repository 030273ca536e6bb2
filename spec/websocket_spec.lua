-- WebSocket on the server (req:websocket): the handshake, messages both
-- ways, every rule a client must keep, the closing handshake, sending
-- from other coroutines, back-pressure, heartbeats and a client that
-- vanishes; through a frame-level client over real sockets.
local H = require "helpers"
local W = require "ws_helpers"

local TEXT, BIN, CLOSE, PING, PONG = 1, 2, 8, 9, 10

describe("WebSocket handshake", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  it("answers 101 with the accept value and the first known protocol",
    function()
      local c, res = W.connect(srv.port, "/echo", { headers = {
        ["Sec-WebSocket-Protocol"] = "chat.v9, chat.v2, chat.v1" } })
      assert.equal(101, res.status)
      assert.equal(W.ACCEPT, res.headers["sec-websocket-accept"])
      assert.equal("websocket", res.headers["upgrade"]:lower())
      assert.equal("chat.v2", res.headers["sec-websocket-protocol"])
      assert.equal("protocol chat.v2", W.read_message(c))
      c:close()
    end)

  it("chooses no protocol when none is known, and none is offered",
    function()
      local c, res = W.connect(srv.port, "/echo", { headers = {
        ["Sec-WebSocket-Protocol"] = "x" } })
      assert.is_nil(res.headers["sec-websocket-protocol"])
      c:send(W.frame(TEXT, "hi"))
      assert.equal("hi", W.read_message(c))
      c:close()
    end)

  it("refuses a plain request with 400", function()
    local res = H.get(srv, "/echo")
    assert.equal(400, res.status)
    assert.matches("WebSocket handshake", res.body)
  end)

  it("refuses another version with 426 and the one it speaks", function()
    local c, res = W.connect(srv.port, "/echo", { expect = 426,
      headers = { ["Sec-WebSocket-Version"] = "8" } })
    assert.equal(426, res.status)
    assert.equal("13", res.headers["sec-websocket-version"])
    c:close()
    c, res = W.connect(srv.port, "/echo", { expect = 426,
      headers = { ["Sec-WebSocket-Version"] = false } })
    assert.equal(426, res.status)
    c:close()
  end)

  it("keeps the request readable after the upgrade", function()
    local c = W.connect(srv.port, "/after/a%20b?x=1", { headers = {
      ["X-Test"] = "yes" } })
    assert.equal("GET|/after/a b|a b|1|yes|yes|websocket|0",
      W.read_message(c))
    c:close()
  end)

  it("raises at the caller's line on a bad option", function()
    local res = H.get(srv, "/badopts")
    assert.equal(200, res.status)
    local lines = {}
    for line in res.body:gmatch("[^\n]+") do
      assert.matches("^false .*ws%.lua:%d+: req:websocket", line)
      lines[#lines + 1] = line:match("req:websocket.*")
    end
    assert.same({ "req:websocket expects an options table",
      "req:websocket: protocols must be a list of strings",
      "req:websocket: protocols must be a list of strings",
      "req:websocket: max_message must be a positive integer",
      "req:websocket: max_message must be a positive integer",
      "req:websocket: ping_interval must be seconds >= 0",
      "req:websocket: ping_interval must be seconds >= 0",
      "req:websocket: ping_interval must be seconds >= 0" }, lines)
  end)

  it("refuses a key that is not base64 of 16 bytes", function()
    for _, key in ipairs { "abc", "dGhlIHNhbXBsZSBub25jZQ=", false } do
      local c, res = W.connect(srv.port, "/echo", { expect = 400,
        headers = { ["Sec-WebSocket-Key"] = key } })
      assert.equal(400, res.status)
      c:close()
    end
  end)

  it("takes frames that came with the head", function()
    local c = W.connect(srv.port, "/plain", {
      extra = W.frame(TEXT, "early") .. W.frame(BIN, "\0\1") })
    assert.same({ "early", TEXT }, { W.read_message(c) })
    assert.same({ "\0\1", BIN }, { W.read_message(c) })
    c:close()
  end)

  it("negotiates permessage-deflate, and not on a route without it",
    function()
      local c, res = W.connect(srv.port, "/echo", { headers = {
        ["Sec-WebSocket-Extensions"] =
          "permessage-deflate; client_max_window_bits" } })
      assert.equal("permessage-deflate; server_no_context_takeover; "
        .. "client_max_window_bits=15", res.headers["sec-websocket-extensions"])
      local long = ("compress me "):rep(100)
      c:send(W.frame(TEXT, long))
      local fin, op, payload, rsv = W.read_frame(c)
      assert.equal(TEXT, op)
      assert.equal(4, rsv)                 -- RSV1: compressed
      assert.is_true(#payload < #long / 4)
      c:send(W.frame(TEXT, "short"))
      fin, op, payload, rsv = W.read_frame(c)
      assert.same({ "short", 0 }, { payload, rsv })  -- small: as it is
      c:close()
      c, res = W.connect(srv.port, "/plain", { headers = {
        ["Sec-WebSocket-Extensions"] = "permessage-deflate" } })
      assert.is_nil(res.headers["sec-websocket-extensions"])
      c:close()
    end)
end)

describe("WebSocket messages", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  it("echoes text and binary at every length class", function()
    local c = W.connect(srv.port, "/plain")
    for _, n in ipairs { 0, 1, 125, 126, 65535, 65536, 300000 } do
      local s = ("x"):rep(n)
      c:send(W.frame(BIN, s))
      local msg, op = W.read_message(c)
      assert.equal(n, #msg)
      assert.equal(BIN, op)
    end
    c:send(W.frame(TEXT, "h\xc3\xa9llo"))
    assert.same({ "h\xc3\xa9llo", TEXT }, { W.read_message(c) })
    c:close()
  end)

  it("reassembles fragments and answers a ping between them", function()
    local c = W.connect(srv.port, "/plain")
    c:send(W.frame(TEXT, "caf\xc3", { fin = false }) .. W.frame(PING, "p1")
      .. W.frame(0, "\xa9 ", { fin = false }) .. W.frame(0, "ok"))
    local fin, op, payload = W.read_frame(c)
    assert.same({ true, PONG, "p1" }, { fin, op, payload })
    assert.same({ "caf\xc3\xa9 ok", TEXT }, { W.read_message(c) })
    c:close()
  end)

  it("times out a receive", function()
    local c = W.connect(srv.port, "/timeout")
    local t0 = H.now()
    assert.equal("nil timeout", W.read_message(c))
    assert.is_true(H.now() - t0 >= 0.15)
    c:send(W.frame(TEXT, "still open"))
    assert.equal("still open", W.read_message(c))
    c:close()
  end)

  it("stays open past the keep-alive idle timeout", function()
    local c = W.connect(srv.port, "/plain")
    H.pause(0.8)                          -- the app's is 0.3 s
    c:send(W.frame(TEXT, "awake"))
    assert.equal("awake", W.read_message(c))
    c:close()
  end)

  it("sends whole messages in call order from two coroutines", function()
    local c = W.connect(srv.port, "/interleave")
    local seen = { a = 0, b = 0 }
    while true do
      local msg = assert(W.read_message(c))
      if msg == "end" then break end
      local tag, i, rest = msg:match("^(%a)(%d+):(.*)$")
      i = tonumber(i)
      assert.equal(seen[tag] + 1, i)
      assert.equal((i * 997) % 20000, #rest)
      assert.equal(("x"):rep(#rest):gsub("x", tag), rest)
      seen[tag] = i
    end
    assert.same({ a = 200, b = 200 }, seen)
    c:close()
  end)

  it("broadcasts from another request's coroutine", function()
    local a, b = W.connect(srv.port, "/room"), W.connect(srv.port, "/room")
    assert.equal("joined", W.read_message(a))
    assert.equal("joined", W.read_message(b))
    local res = H.post(srv, "/say", "hello room")
    assert.equal(2, require("cjson").decode(res.body).sent)
    assert.equal("hello room", W.read_message(a))
    assert.equal("hello room", W.read_message(b))
    a:close()
    b:close()
  end)
end)

describe("WebSocket protocol errors", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  -- Sends bytes on a fresh socket; the close code and reason it gets.
  local function closes_with(path, bytes)
    local c = W.connect(srv.port, path or "/plain")
    c:send(bytes)
    local code, reason = W.read_close(c)
    assert.is_true(W.eof(c, 3), "the server did not close TCP")
    c:close()
    return code, reason
  end

  it("refuses unmasked client frames (1002)", function()
    assert.equal(1002, closes_with(nil, W.frame(TEXT, "x", { mask = false })))
  end)

  it("refuses RSV bits no extension agreed (1002)", function()
    assert.equal(1002, closes_with(nil, W.frame(TEXT, "x", { rsv = 4 })))
    assert.equal(1002, closes_with(nil, W.frame(TEXT, "x", { rsv = 2 })))
  end)

  it("refuses unknown opcodes (1002)", function()
    assert.equal(1002, closes_with(nil, W.frame(3, "x")))
    assert.equal(1002, closes_with(nil, W.frame(11, "x")))
  end)

  it("refuses fragmented and long control frames (1002)", function()
    assert.equal(1002, closes_with(nil, W.frame(PING, "x", { fin = false })))
    assert.equal(1002, closes_with(nil, W.frame(PING, ("x"):rep(126))))
  end)

  it("refuses continuation rule breaks (1002)", function()
    assert.equal(1002, closes_with(nil, W.frame(0, "x")))
    assert.equal(1002, closes_with(nil, W.frame(TEXT, "a", { fin = false })
      .. W.frame(TEXT, "b")))
  end)

  it("refuses invalid UTF-8, even split across fragments (1007)",
    function()
      assert.equal(1007, closes_with(nil, W.frame(TEXT, "\xff")))
      -- a surrogate: ED in one frame, A0 80 in the next
      local code, reason = closes_with(nil, W.frame(TEXT, "ok\xed",
        { fin = false }) .. W.frame(0, "\xa0\x80"))
      assert.equal(1007, code)
      assert.matches("UTF%-8", reason)
    end)

  it("fails fast: before the rest of the frame arrives", function()
    local c = W.connect(srv.port, "/plain")
    -- 1000 bytes announced, the bad byte among the first 10
    local f = W.frame(TEXT, "abc\xc0" .. ("x"):rep(996))
    c:send(f:sub(1, 16))
    assert.equal(1007, W.read_close(c))
    c:close()
  end)

  it("checks close frames: code ranges and a UTF-8 reason", function()
    for _, code in ipairs { 999, 1004, 1005, 1006, 1015, 2999, 5000 } do
      assert.equal(1002, closes_with(nil,
        W.frame(CLOSE, W.close_payload(code))))
    end
    assert.equal(1002, closes_with(nil, W.frame(CLOSE, "\3")))
    assert.equal(1007, closes_with(nil,
      W.frame(CLOSE, W.close_payload(1000, "\xff"))))
  end)

  it("closes a message over max_message with 1009", function()
    assert.equal(1009, closes_with("/small", W.frame(BIN, ("x"):rep(101))))
    assert.equal(1009, closes_with("/small", W.frame(BIN, ("x"):rep(60),
      { fin = false }) .. W.frame(0, ("x"):rep(60))))
    -- a head alone that announces too much
    assert.equal(1009, closes_with("/plain",
      W.frame(BIN, "", { len = 2 * 1024 * 1024 })))
  end)

  it("keeps serving others", function()
    assert.equal("ok", H.get(srv, "/").body)
  end)
end)

describe("WebSocket closing", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  it("answers the client's close, then closes TCP", function()
    local c = W.connect(srv.port, "/plain")
    c:send(W.frame(CLOSE, W.close_payload(4001, "bye now")))
    assert.equal(4001, W.read_close(c))
    assert.is_true(W.eof(c, 2))
    c:close()
    assert.truthy(H.wait_for_log(srv, "ws closed 4001 bye now"))
  end)

  it("closes with 1000 when the handler returns", function()
    local c = W.connect(srv.port, "/bye")
    assert.equal("bye", W.read_message(c))
    assert.equal(1000, W.read_close(c))
    c:send(W.frame(CLOSE, W.close_payload(1000)))
    assert.is_true(W.eof(c, 3))
    c:close()
  end)

  it("closes with 1011 when the handler fails, and logs it", function()
    local c = W.connect(srv.port, "/boom")
    assert.equal("about to fail", W.read_message(c))
    assert.equal(1011, W.read_close(c))
    c:close()
    assert.truthy(H.wait_for_log(srv, "boom after the upgrade"))
  end)

  it("ws:close waits for the peer's close frame", function()
    local c = W.connect(srv.port, "/close")
    local code, reason = W.read_close(c)
    assert.same({ 4000, "done here" }, { code, reason })
    H.pause(0.2)
    c:send(W.frame(CLOSE, W.close_payload(4000)))
    assert.is_true(W.eof(c, 3))
    c:close()
    assert.truthy(H.wait_for_log(srv, "close returned true after 0%.[2-9]"))
  end)

  it("ends the handler of a client that vanishes (RST)", function()
    local c = W.connect(srv.port, "/held")
    c:send(W.frame(TEXT, "x"))
    assert.equal("x", W.read_message(c))
    c:setoption("linger", { on = true, timeout = 0 })
    c:close()                              -- an RST, no close frame
    assert.truthy(H.wait_for_log(srv, "held ended", 3))
  end)

  it("pings with ping_interval and drops a peer that stops answering",
    function()
      local c = W.connect(srv.port, "/heartbeat")
      local fin, op = W.read_frame(c)
      assert.equal(PING, op)
      c:send(W.frame(PONG, ""))
      fin, op = W.read_frame(c)
      assert.equal(PING, op)            -- answered: another one comes
      local t0 = H.now()
      assert.is_true(W.eof(c, 3))       -- unanswered: dropped
      assert.is_true(H.now() - t0 < 2)
      c:close()
      assert.truthy(H.wait_for_log(srv, "heartbeat ended", 3))
    end)
end)

describe("WebSocket back-pressure", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  local function rss_kb(pid)
    local s = H.slurp("/proc/" .. pid .. "/status")
    return tonumber(s:match("VmRSS:%s*(%d+)"))
  end

  it("keeps memory bounded for a client that stops reading 50 MiB",
    function()
      local before = rss_kb(srv.pid)
      local slow = W.connect(srv.port, "/flood")
      H.pause(1)
      -- the sender waits: a few MiB at most are out of the handler
      local sent = 0
      for n in srv:log():gmatch("flood sent (%d+)") do sent = tonumber(n) end
      assert.is_true(sent < 20, "sent " .. sent .. " MiB to a reader "
        .. "that took none")
      assert.is_true(rss_kb(srv.pid) - before < 24 * 1024)
      -- everyone else is served meanwhile
      local c = W.connect(srv.port, "/plain")
      c:send(W.frame(TEXT, "others"))
      assert.equal("others", W.read_message(c))
      c:close()
      assert.equal("ok", H.get(srv, "/").body)
      -- once it reads, all 50 MiB arrive
      slow:settimeout(10)
      local got = 0
      while got < 50 * 1024 * 1024 do
        local msg = assert(W.read_message(slow))
        got = got + #msg
      end
      assert.equal(50 * 1024 * 1024, got)
      slow:close()
    end)
end)

describe("WebSocket and a graceful stop", function()
  it("closes open WebSockets with 1001", function()
    local srv = H.start("spec/apps/ws.lua", { args = { "--grace", "10" } })
    local c = W.connect(srv.port, "/plain")
    c:send(W.frame(TEXT, "x"))
    assert.equal("x", W.read_message(c))
    local t0 = H.now()
    os.execute("kill -TERM " .. srv.pid)
    local code = W.read_close(c)
    assert.equal(1001, code)
    c:send(W.frame(CLOSE, W.close_payload(1001)))
    assert.is_true(W.eof(c, 3))
    c:close()
    local deadline = H.now() + 5
    while not srv:status() and H.now() < deadline do H.pause(0.02) end
    assert.equal(0, srv:status())
    assert.is_true(H.now() - t0 < 3, "it waited out the grace")
    srv:stop()
  end)
end)

describe("moonlet.websocket.connect", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  it("masks its frames, and keeps the methods of a server's WebSocket",
    function()
      local res = H.get(srv, "/client")
      assert.equal(200, res.status)
      assert.equal(table.concat({ "protocol chat.v1", "protocol chat.v1",
        "text 5", "text 5000", "text 0", "binary 3", "true", "closed" },
        "\n"), res.body)
      assert.truthy(H.wait_for_log(srv, "ws closed 4005 client done"))
    end)

  it("says why it could not connect", function()
    local function fails(url, timeout)
      return H.get(srv, "/client-fail?url=" .. url .. "&timeout="
        .. (timeout or 5)).body
    end
    assert.equal("nil connection refused", fails("ws://127.0.0.1:1/"))
    assert.equal("nil bad response",
      fails("ws://127.0.0.1:" .. srv.port .. "/nope"))
    assert.equal("nil bad response",
      fails("ws://127.0.0.1:" .. srv.port .. "/"))
    assert.matches("^nil dns: ", fails("ws://no-such-host.invalid/"))
    local t0 = H.now()
    assert.equal("nil timeout",
      fails("ws://127.0.0.1:" .. srv.port .. "/slow", 0.3))
    assert.is_true(H.now() - t0 < 2)
    assert.truthy(H.wait_for_log(srv, "slow ended", 3))  -- socket closed
  end)

  it("closes the socket of a handshake its handler gave up", function()
    local function count(what)
      return select(2, srv:log():gsub(what, ""))
    end
    local started, ended = count("slow started"), count("slow ended")
    local c = H.raw(srv.port)
    c:send("GET /client-fail?url=ws://127.0.0.1:" .. srv.port
      .. "/slow&timeout=20 HTTP/1.1\r\nHost: t\r\n\r\n")
    -- once the handshake waits in /slow, the client leaves
    assert.truthy(H.wait_for_log(srv, ("slow started.*"):rep(started + 1),
      3))
    c:close()                -- the handler is cancelled mid-handshake
    assert.truthy(H.wait_for_log(srv, ("slow ended.*"):rep(ended + 1), 3))
  end)
end)

describe("WebSocket across a reload", function()
  local source = [[
local moonlet = require "moonlet"
local app = moonlet.app()
app:get("/v", function(req)
  local ws = req:websocket()
  while true do
    local msg = ws:receive()
    if not msg then return end
    ws:send("VERSION:" .. msg)
  end
end)
return app
]]

  it("keeps its generation while the new one serves new sockets",
    function()
      local path = H.write_app(source:gsub("VERSION", "v1"))
      local srv = H.start(path)
      local old = W.connect(srv.port, "/v")
      old:send(W.frame(TEXT, "a"))
      assert.equal("v1:a", W.read_message(old))
      local f = assert(io.open(path, "w"))
      f:write((source:gsub("VERSION", "v2")))
      f:close()
      os.execute("kill -HUP " .. srv.pid)
      assert.truthy(H.wait_for_log(srv, "reloaded", 5))
      local new = W.connect(srv.port, "/v")
      new:send(W.frame(TEXT, "b"))
      assert.equal("v2:b", W.read_message(new))
      old:send(W.frame(TEXT, "c"))
      assert.equal("v1:c", W.read_message(old))
      old:close()
      new:close()
      srv:stop()
    end)
end)
