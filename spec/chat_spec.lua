-- apps/chat.lua: WebSockets, long polling, server-sent events and its
-- page.
local H = require "helpers"
local W = require "ws_helpers"
local cjson = require "cjson"

describe("apps/chat.lua", function()
  local srv
  local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local function say(text, name)
    return H.post(srv, "/say", "name=" .. (name or "ann") .. "&text=" .. text,
      { headers = form })
  end
  setup(function() srv = H.start("apps/chat.lua") end)
  teardown(function() srv:stop() end)

  it("serves its page and files from chat/static", function()
    local res = H.get(srv, "/")
    assert.equal(200, res.status)
    assert.matches("text/html", res.headers["content-type"])
    assert.matches("chat.js", res.body)
    local js = H.get(srv, "/chat.js")
    assert.equal(200, js.status)
    assert.matches("EventSource", js.body)
    assert.matches("WebSocket", js.body)
  end)

  it("stores what is said and answers a poll at once", function()
    local res = say("hello")
    assert.equal(201, res.status)
    local m = cjson.decode(res.body)
    local poll = cjson.decode(H.get(srv, "/poll?since=" .. (m.id - 1)).body)
    assert.equal(m.id, poll.last)
    assert.equal("hello", poll.messages[1].text)
    assert.equal("ann", poll.messages[1].name)
  end)

  it("takes JSON too, and refuses an empty text", function()
    local res = H.post(srv, "/say", '{"name":"bo","text":"json"}',
      { headers = { ["Content-Type"] = "application/json" } })
    assert.equal(201, res.status)
    assert.equal(400, say("").status)
    assert.equal(400, say("%20%20").status)
    assert.equal(400, H.get(srv, "/poll?since=x").status)
  end)

  it("holds a poll until a message comes", function()
    local last = cjson.decode(say("before").body).id
    local c = H.raw(srv.port)
    c:send(("GET /poll?since=%d HTTP/1.1\r\nHost: t\r\n\r\n"):format(last))
    c:settimeout(0.3)
    assert.is_nil(c:receive(1))           -- nothing yet: it waits
    local t0 = H.now()
    say("wake")
    c:settimeout(5)
    local res = H.read_response(c)
    c:close()
    assert.is_true(H.now() - t0 < 0.5)
    local v = cjson.decode(res.body)
    assert.equal("wake", v.messages[1].text)
  end)

  it("ends a quiet poll at its timeout with no messages", function()
    local last = cjson.decode(say("x").body).id
    local t0 = H.now()
    local v = cjson.decode(H.get(srv, "/poll?since=" .. last
      .. "&timeout=0.2").body)
    assert.equal(last, v.last)
    assert.is_nil(v.messages)
    assert.is_true(H.now() - t0 >= 0.18)
  end)

  -- The next message on a socket, decoded.
  local function next_json(c)
    local msg, how = W.read_message(c)
    return msg and cjson.decode(msg) or error("no message: " .. tostring(how))
  end

  it("gives every WebSocket every message, whoever sent it", function()
    local last = cjson.decode(say("before sockets").body).id
    local a = W.connect(srv.port, "/ws?since=" .. last)
    local b = W.connect(srv.port, "/ws?since=" .. last)
    a:send(W.frame(1, cjson.encode{ name = "ann", text = "over the socket" }))
    for _, c in ipairs { a, b } do
      local m = next_json(c)
      assert.same({ "ann", "over the socket" }, { m.name, m.text })
    end
    say("over http")
    for _, c in ipairs { a, b } do
      assert.equal("over http", next_json(c).text)
    end
    a:send(W.frame(1, cjson.encode{ text = "" }))
    assert.matches("empty", next_json(a).error)
    a:close()
    b:close()
  end)

  it("sends a new socket what it missed", function()
    local last = cjson.decode(say("missed one").body).id
    local c = W.connect(srv.port, "/ws?since=" .. (last - 1))
    assert.equal("missed one", next_json(c).text)
    c:close()
  end)

  it("streams messages as server-sent events", function()
    local last = cjson.decode(say("first").body).id
    local c = H.raw(srv.port)
    c:send(("GET /events?since=%d HTTP/1.1\r\nHost: t\r\n\r\n")
      :format(last - 1))
    local status = c:receive("*l")
    assert.matches("200", status)
    repeat local h = c:receive("*l") until h == ""
    say("second")
    local seen, deadline = {}, H.now() + 3
    while #seen < 2 and H.now() < deadline do
      local size = tonumber(c:receive("*l"), 16)
      local chunk = c:receive(size)
      c:receive("*l")
      for data in chunk:gmatch("data: ([^\n]*)") do
        seen[#seen + 1] = cjson.decode(data).text
      end
    end
    c:close()
    assert.same({ "first", "second" }, seen)
  end)
end)
