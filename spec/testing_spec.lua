--- moonlet.testing (API §13): an app served in busted's own Lua state,
-- requests over loopback through the production code path.
assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath

local moonlet = require "moonlet"
local testing = require "moonlet.testing"

local function make_app()
  local app = moonlet.app()
  app:get("/hello/<name>", function(req)
    return "hello " .. req.params.name
  end)
  app:get("/echo", function(req)
    return { q = req.query.q, agent = req.headers["x-test"] }
  end)
  app:post("/items", function(req)
    return { got = req:json() }, 201
  end)
  app:route("/raw", { methods = { "PUT", "DELETE" } }, function(req)
    return req.method .. " " .. req.body
  end)
  app:get("/nap/<s>", function(req)
    moonlet.sleep(tonumber(req.params.s))
    return "napped"
  end)
  app:get("/boom", function() error("kaboom") end)
  app:get("/moved", function() return moonlet.redirect("/hello/there") end)
  return app
end

describe("moonlet.testing", function()
  local client

  setup(function()
    client = testing.client(make_app())
  end)

  it("serves on a free loopback port", function()
    assert.is_true(client.port > 0)
    assert.equal("http://127.0.0.1:" .. client.port, client.url)
  end)

  it("gets a path: status, headers, body", function()
    local res = client:get("/hello/ann")
    assert.equal(200, res.status)
    assert.equal("hello ann", res.body)
    assert.matches("^text/html", res.headers["Content-Type"])
  end)

  it("sends query strings and headers, and decodes JSON", function()
    local res = client:get("/echo?q=a%20b", { headers = { ["X-Test"] = "t1" } })
    assert.same({ q = "a b", agent = "t1" }, res:json())
  end)

  it("posts a table as JSON and a string as is", function()
    local res = client:post("/items", { name = "pen" })
    assert.equal(201, res.status)
    assert.equal("pen", res:json().got.name)
    res = client:post("/items", '{"n":2}',
      { headers = { ["Content-Type"] = "application/json" } })
    assert.equal(2, res:json().got.n)
  end)

  it("sends any method with request{}", function()
    local res = client:request{ method = "PUT", path = "/raw", body = "x=1" }
    assert.equal("PUT x=1", res.body)
    assert.equal("DELETE ", client:request{ method = "DELETE",
      path = "/raw" }.body)
    assert.equal(405, client:get("/raw").status)
  end)

  it("answers a handler's error with a 500", function()
    assert.equal(500, client:get("/boom").status)
  end)

  it("does not follow redirects unless asked", function()
    local res = client:get("/moved")
    assert.equal(302, res.status)
    assert.equal("/hello/there", res.headers.location)
    res = client:get("/moved", { follow_redirects = true })
    assert.equal("hello there", res.body)
  end)

  it("runs the loop while a handler waits", function()
    local t0 = moonlet.now()
    assert.equal("napped", client:get("/nap/0.05").body)
    assert.is_true(moonlet.now() - t0 >= 0.04)
  end)

  it("serves requests started together concurrently", function()
    local t0 = moonlet.now()
    local a = client:start{ path = "/nap/0.2" }
    local b = client:start{ path = "/nap/0.2" }
    assert.equal("napped", a.wait().body)
    assert.equal("napped", b.wait().body)
    assert.is_true(moonlet.now() - t0 < 0.35)
  end)

  it("raises with the reason when no response comes", function()
    assert.has_error(function()
      client:get("/nap/2", { timeout = 0.1 })
    end, "moonlet.testing: GET /nap/2: timeout")
    assert.has_error(function() client:get("hello") end)
  end)

  it("runs a function with the loop turning", function()
    assert.equal(3, client:run(function(x) moonlet.sleep(0.01) return x end, 3))
  end)

  it("shows the status and body of a failing response", function()
    local res = client:get("/nowhere")
    assert.equal("HTTP 404\n404 Not Found", tostring(res):gsub("\n$", ""))
    local ok, err = pcall(assert.status, 200, res)
    assert.is_false(ok)
    assert.matches("Expected HTTP status 200; the response was:\nHTTP 404\n"
      .. "404 Not Found", tostring(err))
    assert.status(404, res)
  end)
end)

describe("moonlet.testing with an app file", function()
  it("loads the file in this state and serves it", function()
    local client = testing.client("apps/hello.lua")
    assert.status(200, client:get("/"))
    assert.equal("Hello, World!", client:get("/").body)
  end)

  it("raises a load error with the file and line", function()
    local path = os.tmpname() .. ".lua"
    local f = io.open(path, "w")
    f:write("local x = \nerror('broken app')\n")
    f:close()
    assert.has_error(function() testing.client(path) end)
    os.remove(path)
  end)
end)

describe("client:stub_http", function()
  local client

  setup(function()
    local app = moonlet.app()
    -- fetches the url in ?u= and reports what came back
    app:get("/fetch", function(req)
      local res, err = moonlet.http.request{ method = req.query.m or "GET",
        url = req.query.u, body = req.query.b }
      if not res then
        return { err = err }
      end
      return { status = res.status, body = res.body,
        type = res.headers["Content-Type"],
        name = res.headers["content-type"] == "application/json"
          and res:json().name or nil }
    end)
    app:get("/get", function(req)
      local res, err = moonlet.http.get(req.query.u)
      return res and { status = res.status, body = res.body } or { err = err }
    end)
    app:get("/self", function() return "from the network" end)
    client = testing.client(app)
  end)

  local function fetch(u, extra)
    return client:get("/fetch?u=" .. u .. (extra or "")):json()
  end

  it("answers with a table, a table body as JSON", function()
    local st = client:stub_http("http://api.example/users/",
      { status = 200, body = { name = "ann" } })
    local v = fetch("http://api.example/users/1")
    assert.same({ status = 200, body = '{"name":"ann"}',
      type = "application/json", name = "ann" }, v)
    assert.equal(1, st.calls)
  end)

  it("answers with a function that sees the request and may wait", function()
    local seen
    client:stub_http("http://pay.example", function(req)
      seen = req
      moonlet.sleep(0.01)
      return { status = 201, headers = { ["X-Id"] = "7" },
        body = req.method .. " " .. req.body }
    end)
    local v = fetch("http://pay.example/charge", "&m=post&b=ten")
    assert.equal(201, v.status)
    assert.equal("POST ten", v.body)
    assert.equal("POST", seen.method)
    assert.equal("http://pay.example/charge", seen.url)
  end)

  it("answers moonlet.http.get(url) without options too", function()
    local st = client:stub_http("http://api.example/plain", { body = "s" })
    assert.same({ status = 200, body = "s" },
      client:get("/get?u=http://api.example/plain"):json())
    assert.equal(1, st.calls)
  end)

  it("passes a function's nil, err on as moonlet.http's error", function()
    client:stub_http("http://down.example", function()
      return nil, "connection refused"
    end)
    assert.same({ err = "connection refused" }, fetch("http://down.example/x"))
  end)

  it("picks the longest prefix, and nil removes a stub", function()
    client:stub_http("http://api.example/", { status = 500 })
    client:stub_http("http://api.example/users/", { status = 200, body = "u" })
    assert.equal(200, fetch("http://api.example/users/2").status)
    assert.equal(500, fetch("http://api.example/other").status)
    client:stub_http("http://api.example/users/", nil)
    assert.equal(500, fetch("http://api.example/users/2").status)
  end)

  it("stubs https:// URLs too", function()
    client:stub_http("https://secure.example", { body = "tls-free" })
    assert.equal("tls-free", fetch("https://secure.example/a").body)
  end)

  it("leaves other URLs to the network", function()
    client:stub_http("http://api.example/", { status = 500 })
    local v = fetch(client.url .. "/self")
    assert.same({ status = 200, body = "from the network",
      type = "text/html; charset=utf-8" }, v)
  end)

  it("checks its arguments", function()
    assert.has_error(function() client:stub_http(nil, {}) end)
    assert.has_error(function() client:stub_http("http://x", 42) end)
  end)
end)

describe("virtual time", function()
  local client, ticks

  setup(function()
    ticks = 0
    local app = moonlet.app()
    app:get("/poll", function()
      local v, err = moonlet.future():get(30)   -- nobody sets it
      return { v = v, err = err }
    end)
    app:get("/nap/<float:s>", function(_, s)
      local t0 = moonlet.now()
      moonlet.sleep(s)
      return { slept = moonlet.now() - t0 }
    end)
    app:get("/queue", function()
      local v, err = moonlet.queue():get(5)
      return { v = v, err = err }
    end)
    app:get("/timeout", function()
      local v, err = moonlet.timeout(2, function() moonlet.sleep(10) end)
      return { v = v, err = err }
    end)
    app:get("/every", function()
      moonlet.every(60, function() ticks = ticks + 1 end)
      return "started"
    end)
    app:get("/after", function()
      moonlet.after(0.5, function() ticks = ticks + 100 end)
      return "set"
    end)
    app:get("/yield", function()
      moonlet.sleep(0)                  -- "let others run": no advance
      return "yielded"
    end)
    app:get("/silent/<int:port>", function(_, port)
      local res, err = moonlet.http.request{
        url = "http://127.0.0.1:" .. port .. "/", timeout = 30 }
      return { status = res and res.status, err = err }
    end)
    client = testing.client(app, { virtual_time = true })
  end)

  it("times out an outbound request when the clock says so", function()
    local l = assert(require("socket").bind("127.0.0.1", 0))
    local _, port = l:getsockname()      -- listens, never answers
    local wall = os.time()
    local p = client:start{ path = "/silent/" .. port }
    client.clock:advance(29.9)
    assert.is_false(p.done())
    client.clock:advance(0.1)
    assert.same({ err = "timeout" }, p.wait():json())
    assert.is_true(os.time() - wall <= 1)
    l:close()
  end)

  it("runs a 30 s long-poll in milliseconds", function()
    local wall = os.time()
    local p = client:start{ path = "/poll" }
    client.clock:advance(29.9)
    client.clock:advance(0.1)
    assert.same({ err = "timeout" }, p.wait():json())
    assert.is_true(os.time() - wall <= 1)
  end)

  it("wakes a sleep only when the clock reaches it", function()
    local a = client:start{ path = "/nap/10" }
    local b = client:start{ path = "/nap/3" }
    client.clock:advance(3)
    assert.same({ slept = 3 }, b.wait():json())
    client.clock:advance(7)
    assert.same({ slept = 10 }, a.wait():json())
  end)

  it("times out queue gets and moonlet.timeout", function()
    local q = client:start{ path = "/queue" }
    local t = client:start{ path = "/timeout" }
    client.clock:advance(5)
    assert.same({ err = "timeout" }, q.wait():json())
    assert.same({ err = "timeout" }, t.wait():json())
  end)

  it("fires every and after timers in order", function()
    assert.equal("started", client:get("/every").body)
    client.clock:advance(59)
    assert.equal(0, ticks)
    assert.equal("set", client:get("/after").body)
    client.clock:advance(301)     -- every: 60, 120 ... 360; after: 59.5
    assert.equal(106, ticks)
  end)

  it("keeps moonlet.now on the virtual clock", function()
    local t0 = client:run(moonlet.now)
    client.clock:advance(12.5)
    assert.equal(12.5, client.clock:now() - t0)
  end)

  it("lets a zero sleep yield without an advance", function()
    assert.equal("yielded", client:get("/yield").body)
  end)

  it("says why a plain get of a waiting handler timed out", function()
    assert.has_error(function()
      client:get("/nap/1", { timeout = 0.1 })
    end, "moonlet.testing: GET /nap/1: timeout (a handler waiting on the "
      .. "virtual clock needs client:start and client.clock:advance)")
  end)

  it("refuses to advance without virtual time", function()
    local real = testing.client(moonlet.app())
    assert.is_nil(real.clock)
    assert.has_error(function() client.clock:advance(1) end,
      "clock:advance: virtual time is off")
  end)
end)
