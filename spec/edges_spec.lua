-- Smaller things a hostile review of the server found: repeated Cookie
-- lines, "OPTIONS *", a static root beside a route ending in '/', a
-- stream written after its handler returned, and JSON bodies that are
-- not JSON.  The app and its static directory are written to a temp dir.
local H = require "helpers"
local cjson = require "cjson"

local APP = [[
local moonlet = require "moonlet"
local app = moonlet.app()
local late = "none"
app:get("/cookies", function(req)
  return { header = req.headers.cookie, fn = req:header("Cookie"),
    a = req.cookies.a or "nil", b = req.cookies.b or "nil" }
end)
app:get("/docs/", function() return "docs" end)
app:route("/items", { methods = { "GET", "POST" } }, function() end)
app:post("/json", function(req) return { got = req:json() } end)
app:get("/late", function(req)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  out:write("a")
  moonlet.spawn(function()
    moonlet.sleep(0.1)
    local ok, err = out:write("late")
    late = tostring(ok) .. " " .. tostring(err)
  end)
end)
app:get("/late/result", function() return late end)
app:static("/", "www")
return app
]]

describe("edges", function()
  local srv

  setup(function()
    local app, dir = H.write_app(APP)
    os.execute("mkdir -p " .. H.quote(dir .. "/www"))
    local f = assert(io.open(dir .. "/www/a.txt", "w"))
    f:write("file a\n")
    f:close()
    srv = H.start(app)
  end)
  teardown(function() srv:stop() end)

  it("joins Cookie lines with '; ', so each cookie is seen", function()
    local c = H.raw(srv.port)
    c:send("GET /cookies HTTP/1.1\r\nHost: t\r\nCookie: a=1\r\nCookie: b=2"
      .. "\r\nConnection: close\r\n\r\n")
    local res = cjson.decode(assert(H.read_response(c)).body)
    c:close()
    assert.equal("a=1; b=2", res.header)
    assert.equal("a=1; b=2", res.fn)
    assert.equal("1", res.a)
    assert.equal("2", res.b)
  end)

  it("answers OPTIONS * with 200 and every method the app takes",
    function()
      local c = H.raw(srv.port)
      c:send("OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      local res = assert(H.read_response(c))
      c:close()
      assert.equal(200, res.status)
      assert.equal("GET, HEAD, OPTIONS, POST", res.headers["allow"])
    end)

  it("redirects /docs to /docs/ beside a static root, and serves files",
    function()
      local res = H.get(srv, "/docs?x=1")
      assert.equal(308, res.status)
      assert.equal("/docs/?x=1", res.headers["location"])
      assert.equal("docs", H.get(srv, "/docs/").body)
      assert.equal("file a\n", H.get(srv, "/a.txt").body)
      assert.equal(404, H.get(srv, "/b.txt").status)
    end)

  it("answers nil, 'closed' to out:write after the handler returned",
    function()
      local res = H.get(srv, "/late")
      assert.equal("a", res.body)
      H.pause(0.3)
      assert.equal("nil closed", H.get(srv, "/late/result").body)
    end)

  for name, body in pairs {
    ["invalid UTF-8"] = '{"a": "\xff\xfe"}',
    ["NaN"] = '{"a": NaN}',
    ["Infinity"] = '[Infinity]',
  } do
    it("answers 400 to req:json() of a body with " .. name, function()
      local res = H.post(srv, "/json", body,
        { headers = { ["Content-Type"] = "application/json" } })
      assert.equal(400, res.status)
    end)
  end
end)
