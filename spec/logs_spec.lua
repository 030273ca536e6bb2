--- Errors and logs: error handlers (a catch-all, a mounted app's own),
-- what the error log says of a request, the access log's formats and its
-- reopening, --debug's page, and a quick stop.
local H = require "helpers"
local json = require "cjson"

local APP = "spec/apps/errors_app.lua"

describe("error handlers", function()
  local srv
  setup(function() srv = H.start(APP) end)
  teardown(function() srv:stop() end)

  it("a catch-all handles every status without a handler of its own",
    function()
      local res = H.get(srv, "/teapot")
      assert.equal(418, res.status)
      assert.equal("root caught 418: short and stout", res.body)
      assert.equal("root 404 for /nowhere", H.get(srv, "/nowhere").body)
      res = H.request(srv, "POST", "/id")
      assert.equal(405, res.status)
      assert.matches("^root caught 405", res.body)
      assert.equal("GET, HEAD, OPTIONS", res.headers["allow"]:gsub(",%s*", ", "))
    end)

  it("a mounted app's handlers answer 404 and 405 under its prefix",
    function()
      local res = H.get(srv, "/api/nothing")
      assert.equal(404, res.status)
      assert.same({ error = 404, has_detail = false }, json.decode(res.body))
      res = H.request(srv, "DELETE", "/api/items")
      assert.equal(405, res.status)
      assert.equal(405, json.decode(res.body).error)
      assert.equal("root 404 for /apix", H.get(srv, "/apix").body)
    end)

  it("a 500's err.message is safe to show; file:line is in err.detail",
    function()
      local res = H.get(srv, "/api/crash")
      assert.equal(500, res.status)
      local v = json.decode(res.body)
      assert.equal("kaboom in the api", v.message)
      assert.is_true(v.has_detail)
      res = H.get(srv, "/boom")
      assert.equal("root caught 500: kaboom at the root", res.body)
    end)
end)

describe("the logs", function()
  local srv, dir, access
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    os.execute("mkdir -p " .. dir)
    access = dir .. "/access.log"
    srv = H.start(APP, { args = { "--access-log", access } })
  end)
  teardown(function()
    srv:stop()
    os.execute("rm -rf " .. H.quote(dir))
  end)

  local function last_line(path)
    local text = H.slurp(path)
    return text:match("([^\n]*)\n$")
  end

  it("name the request line, client and request id, the same in both",
    function()
      H.get(srv, "/boom?x=1&y=2", { headers = { Referer = "http://ref/",
        ["User-Agent"] = 'agent "q"' } })
      local id = H.wait_for_log(srv, "GET /boom%?x=1&y=2 HTTP/1%.1 %(from "
        .. "127%.0%.0%.1, request (%x+)%): [^\n]*kaboom at the root")
      assert.truthy(id, srv:log())
      local line
      local deadline = H.now() + 2
      repeat
        line = last_line(access)
        H.pause(0.02)
      until (line and line:find(id, 1, true)) or H.now() > deadline
      assert.matches('^127%.0%.0%.1 %- %- %[%d+/%a+/%d+:%d+:%d+:%d+ %+0000%] '
        .. '"GET /boom%?x=1&y=2 HTTP/1%.1" 500 %d+ "http://ref/" '
        .. '"agent \\"q\\"" ' .. id .. ' %d+%.%d+$', line)
      assert.equal(16, #id)
    end)

  it("req.id is the id the logs show", function()
    local res = H.get(srv, "/id")
    assert.matches("^%x+$", res.body)
    H.pause(0.1)
    assert.matches(" " .. res.body .. " ", last_line(access), 1, true)
  end)

  it("reopens the access log on SIGUSR1 (logrotate)", function()
    H.get(srv, "/id")
    H.pause(0.1)
    os.rename(access, access .. ".1")
    os.execute("kill -USR1 " .. srv.pid)
    assert.truthy(H.wait_for_log(srv, "SIGUSR1: reopened the access log"))
    H.get(srv, "/id?after")
    H.pause(0.1)
    assert.matches("/id%?after", H.slurp(access))
    assert.not_matches("/id%?after", H.slurp(access .. ".1"))
  end)
end)

describe("the JSON-lines access log", function()
  it("has one object per response", function()
    local srv = H.start(APP, { args = { "--access-log", "-",
      "--access-log-format", "json" } })
    H.get(srv, "/id?q=%22", { headers = { ["User-Agent"] = 'a "b" \\' } })
    H.pause(0.2)
    srv:kill("TERM")
    local line = H.slurp(srv.out):match("\n({[^\n]*})")
    srv:stop()
    local v = json.decode(line)
    assert.equal("GET", v.method)
    assert.equal("/id?q=%22", v.url)
    assert.equal(200, v.status)
    assert.equal('a "b" \\', v.user_agent)
    assert.equal(json.null, v.referer)
    assert.matches("^%x+$", v.request_id)
    assert.equal("number", type(v.duration))
  end)

  it("refuses another format name", function()
    local code, _, err = H.cli({ "run", APP, "--access-log-format", "xml" })
    assert.equal(2, code)
    assert.matches("combined", err)
  end)
end)

describe("--debug", function()
  it("shows an HTML page with the traceback and the source lines", function()
    local srv = H.start(APP, { args = { "--debug" } })
    local plain = H.start("spec/apps/json_app.lua", { args = { "--debug" } })
    local res = H.get(plain, "/table-error")
    plain:stop()
    assert.equal(500, res.status)
    assert.matches("^text/html", res.headers["content-type"])
    assert.matches("<h1>500 Internal Server Error</h1>", res.body, 1, true)
    assert.matches("stack traceback:", res.body, 1, true)
    assert.matches("spec/apps/json_app.lua:51", res.body, 1, true)
    assert.matches('class="hit">%s+51  %s+error%({ code = 7', res.body)
    srv:stop()
  end)
end)

describe("stopping", function()
  it("an idle server exits at once on SIGTERM", function()
    local srv = H.start(APP)
    local t0 = H.now()
    local status = srv:kill("TERM", 5)
    local took = H.now() - t0
    srv:stop()
    assert.equal(0, status)
    assert.is_true(took < 0.8, ("took %.2f s"):format(took))
  end)
end)
