-- The moonlet command line (API §1).
local H = require "helpers"

describe("moonlet version", function()
  it("names moonlet, Lua, libuv, llhttp and OpenSSL", function()
    local code, out = H.cli { "version" }
    assert.equal(0, code)
    assert.matches("^moonlet %d+%.%d+%.%d+ %(Lua 5%.4%.%d+, libuv %d+%.%d+%.%d+, "
      .. "llhttp %d+%.%d+%.%d+, OpenSSL %d+%.%d+%.%d+%)\n$", out)
  end)
end)

describe("bad usage", function()
  it("exits 2 with a usage message", function()
    for _, args in ipairs {
      {}, { "--nope" }, { "run" }, { "run", "apps/hello.lua", "--port", "x" },
      { "run", "apps/hello.lua", "--port", "70000" },
      { "run", "apps/hello.lua", "--log-level", "loud" },
      { "run", "apps/hello.lua", "--max-body", "lots" },
      { "run", "apps/hello.lua", "--frobnicate" },
      { "run", "apps/hello.lua", "--port" },
      { "run", "apps/hello.lua", "extra" },
    } do
      local code, _, err = H.cli(args)
      assert.equal(2, code, table.concat(args, " "))
      assert.matches("usage: moonlet run APP.lua", err)
    end
  end)

  it("prints help on --help", function()
    local code, out = H.cli { "--help" }
    assert.equal(0, code)
    assert.matches("%-%-max%-body", out)
  end)
end)

describe("an app that cannot load", function()
  it("is one clear line when the file is missing", function()
    local code, out, err = H.cli { "run", "no/such/app.lua" }
    assert.equal(1, code)
    assert.equal("", out)
    assert.matches("cannot open no/such/app.lua: No such file or directory",
      err)
    assert.equal(1, select(2, err:gsub("\n", "")))
  end)

  it("names file:line for a syntax error", function()
    local path = H.write_app("local x = = 1\n")
    local code, _, err = H.cli { "run", path }
    assert.equal(1, code)
    assert.matches(path:gsub("%p", "%%%0") .. ":1:", err)
  end)

  it("names file:line for an error at load time", function()
    local path = H.write_app("local a = 1\nerror('no config')\n")
    local code, _, err = H.cli { "run", path }
    assert.equal(1, code)
    assert.matches(path:gsub("%p", "%%%0") .. ":2: no config", err)
  end)

  it("says so when the file returns no app", function()
    local path = H.write_app("local moonlet = require 'moonlet'\n")
    local code, _, err = H.cli { "run", path }
    assert.equal(1, code)
    assert.matches("must end with 'return app'", err)
  end)
end)

describe("moonlet routes", function()
  it("lists METHODS PATTERN NAME, one line per route", function()
    local path = H.write_app([[
local moonlet = require "moonlet"
local app = moonlet.app()
app:get("/", function() end)
app:route("/user/<int:id>", { methods = { "GET", "POST" }, name = "user" },
  function() end)
return app
]])
    local code, out = H.cli { "routes", path }
    assert.equal(0, code)
    local lines = {}
    for line in out:gmatch("[^\n]+") do
      lines[#lines + 1] = { line:match("^(%S+)%s+(%S+)%s+(%S+)$") }
    end
    assert.same({ { "GET", "/", "-" },
      { "GET,POST", "/user/<int:id>", "user" } }, lines)
  end)
end)

describe("moonlet run", function()
  it("accepts the short form and prints the listening line", function()
    local srv = H.start("apps/hello.lua", { command = "" })
    assert.equal("moonlet listening on http://127.0.0.1:" .. srv.port .. "\n",
      H.slurp(srv.out))
    assert.equal("Hello, World!", H.get(srv, "/").body)
    assert.equal(0, srv:stop())
  end)

  it("takes host and port from MOONLET_HOST and MOONLET_PORT", function()
    local srv = H.start("apps/hello.lua", { port = false,
      env = "MOONLET_HOST=127.0.0.1 MOONLET_PORT=0" })
    assert.equal(200, H.get(srv, "/").status)
    assert.equal(0, srv:stop())
  end)

  it("lets flags override the environment", function()
    local srv = H.start("apps/hello.lua", { env = "MOONLET_HOST=no.such.host.invalid",
      args = { "--host", "127.0.0.1" } })
    assert.equal(200, H.get(srv, "/").status)
    srv:stop()
  end)

  it("stops on SIGINT with status 0", function()
    local srv = H.start("apps/hello.lua")
    assert.equal(0, srv:kill("INT"))
    srv:stop()
  end)

  it("lets in-flight requests finish on SIGTERM, then exits 0", function()
    local srv = H.start("apps/sleep.lua")
    local c = H.raw(srv.port)
    c:send("GET /sleep/1 HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.2)
    local t0 = H.now()
    os.execute("kill -TERM " .. srv.pid)
    H.pause(0.2)
    -- no new connections once stopping
    local late = require("socket").tcp()
    late:settimeout(1)
    assert.is_nil(late:connect("127.0.0.1", srv.port))
    local res = H.read_response(c)
    assert.equal(200, res.status)
    assert.equal("close", res.headers.connection)
    assert.equal("Slept for 1 seconds", res.body)
    assert.equal(0, srv:kill("TERM", 5))
    assert.is_true(H.now() - t0 < 2)
    srv:stop()
  end)

  it("writes an access log line per response", function()
    local log = os.tmpname()
    local srv = H.start("apps/hello.lua", { args = { "--access-log", log } })
    H.get(srv, "/")
    H.get(srv, "/missing?x=1")
    srv:stop()
    local text = H.slurp(log)
    os.remove(log)
    assert.matches('127%.0%.0%.1 %- %- %[[^]]+%] "GET / HTTP/1%.1" 200 13 ', text)
    assert.matches('"GET /missing%?x=1 HTTP/1%.1" 404 ', text)
  end)

  it("writes the access log to stdout with -", function()
    local srv = H.start("apps/hello.lua", { args = { "--access-log", "-" } })
    H.get(srv, "/")
    assert.truthy(H.wait_for_log({ log = function() return H.slurp(srv.out) end },
      '"GET / HTTP/1%.1" 200'))
    srv:stop()
  end)

  it("drops messages below --log-level", function()
    local srv = H.start("apps/hello.lua", { args = { "--log-level", "error" } })
    srv:kill("TERM")
    assert.not_matches("%[info%]", srv:log())
    srv:stop()
    local srv2 = H.start("apps/hello.lua")
    srv2:kill("TERM")
    assert.matches("%[info%] SIGTERM: stopping", srv2:log())
    srv2:stop()
  end)
end)
