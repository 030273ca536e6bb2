-- The example apps in apps/, each through a real server.
local H = require "helpers"

-- hello and square in busted's own state, through moonlet.testing.
assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
local testing = require "moonlet.testing"

describe("apps/hello.lua", function()
  it("says Hello, World!", function()
    local res = testing.client("apps/hello.lua"):get("/")
    assert.status(200, res)
    assert.equal("Hello, World!", res.body)
    assert.equal("text/html; charset=utf-8", res.headers["content-type"])
  end)
end)

describe("apps/square.lua", function()
  local client
  setup(function() client = testing.client("apps/square.lua") end)

  local form = { headers = {
    ["Content-Type"] = "application/x-www-form-urlencoded" } }

  it("squares the form field x", function()
    local res = client:post("/square/submit", "x=12", form)
    assert.status(200, res)
    assert.equal("12 squared is 144", res.body)
  end)

  it("squares a multipart field too", function()
    local body = "--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n"
      .. "3\r\n--b--\r\n"
    local res = client:post("/square/submit", body, { headers = {
      ["Content-Type"] = "multipart/form-data; boundary=b" } })
    assert.equal("3 squared is 9", res.body)
  end)

  it("answers 400 when x is not a number", function()
    local res = client:post("/square/submit", "x=abc", form)
    assert.status(400, res)
    assert.matches("x must be a number", res.body)
  end)

  it("serves the form", function()
    assert.matches('action="/square/submit"', client:get("/").body)
  end)
end)

describe("apps/tags.lua", function()
  local srv
  setup(function() srv = H.start("apps/tags.lua") end)
  teardown(function() srv:stop() end)

  it("wraps the text one tag at a time", function()
    local res = H.get(srv, "/coro")
    assert.equal("<html><body><strong><i>Hello</i></strong></body></html>",
      res.body)
  end)

  it("serves many at once, each yielding between tags", function()
    local results, took = H.concurrent(srv, 50, "/coro?text=x")
    for _, res in ipairs(results) do
      assert.equal("<html><body><strong><i>x</i></strong></body></html>",
        res.body)
    end
    assert.is_true(took < 1.0, "took " .. took)   -- 4 steps of 10 ms each
  end)
end)

describe("apps/sleep.lua", function()
  local srv
  setup(function() srv = H.start("apps/sleep.lua") end)
  teardown(function() srv:stop() end)

  it("sleeps without holding up other requests", function()
    local t0 = H.now()
    local slow = H.raw(srv.port)
    slow:send("GET /sleep/1 HTTP/1.1\r\nHost: t\r\n\r\n")
    local fast = H.get(srv, "/")
    assert.equal(200, fast.status)
    assert.is_true(H.now() - t0 < 0.5, "a sleeper held up another request")
    local res = H.read_response(slow)
    slow:close()
    assert.equal("Slept for 1 seconds", res.body)
    assert.is_true(H.now() - t0 >= 0.95)
  end)

  it("does not match a non-integer", function()
    assert.equal(404, H.get(srv, "/sleep/abc").status)
  end)
end)

describe("apps/square_remote.lua", function()
  local srv
  setup(function() srv = H.start("apps/square_remote.lua") end)
  teardown(function() srv:stop() end)

  local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }

  it("adds the length of a remote page to the square", function()
    local res = H.post(srv, "/square/submit", "x=3", { headers = form })
    assert.equal(200, res.status)
    -- its own /service page is "a page from the service", 23 bytes
    assert.equal("3 squared plus 23 is 32", res.body)
  end)

  it("answers 502 when the service cannot be reached", function()
    local bad = H.start("apps/square_remote.lua",
      { env = "SQUARE_SERVICE_URL=http://127.0.0.1:1/" })
    local res = H.post(bad, "/square/submit", "x=3", { headers = form })
    bad:stop()
    assert.equal(502, res.status)
    assert.matches("connection refused", res.body)
  end)
end)

describe("apps/fanout.lua", function()
  local srv
  setup(function() srv = H.start("apps/fanout.lua") end)
  teardown(function() srv:stop() end)

  it("fetches K URLs at once and lists their statuses", function()
    local t0 = H.now()
    local res = H.get(srv, "/fanout?n=8")
    local took = H.now() - t0
    assert.equal(200, res.status)
    local list = require("cjson").decode(res.body)
    assert.equal(8, #list)
    for i, item in ipairs(list) do
      assert.equal(200, item.status)
      assert.matches("/item/" .. i .. "$", item.url)
    end
    assert.is_true(took < 0.5, "8 calls of 0.1 s took " .. took)
  end)

  it("refuses a bad n", function()
    assert.equal(400, H.get(srv, "/fanout?n=0").status)
    assert.equal(400, H.get(srv, "/fanout?n=abc").status)
  end)
end)
