-- Responses (API §5), through a real server: spec/apps/response.lua, once
-- as is and once with --debug.
local H = require "helpers"
local cjson = require "cjson"

local APP = "spec/apps/response.lua"

-- The line of the app file with "-- MARK: <name>" on it.
local function mark(name)
  local n = 0
  for line in io.lines(APP) do
    n = n + 1
    if line:find("-- MARK: " .. name .. "$") then return n end
  end
  error("no mark " .. name .. " in " .. APP)
end

local raw_exchange, header_values = H.exchange, H.header_values

local function raw_get(port, path)
  return raw_exchange(port, "GET " .. path .. " HTTP/1.1\r\nHost: t\r\n"
    .. "Connection: close\r\n\r\n")
end

describe("responses (API §5)", function()
  local srv, dbg

  lazy_setup(function()
    srv = H.start(APP)
    dbg = H.start(APP, { args = { "--debug" } })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if dbg then dbg:stop() end
  end)

  describe("return forms", function()
    it("a string is 200 text/html; charset=utf-8", function()
      local res = H.get(srv, "/string")
      assert.equal(200, res.status)
      assert.equal("text/html; charset=utf-8", res.headers["content-type"])
      assert.equal("hello", res.body)
      assert.equal("5", res.headers["content-length"])
    end)

    it("a plain table is 200 JSON", function()
      local res = H.get(srv, "/table")
      assert.equal(200, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      assert.same({ a = 1, s = "x", list = { 1, 2, 3 }, nested = { ok = true } },
                  cjson.decode(res.body))
      res = H.get(srv, "/empty-table")
      assert.equal(200, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      assert.equal("table", type(cjson.decode(res.body)))
    end)

    it("body, status", function()
      local res = H.get(srv, "/status")
      assert.equal(201, res.status)
      assert.equal("created", res.body)
      assert.equal("text/html; charset=utf-8", res.headers["content-type"])
      res = H.get(srv, "/json-status")
      assert.equal(201, res.status)
      assert.matches("^application/json", res.headers["content-type"])
      assert.same({ made = true }, cjson.decode(res.body))
    end)

    it("body, status, headers; a list value repeats the header", function()
      local res = H.get(srv, "/headers")
      assert.equal(202, res.status)
      assert.equal("with headers", res.body)
      assert.equal("1", res.headers["x-one"])
      assert.equal("42", res.headers["x-num"])
      assert.same({ "a", "b" }, header_values(res, "X-Multi"))
      -- the handler's Content-Type replaces the default, once
      assert.same({ "text/plain" }, header_values(res, "Content-Type"))
      assert.same({ tostring(#"with headers") },
                  header_values(res, "Content-Length"))
    end)

    it("nothing is 204 without a body", function()
      local res = H.get(srv, "/nothing")
      assert.equal(204, res.status)
      assert.is_nil(res.headers["content-length"])
      local raw = raw_get(srv.port, "/nothing")
      assert.matches("^HTTP/1%.1 204", raw)
      local head_end = raw:find("\r\n\r\n", 1, true)
      assert.truthy(head_end, raw)
      assert.equal("", raw:sub(head_end + 4))
    end)

    it("moonlet.response{status=, headers=, body=} is sent as given", function()
      local res = H.get(srv, "/response")
      assert.equal(418, res.status)
      assert.equal("y", res.headers["x-r"])
      assert.equal("teapot", res.body)
      res = H.get(srv, "/response-default")
      assert.equal(200, res.status)
      assert.equal("", res.body)
      assert.equal("0", res.headers["content-length"])
    end)

    it("moonlet.redirect(url) is a 302 with Location", function()
      local res = H.get(srv, "/redirect")
      assert.equal(302, res.status)
      assert.equal("/string", res.headers["location"])
    end)

    it("moonlet.redirect(url, 301)", function()
      local res = H.get(srv, "/redirect301")
      assert.equal(301, res.status)
      assert.equal("/string", res.headers["location"])
    end)
  end)

  describe("abort and error handlers", function()
    it("moonlet.abort(403) from a nested function gives 403", function()
      local res = H.get(srv, "/abort403")
      assert.equal(403, res.status)
      assert.matches("Forbidden", res.body)
      assert.not_matches("not reached", res.body)
    end)

    it("abort with a message and no handler uses the message", function()
      local res = H.get(srv, "/abort409")
      assert.equal(409, res.status)
      assert.matches("conflict here", res.body, 1, true)
    end)

    it("app:errorhandler(404) renders unknown paths", function()
      local res = H.get(srv, "/no/such/page")
      assert.equal(404, res.status)
      assert.equal("custom 404: none for /no/such/page", res.body)
    end)

    it("app:errorhandler(404) renders abort(404, msg) with err.message", function()
      local res = H.get(srv, "/abort404")
      assert.equal(404, res.status)
      assert.equal("custom 404: no such thing for /abort404", res.body)
    end)

    it("a mounted app's errorhandler renders its routes' errors", function()
      local res = H.get(srv, "/eh/abort409")
      assert.equal(409, res.status)
      assert.equal("sub 409: in sub", res.body)
      -- no 404 handler in the sub-app: the parent's renders it
      res = H.get(srv, "/eh/abort404")
      assert.equal(404, res.status)
      assert.equal("custom 404: from sub for /eh/abort404", res.body)
    end)

    it("an errorhandler that returns nothing keeps the error status", function()
      local res = H.get(srv, "/abort401")
      assert.equal(401, res.status)
      assert.matches("Unauthorized", res.body)
      assert.truthy(H.wait_for_log(srv, "unauthorized: /abort401"), srv:log())
    end)

    it("app:errorhandler(500) gets err.status and err.traceback", function()
      local res = H.get(srv, "/eh/boom")
      assert.equal(500, res.status)
      local v = cjson.decode(res.body)
      assert.equal(500, v.status)
      assert.matches("sub kaboom", v.message, 1, true)
      assert.equal("string", type(v.traceback))
      assert.matches("sub kaboom", v.traceback, 1, true)
      assert.matches("response%.lua:" .. mark("sub boom") .. ":", v.traceback)
      assert.is_true(v.has_line)
    end)
  end)

  describe("uncaught errors", function()
    it("give 500, logged with the request line and file:line", function()
      local res = H.get(srv, "/boom")
      assert.equal(500, res.status)
      local line = mark("boom")
      local logged = H.wait_for_log(srv, "GET /boom[^\n]*")
      assert.truthy(logged, srv:log())
      assert.truthy(H.wait_for_log(srv, "response%.lua:" .. line .. ":"),
                    srv:log())
      assert.matches("kaboom", srv:log(), 1, true)
    end)

    it("never put the traceback in the body without --debug", function()
      for _, p in ipairs { "/boom", "/boom-deep" } do
        local res = H.get(srv, p)
        assert.equal(500, res.status)
        assert.not_matches("traceback", res.body, 1, true)
        assert.not_matches("response%.lua", res.body)
        assert.not_matches("kaboom", res.body, 1, true)
      end
    end)

    it("do not stop the server: the next request is served", function()
      assert.equal(500, H.get(srv, "/boom").status)
      local res = H.get(srv, "/string")
      assert.equal(200, res.status)
      assert.equal("hello", res.body)
    end)

    it("a failed index in a nested function logs its line", function()
      assert.equal(500, H.get(srv, "/boom-deep").status)
      assert.truthy(H.wait_for_log(srv, "GET /boom%-deep"), srv:log())
      assert.truthy(H.wait_for_log(srv, "response%.lua:" .. mark("deep")
        .. ":"), srv:log())
    end)

    it("with --debug the body has the traceback", function()
      local res = H.get(dbg, "/boom")
      assert.equal(500, res.status)
      assert.matches("kaboom", res.body, 1, true)
      assert.matches("traceback", res.body, 1, true)
      assert.matches("response%.lua:" .. mark("boom") .. ":", res.body)
    end)
  end)

  describe("invalid return values are 500", function()
    for _, case in ipairs {
      { "/number", "a number" },
      { "/boolean", "a boolean" },
      { "/badstatus", "status 99" },
      { "/badstatus-big", "status 1000" },
      { "/badheaders", "headers that are a string" },
      { "/badbody", "moonlet.response with a table body" },
      { "/after-badstatus", "an after hook setting a string status" },
      { "/after-badheaders", "an after hook setting string headers" },
    } do
      it(case[2] .. " (" .. case[1] .. ")", function()
        local res = H.get(srv, case[1])
        assert.equal(500, res.status)
        assert.truthy(H.wait_for_log(srv, "GET " .. case[1]:gsub("%-", "%%-")
          .. " HTTP/1%.1 %(from 127%.0%.0%.1, request %x+%):"), srv:log())
        assert.equal(200, H.get(srv, "/string").status)
      end)
    end
  end)

  it("moonlet.response with a bad body blames the caller's line", function()
    assert.equal(500, H.get(srv, "/badbody").status)
    assert.truthy(H.wait_for_log(srv, "GET /badbody HTTP[^\n]*: [^\n]*response%.lua:"
      .. mark("badbody") .. ":"), srv:log())
  end)

  describe("hooks", function()
    it("app:before returning a response skips the handler", function()
      local before = tonumber(H.get(srv, "/counted").body)
      local res = H.get(srv, "/counted", { headers = { ["X-Short"] = "1" } })
      assert.equal(203, res.status)
      assert.equal("short-circuited", res.body)
      assert.equal("yes", res.headers["x-before"])
      local after = tonumber(H.get(srv, "/counted").body)
      assert.equal(before + 1, after)   -- the short-circuit did not count
    end)

    it("app:before returning nothing lets the handler run", function()
      assert.equal("hello", H.get(srv, "/string").body)
    end)

    it("app:after may change status, headers and body", function()
      local res = H.get(srv, "/after")
      assert.equal(201, res.status)
      assert.equal("yes", res.headers["x-after"])
      assert.is_nil(res.headers["x-orig"])
      assert.equal("body (after)", res.body)
      assert.equal(tostring(#"body (after)"), res.headers["content-length"])
    end)

    it("app:after gets a copy of a headers table the handler keeps",
       function()
      for _ = 1, 2 do
        local res = H.get(srv, "/json-kept")
        assert.equal(201, res.status)
        assert.equal("yes", res.headers["x-kept"])
        assert.equal("application/json", res.headers["content-type"])
      end
      assert.equal("1", H.get(srv, "/kept").body)  -- no Content-Type added
    end)

    it("app:after sees JSON responses and keeps their type", function()
      local res = H.get(srv, "/after-json")
      assert.equal(200, res.status)
      assert.equal("json", res.headers["x-after"])
      assert.matches("^application/json", res.headers["content-type"])
      assert.same({ v = 1 }, cjson.decode(res.body))
    end)
  end)

  describe("cookies", function()
    it("moonlet.cookie builds a Set-Cookie header", function()
      local res = H.get(srv, "/cookie")
      assert.equal(200, res.status)
      assert.same({ "sid=abc; Path=/; HttpOnly; SameSite=Lax" },
                  header_values(res, "Set-Cookie"))
    end)

    it("a list of two cookies gives two Set-Cookie lines", function()
      local res = H.get(srv, "/cookies")
      local values = header_values(res, "Set-Cookie")
      assert.equal(2, #values)
      assert.equal("a=1", values[1])
      assert.matches("^b=2; Max%-Age=60; Expires=[^;]+ GMT; Secure$", values[2])
    end)
  end)

  describe("header injection", function()
    for _, p in ipairs { "/inject-value", "/inject-lf", "/inject-nul",
                         "/inject-name", "/inject-forge", "/inject-list",
                         "/inject-redirect",
                         "/inject-response", "/after-inject" } do
      it("CR/LF/NUL in a header is a logged 500, never sent (" .. p .. ")",
        function()
          local raw = raw_get(srv.port, p)
          assert.matches("^HTTP/1%.1 500", raw)
          local head = raw:sub(1, (raw:find("\r\n\r\n", 1, true) or #raw))
          assert.not_matches("Injected", raw, 1, true)
          assert.not_matches("X%-Evil", head)
          assert.not_matches("\0", raw, 1, true)
          assert.truthy(H.wait_for_log(srv, "GET " .. p:gsub("%-", "%%-")
            .. "[^\n]*header"), srv:log())
          -- the connection stays usable for others
          assert.equal(200, H.get(srv, "/string").status)
        end)
    end

    it("a bad header name cannot forge a line in the error log", function()
      assert.equal(500, H.get(srv, "/inject-forge").status)
      assert.truthy(H.wait_for_log(srv, "GET /inject%-forge"), srv:log())
      assert.not_matches("\n2001%-01%-01T00:00:00Z %[error%] forged",
                         srv:log())
      assert.matches("forged", srv:log(), 1, true)  -- escaped, still there
    end)
  end)
end)
