-- API §10: limits and errors on the wire.  Each refused request must
-- never reach a handler (the app counts the ones that do, at /hits), must
-- close its connection, and must leave the worker serving.
local H = require "helpers"

local function hits(srv)
  local res = H.get(srv, "/hits")
  assert.are.equal(200, res.status)
  return tonumber(res.body)
end

-- Reads until the server closes; true when it closed with nothing more.
local function closed_by_server(c, timeout)
  c:settimeout(timeout or 3)
  local data, err, partial = c:receive("*a")
  local rest = data or partial
  return (err == nil or err == "closed") and rest == "", rest, err
end

-- Sends text on a new connection and reads one response.
local function send_raw(srv, text)
  local c = H.raw(srv.port)
  assert(c:send(text))
  local res, err = H.read_response(c)
  return res or error("no response: " .. tostring(err)), c
end

-- Sends text and expects 'status', then a closed connection, a handler
-- never run, and a fresh connection still served.
local function refused(srv, text, status)
  local before = hits(srv)
  local res, c = send_raw(srv, text)
  assert.are.equal(status, res.status, res.status_line)
  assert.are.equal("close", res.headers.connection)
  local closed, rest, err = closed_by_server(c)
  c:close()
  assert.is_true(closed, ("not closed: %q %s"):format(tostring(rest),
    tostring(err)))
  assert.are.equal(before, hits(srv), "the request reached a handler")
  local ok = H.get(srv, "/")
  assert.are.equal(200, ok.status)
  assert.are.equal(before + 1, hits(srv))
  assert.is_nil(srv:status(), "the server exited")
  return res
end

local function req(method, path, extra, body)
  return ("%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n%s"):format(method, path,
    extra or "", body or "")
end

describe("limits (§10)", function()
  describe("with small limits from flags", function()
    local srv

    setup(function()
      srv = H.start("spec/apps/limits_app.lua", { args = {
        "--max-body", "1k", "--max-url", "100", "--max-headers", "200",
        "--header-timeout", "0.5", "--keepalive-timeout", "0.5" } })
    end)

    teardown(function()
      -- a clean exit after SIGTERM: no crash, no sanitizer report
      local log = srv:log()
      assert.are.equal(0, srv:stop(), log)
    end)

    it("serves a request within every limit", function()
      local before = hits(srv)
      local res = H.post(srv, "/", ("b"):rep(1024))
      assert.are.equal(200, res.status)
      assert.are.equal("ok 1024", res.body)
      assert.are.equal(before + 1, hits(srv))
    end)

    it("answers 413 to a Content-Length over --max-body", function()
      refused(srv, req("POST", "/", "Content-Length: 1025\r\n",
        ("b"):rep(1025)), 413)
    end)

    it("answers 413 from the head alone, before the body is sent",
      function()
        refused(srv, req("POST", "/", "Content-Length: 100000000\r\n"), 413)
      end)

    it("answers 413 to a chunked body that grows over --max-body",
      function()
        local before = hits(srv)
        local c = H.raw(srv.port)
        assert(c:send(req("POST", "/", "Transfer-Encoding: chunked\r\n")))
        local chunk = ("c"):rep(600)
        assert(c:send(("%x\r\n%s\r\n"):format(#chunk, chunk)))
        c:send(("%x\r\n%s\r\n"):format(#chunk, chunk))  -- may be refused
        c:send("0\r\n\r\n")
        local res = assert(H.read_response(c))
        assert.are.equal(413, res.status)
        assert.is_true((closed_by_server(c)))
        c:close()
        assert.are.equal(before, hits(srv))
        assert.are.equal(200, H.get(srv, "/").status)
      end)

    it("takes a chunked body just within --max-body", function()
      local c = H.raw(srv.port)
      assert(c:send(req("POST", "/", "Transfer-Encoding: chunked\r\n")
        .. "200\r\n" .. ("a"):rep(512) .. "\r\n200\r\n" .. ("a"):rep(512)
        .. "\r\n0\r\n\r\n"))
      local res = assert(H.read_response(c))
      c:close()
      assert.are.equal(200, res.status)
      assert.are.equal("ok 1024", res.body)
    end)

    it("answers 413, not 100 Continue, to Expect with a body too large",
      function()
        local res = refused(srv, req("POST", "/",
          "Content-Length: 5000\r\nExpect: 100-continue\r\n"), 413)
        assert.are.equal("HTTP/1.1 413 Content Too Large", res.status_line)
      end)

    it("answers 414 to a URL over --max-url", function()
      assert.are.equal(200, H.get(srv, "/" .. ("u"):rep(98)).status)
      refused(srv, req("GET", "/" .. ("u"):rep(150)), 414)
    end)

    it("counts the query string in the URL", function()
      refused(srv, req("GET", "/?q=" .. ("u"):rep(150)), 414)
    end)

    it("answers 431 to headers over --max-headers", function()
      refused(srv, req("GET", "/", "X-Big: " .. ("h"):rep(300) .. "\r\n"),
        431)
    end)

    it("answers 431 to many small headers over --max-headers", function()
      local many = {}
      for i = 1, 30 do many[i] = ("X-%d: v\r\n"):format(i) end
      refused(srv, req("GET", "/", table.concat(many)), 431)
    end)

    it("answers 408 to a head not finished within --header-timeout, and "
      .. "closes", function()
        local before = hits(srv)
        local c = H.raw(srv.port)
        local t0 = H.now()
        assert(c:send("GET / HTTP/1.1\r\nHost: t\r\n"))   -- no end of head
        local res = assert(H.read_response(c))
        local took = H.now() - t0
        assert.are.equal(408, res.status)
        assert.is_true(took > 0.3 and took < 3, "408 after " .. took)
        assert.is_true((closed_by_server(c)))
        c:close()
        assert.are.equal(before, hits(srv))
        assert.are.equal(200, H.get(srv, "/").status)
      end)

    it("does not restart the header timeout for each byte (slowloris)",
      function()
        local c = H.raw(srv.port)
        local t0 = H.now()
        local text = "GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "
          .. ("s"):rep(40)
        local got
        for i = 1, #text do
          if not c:send(text:sub(i, i)) then break end
          H.pause(0.05)
          if H.now() - t0 > 3 then break end
          c:settimeout(0)
          local line = c:receive("*l")
          if line then got = line break end
        end
        c:settimeout(3)
        got = got or c:receive("*l")
        c:close()
        assert.are.equal("HTTP/1.1 408 Request Timeout", got)
        assert.is_true(H.now() - t0 < 3)
      end)

    it("closes a connection that sends nothing within --header-timeout",
      function()
        local c = H.raw(srv.port)
        local t0 = H.now()
        c:settimeout(5)
        local data, err, partial = c:receive("*a")
        local took = H.now() - t0
        c:close()
        -- a 408 or a silent close are both fine; staying open is not
        assert.are_not.equal("timeout", err)
        assert.is_true(took < 3, "closed after " .. took)
        local got = data or partial
        assert.is_true(got == "" or got:match("^HTTP/1.1 408") ~= nil, got)
      end)

    -- The header timer is armed when a request begins; a body that keeps
    -- arriving after the head must not be cut off by it with a 408.
    it("does not apply the header timeout to a body that keeps coming",
      function()
        local c = H.raw(srv.port)
        assert(c:send(req("POST", "/", "Content-Length: 10\r\n")))
        for _ = 1, 10 do
          H.pause(0.1)
          if not c:send("x") then break end
        end
        local res = assert(H.read_response(c))
        c:close()
        assert.are.equal(200, res.status, res.status_line)
        assert.are.equal("ok 10", res.body)
      end)

    it("closes an idle keep-alive connection after --keepalive-timeout",
      function()
        local c = H.raw(srv.port)
        assert(c:send(req("GET", "/")))
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.is_nil(res.headers.connection)
        local t0 = H.now()
        local closed, rest, err = closed_by_server(c, 5)
        local took = H.now() - t0
        c:close()
        assert.is_true(closed, ("%q %s"):format(tostring(rest), tostring(err)))
        assert.is_true(took > 0.25 and took < 3, "closed after " .. took)
      end)

    it("gives a handler that works past both timeouts its time, then "
      .. "keeps the connection", function()
      local c = H.raw(srv.port, 5)
      assert(c:send(req("GET", "/slow")))
      local res = assert(H.read_response(c))
      assert.are.equal(200, res.status)
      assert.are.equal("slow", res.body)
      assert(c:send(req("GET", "/")))       -- the keep-alive deadline is
      assert.are.equal(200, assert(H.read_response(c)).status)  -- back
      local closed = closed_by_server(c, 3)
      c:close()
      assert.is_true(closed)
    end)

    it("keeps a connection open that is used within the timeout", function()
      local c = H.raw(srv.port)
      for _ = 1, 4 do
        assert(c:send(req("GET", "/")))
        assert.are.equal(200, assert(H.read_response(c)).status)
        H.pause(0.2)      -- 0.8 s in all, each gap under the 0.5 s limit
      end
      c:close()
    end)

    describe("requests that could be smuggled get 400", function()
      it("both Transfer-Encoding: chunked and Content-Length", function()
        refused(srv, req("POST", "/", "Transfer-Encoding: chunked\r\n"
          .. "Content-Length: 5\r\n", "0\r\n\r\n"), 400)
      end)

      it("Content-Length then Transfer-Encoding: chunked", function()
        refused(srv, req("POST", "/", "Content-Length: 5\r\n"
          .. "Transfer-Encoding: chunked\r\n", "0\r\n\r\n"), 400)
      end)

      it("two Content-Lengths that differ", function()
        refused(srv, req("POST", "/", "Content-Length: 3\r\n"
          .. "Content-Length: 5\r\n", "abcde"), 400)
      end)

      it("two equal Content-Lengths", function()
        refused(srv, req("POST", "/", "Content-Length: 5\r\n"
          .. "Content-Length: 5\r\n", "abcde"), 400)
      end)

      it("a bad chunk size", function()
        refused(srv, req("POST", "/", "Transfer-Encoding: chunked\r\n",
          "zz\r\nhello\r\n0\r\n\r\n"), 400)
      end)

      it("a negative or signed chunk size", function()
        refused(srv, req("POST", "/", "Transfer-Encoding: chunked\r\n",
          "-5\r\nhello\r\n0\r\n\r\n"), 400)
      end)

      it("a Content-Length that is not a number", function()
        refused(srv, req("POST", "/", "Content-Length: 5x\r\n", "abcde"), 400)
      end)

      it("a NUL in a header value", function()
        refused(srv, req("GET", "/", "X-Evil: a\0b\r\n"), 400)
      end)

      it("a NUL in a header name", function()
        refused(srv, req("GET", "/", "X-E\0vil: ab\r\n"), 400)
      end)

      it("Content-Length with a space before the colon", function()
        refused(srv, req("POST", "/", "Content-Length : 5\r\n", "abcde"), 400)
      end)

      it("Transfer-Encoding with a space before the colon", function()
        refused(srv, req("POST", "/", "Transfer-Encoding : chunked\r\n",
          "5\r\nabcde\r\n0\r\n\r\n"), 400)
      end)

      it("a Transfer-Encoding other than chunked last", function()
        refused(srv, req("POST", "/", "Transfer-Encoding: chunked, gzip\r\n",
          "5\r\nabcde\r\n0\r\n\r\n"), 400)
      end)
    end)
  end)

  describe("defaults", function()
    local srv

    setup(function()
      srv = H.start("spec/apps/limits_app.lua")
    end)

    teardown(function()
      -- a clean exit after SIGTERM: no crash, no sanitizer report
      local log = srv:log()
      assert.are.equal(0, srv:stop(), log)
    end)

    it("takes a body of 1 MiB and refuses one byte more with 413",
      function()
        local body = ("m"):rep(1024 * 1024)
        local res = H.post(srv, "/", body, { timeout = 10 })
        assert.are.equal(200, res.status)
        assert.are.equal("ok " .. #body, res.body)
        refused(srv, req("POST", "/", "Content-Length: 1048577\r\n"), 413)
      end)

    it("takes an 8000-byte URL and refuses one over 8 KiB with 414",
      function()
        assert.are.equal(200, H.get(srv, "/" .. ("u"):rep(7999)).status)
        refused(srv, req("GET", "/" .. ("u"):rep(8 * 1024 + 10)), 414)
      end)

    it("takes 15 KiB of headers and refuses over 16 KiB with 431",
      function()
        local res = H.get(srv, "/", { headers = {
          ["X-Big"] = ("h"):rep(15 * 1024) } })
        assert.are.equal(200, res.status)
        refused(srv, req("GET", "/", "X-Big: " .. ("h"):rep(17 * 1024)
          .. "\r\n"), 431)
      end)

    it("keeps an idle connection open well past a second", function()
      local c = H.raw(srv.port)
      assert(c:send(req("GET", "/")))
      assert.are.equal(200, assert(H.read_response(c)).status)
      H.pause(1.2)
      assert(c:send(req("GET", "/")))
      assert.are.equal(200, assert(H.read_response(c)).status)
      c:close()
    end)
  end)

  describe("the max_body app option", function()
    it("gives 413 over 100 bytes without a flag", function()
      local srv = H.start("spec/apps/limits_option.lua")
      finally(function()
        local log = srv:log()
        assert.are.equal(0, srv:stop(), log)
      end)
      local res = H.post(srv, "/", ("o"):rep(100))
      assert.are.equal(200, res.status)
      assert.are.equal("ok 100", res.body)
      refused(srv, req("POST", "/", "Content-Length: 101\r\n",
        ("o"):rep(101)), 413)
    end)

    it("is overridden by --max-body", function()
      local srv = H.start("spec/apps/limits_option.lua",
        { args = { "--max-body", "200" } })
      finally(function()
        local log = srv:log()
        assert.are.equal(0, srv:stop(), log)
      end)
      local res = H.post(srv, "/", ("o"):rep(150))
      assert.are.equal(200, res.status)
      assert.are.equal("ok 150", res.body)
      refused(srv, req("POST", "/", "Content-Length: 201\r\n",
        ("o"):rep(201)), 413)
    end)
  end)
end)
