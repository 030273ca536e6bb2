-- The return forms the core answers without moonlet.app's Lua (a string
-- or plain table, a status, a headers table, from a route without after
-- hooks): the same responses as the Lua path gives, through a real
-- server: spec/apps/forms.lua.
local H = require "helpers"
local cjson = require "cjson"

local raw_exchange, header_values = H.exchange, H.header_values

describe("return forms answered by the core", function()
  local srv

  lazy_setup(function() srv = H.start("spec/apps/forms.lua") end)
  lazy_teardown(function() if srv then srv:stop() end end)

  it("a string is 200 text/html with its length", function()
    local res = H.get(srv, "/string")
    assert.equal(200, res.status)
    assert.equal("text/html; charset=utf-8", res.headers["content-type"])
    assert.equal("5", res.headers["content-length"])
    assert.equal("hello", res.body)
  end)

  it("body, status, headers: lists repeat, framing headers are ours",
     function()
    local res = H.get(srv, "/headers")
    assert.equal(202, res.status)
    assert.equal("with headers", res.body)
    assert.same({ "a", "b" }, header_values(res, "X-Multi"))
    assert.equal("42", res.headers["x-num"])
    assert.same({ "text/plain" }, header_values(res, "Content-Type"))
    assert.same({ tostring(#"with headers") },
                header_values(res, "Content-Length"))
    assert.equal(1, #header_values(res, "Date"))
    assert.is_not.equal("never", res.headers["date"])
  end)

  it("a table is JSON, its length counted after encoding", function()
    local res = H.get(srv, "/json")
    assert.equal(200, res.status)
    assert.equal("application/json", res.headers["content-type"])
    assert.equal(tostring(#res.body), res.headers["content-length"])
    assert.same({ n = 1, s = "é\n", list = { 1, 2 } }, cjson.decode(res.body))
  end)

  it("a kept headers table is sent alike every time, never changed",
     function()
    for _ = 1, 3 do
      local res = H.get(srv, "/json-kept")
      assert.equal(201, res.status)
      assert.same({ made = true }, cjson.decode(res.body))
      assert.equal("application/json", res.headers["content-type"])
      assert.equal("yes", res.headers["x-kept"])
      assert.equal("no-store", res.headers["cache-control"])
    end
    assert.equal("2", H.get(srv, "/kept").body)
  end)

  it("HEAD: the JSON's length, no body", function()
    local get = H.get(srv, "/json-kept")
    local raw = raw_exchange(srv.port, "HEAD /json-kept HTTP/1.1\r\n"
      .. "Host: t\r\nConnection: close\r\n\r\n")
    assert.matches("^HTTP/1%.1 201", raw)
    assert.matches("\r\nContent%-Length: " .. #get.body .. "\r\n", raw)
    assert.equal(#raw, raw:find("\r\n\r\n", 1, true) + 3)
  end)

  it("a table with 204: no body, no length", function()
    local raw = raw_exchange(srv.port, "GET /json-204 HTTP/1.1\r\n"
      .. "Host: t\r\nConnection: close\r\n\r\n")
    assert.matches("^HTTP/1%.1 204", raw)
    assert.is_nil(raw:find("Content%-Length"))
    assert.equal(#raw, raw:find("\r\n\r\n", 1, true) + 3)
  end)

  it("Connection: close in the headers closes after the response",
     function()
    local raw = raw_exchange(srv.port, "GET /close HTTP/1.1\r\nHost: t\r\n"
      .. "\r\nGET /string HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.matches("Connection: close\r\n", raw)
    assert.matches("bye$", raw)
  end)

  it("a bad header name or a table JSON cannot hold is a logged 500",
     function()
    local res = H.get(srv, "/bad-name")
    assert.equal(500, res.status)
    assert.truthy(H.wait_for_log(srv, "invalid header name: 'Bad Name'", 2))
    res = H.get(srv, "/bad-json")
    assert.equal(500, res.status)
    assert.truthy(H.wait_for_log(srv, "cannot encode a function at %.f", 2))
    assert.equal("hello", H.get(srv, "/string").body)
  end)

  it("a marked array, a route parameter, a handler that waited", function()
    assert.equal("[]", H.get(srv, "/array").body)
    assert.equal("24690", H.get(srv, "/user/12345").body)
    local res = H.get(srv, "/sleep")
    assert.equal(200, res.status)
    assert.equal("1", res.headers["x-slept"])
    assert.same({ slept = true }, cjson.decode(res.body))
  end)

  it("header names made afresh are never taken for older ones",
     function()
    local n, reqs = 400, {}
    for i = 1, n do
      reqs[i] = ("GET /fresh/%d HTTP/1.1\r\nHost: t\r\n\r\n"):format(i)
    end
    local raw = raw_exchange(srv.port, table.concat(reqs)
      .. "GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
    local i, wrong = 0, {}
    for head in raw:gmatch("HTTP/1%.1 200 OK\r\n(.-\r\n)\r\n") do
      i = i + 1
      if i > n then break end
      local _, lengths = ("\n" .. head):lower():gsub("\ncontent%-length: ",
                                                     "")
      local ok = head:find("Content-Length: 1\r", 1, true) and lengths == 1
      for j = 1, 8 do
        ok = ok and head:find(("X-Fresh-%d-%d: v"):format(i, j), 1, true)
      end
      if not ok then wrong[#wrong + 1] = i end
    end
    assert.equal(n + 1, i)
    assert.same({}, wrong)
  end)

  it("pipelined requests keep their order", function()
    local raw = raw_exchange(srv.port, ("GET /json HTTP/1.1\r\nHost: t\r\n"
      .. "\r\nGET /headers HTTP/1.1\r\nHost: t\r\n\r\n"):rep(4)
      .. "GET /close HTTP/1.1\r\nHost: t\r\n\r\n")
    local order = {}
    for status in raw:gmatch("HTTP/1%.1 (%d+)") do order[#order + 1] = status end
    assert.same({ "200", "202", "200", "202", "200", "202", "200", "202",
                  "200" }, order)
  end)
end)
