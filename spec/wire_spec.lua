-- HTTP/1.1 on the wire, through raw sockets: keep-alive, pipelining,
-- framing, 100-continue, and what happens after bad input.
local H = require "helpers"
local socket = require "socket"

local srv

local function req(method, path, extra)
  return ("%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n"):format(method, path,
    extra or "")
end

-- Reads until the server closes; returns what came and why it stopped.
local function read_rest(c, timeout)
  c:settimeout(timeout or 3)
  local data, err, partial = c:receive("*a")
  return data or partial, err
end

-- True when the server has closed the connection (within 'timeout')
-- with nothing more sent.  luasocket's "*a" gives ("", nil) or, when
-- nothing at all came, (nil, "closed", "").
local function closed_by_server(c, timeout)
  local rest, err = read_rest(c, timeout)
  return (err == nil or err == "closed") and rest == "", rest, err
end

describe("the wire", function()
  setup(function()
    srv = H.start("spec/apps/wire_app.lua")
  end)

  teardown(function()
    -- a clean exit after SIGTERM: no crash, no sanitizer report
    local log = srv:log()
    assert.are.equal(0, srv:stop(), log)
  end)

  describe("keep-alive", function()
    it("serves 3 requests on one connection", function()
      local c = H.raw(srv.port)
      for i = 1, 3 do
        assert(c:send(req("GET", "/n/" .. i)))
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.are.equal("r" .. i, res.body)
        assert.is_nil(res.headers.connection)
      end
      c:close()
    end)

    it("reads 40, 6, 1 and 33 headers on one connection", function()
      local c = H.raw(srv.port)
      for _, n in ipairs({ 40, 6, 1, 33 }) do
        local extra, want = {}, {}
        for i = 1, n do
          extra[i] = ("X-H%d: v%d\r\n"):format(i, i)
          want[i] = "v" .. i
        end
        assert(c:send(req("GET", "/hdrs", table.concat(extra))))
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.are.equal(table.concat(want, ","), res.body)
      end
      c:close()
    end)

    it("keeps a waiting request's text while other reads come and go",
      function()
      local conns = {}
      for i = 1, 20 do
        conns[i] = H.raw(srv.port)
        assert(conns[i]:send(req("GET", ("/later/w%d?q=%d"):format(i, i),
          ("X-Tag: tag-%d\r\nX-Other: %s\r\n"):format(i, ("o"):rep(i)))))
      end
      -- meanwhile, other requests pass through the read buffer
      for i = 1, 50 do
        local res = H.get(srv, "/n/" .. i, { headers = { ["X-Tag"] = "zz" } })
        assert.are.equal(200, res.status)
      end
      for i = 1, 20 do
        local res = assert(H.read_response(conns[i]))
        assert.are.equal(("w%d|/later/w%d|q=%d|tag-%d|%s"):format(i, i, i, i,
          ("o"):rep(i)), res.body)
        conns[i]:close()
      end
    end)

    it("answers pipelined requests in order, a slow one in the middle",
      function()
        local c = H.raw(srv.port)
        assert(c:send(req("GET", "/n/1") .. req("GET", "/slow/2")
          .. req("GET", "/n/3")))
        for i = 1, 3 do
          local res = assert(H.read_response(c))
          assert.are.equal(200, res.status)
          assert.are.equal("r" .. i, res.body)
        end
        c:close()
      end)

    it("answers a request that arrives while the one before is served",
      function()
        local c = H.raw(srv.port)
        assert(c:send(req("GET", "/slow/1")))
        H.pause(0.03)              -- the handler is sleeping now
        assert(c:send(req("GET", "/n/2")))
        local r1 = assert(H.read_response(c))
        local r2 = assert(H.read_response(c))
        c:close()
        assert.are.equal("r1", r1.body)
        assert.are.equal("r2", r2.body)
      end)

    it("answers 2000 pipelined requests (over 64 KiB of input) in order",
      function()
        local c = H.raw(srv.port, 10)
        local all = {}
        for i = 1, 2000 do
          all[i] = req("GET", "/n/" .. i, "X-Pad: " .. ("p"):rep(20) .. "\r\n")
        end
        local text = table.concat(all)
        assert.is_true(#text > 65536)
        assert(c:send(text))
        for i = 1, 2000 do
          local res = assert(H.read_response(c))
          assert.are.equal("r" .. i, res.body)
        end
        c:close()
      end)

    it("sends a large response, then serves the next request", function()
      local c = H.raw(srv.port, 10)
      local big = ("0123456789abcdef"):rep(60000)    -- 960000 bytes
      assert(c:send(req("POST", "/body", "Content-Length: " .. #big .. "\r\n")
        .. big .. req("GET", "/n/9")))
      local r1 = assert(H.read_response(c))
      local r2 = assert(H.read_response(c))
      c:close()
      assert.are.equal(#big, #r1.body)
      assert.is_true(r1.body == big)
      assert.are.equal("r9", r2.body)
    end)

    it("answers pipelined requests with bodies in order", function()
      local c = H.raw(srv.port)
      assert(c:send(req("POST", "/body", "Content-Length: 5\r\n") .. "hello"
        .. req("POST", "/body", "Transfer-Encoding: chunked\r\n")
        .. "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        .. req("GET", "/n/3")))
      local r1 = assert(H.read_response(c))
      local r2 = assert(H.read_response(c))
      local r3 = assert(H.read_response(c))
      c:close()
      assert.are.equal("hello", r1.body)
      assert.are.equal("abcde", r2.body)
      assert.are.equal("r3", r3.body)
    end)

    it("closes after the response to HTTP/1.0 without keep-alive",
      function()
        local c = H.raw(srv.port)
        assert(c:send("GET /n/1 HTTP/1.0\r\nHost: t\r\n\r\n"))
        local res = assert(H.read_response(c))
        assert.are.equal(200, res.status)
        assert.are.equal("r1", res.body)
        assert.is_true((closed_by_server(c)))
        c:close()
      end)

    it("keeps HTTP/1.0 with Connection: keep-alive open, and says so",
      function()
        local c = H.raw(srv.port)
        for i = 1, 2 do
          assert(c:send("GET /n/" .. i .. " HTTP/1.0\r\nHost: t\r\n"
            .. "Connection: keep-alive\r\n\r\n"))
          local res = assert(H.read_response(c))
          assert.are.equal(200, res.status)
          assert.are.equal("r" .. i, res.body)
          assert.are.equal("keep-alive", res.headers.connection:lower())
        end
        c:close()
      end)

    it("closes after the response to Connection: close", function()
      local c = H.raw(srv.port)
      assert(c:send(req("GET", "/n/1", "Connection: close\r\n")))
      local res = assert(H.read_response(c))
      assert.are.equal("r1", res.body)
      assert.are.equal("close", res.headers.connection)
      assert.is_true((closed_by_server(c)))
      c:close()
    end)

    it("does not answer pipelined requests after a Connection: close one",
      function()
        local c = H.raw(srv.port)
        assert(c:send(req("GET", "/n/1", "Connection: close\r\n")
          .. req("GET", "/n/2")))
        local res = assert(H.read_response(c))
        assert.are.equal("r1", res.body)
        local closed, rest = closed_by_server(c)
        assert.is_true(closed, rest)
        c:close()
      end)
  end)

  describe("response headers", function()
    it("include Date, Content-Length and Content-Type", function()
      local res = H.get(srv, "/text")
      assert.are.equal(200, res.status)
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$",
        res.headers.date)
      assert.are.equal(tostring(#"hello text"), res.headers["content-length"])
      assert.are.equal("text/html; charset=utf-8", res.headers["content-type"])
      assert.are.equal("hello text", res.body)
    end)

    it("say application/json for a table", function()
      local res = H.get(srv, "/json")
      assert.are.equal("application/json", res.headers["content-type"])
      assert.are.equal(tostring(#res.body), res.headers["content-length"])
      assert.is_not_nil(res.headers.date)
    end)

    it("are there on a 404 too", function()
      local res = H.get(srv, "/nowhere")
      assert.are.equal(404, res.status)
      assert.is_not_nil(res.headers.date)
      assert.is_not_nil(res.headers["content-type"])
      assert.are.equal(tostring(#res.body), res.headers["content-length"])
    end)
  end)

  describe("request bodies", function()
    it("joins a chunked body sent in several writes", function()
      local c = H.raw(srv.port)
      assert(c:send(req("POST", "/body", "Transfer-Encoding: chunked\r\n")))
      local chunks = { "hello ", "chunked ", ("x"):rep(300), " world" }
      for _, ch in ipairs(chunks) do
        H.pause(0.02)
        assert(c:send(("%x\r\n%s\r\n"):format(#ch, ch)))
      end
      H.pause(0.02)
      assert(c:send("0\r\n\r\n"))
      local res = assert(H.read_response(c))
      c:close()
      assert.are.equal(200, res.status)
      assert.are.equal(table.concat(chunks), res.body)
      assert.are.equal(tostring(#table.concat(chunks)),
        res.headers["x-body-length"])
    end)

    it("accepts chunk extensions and trailers", function()
      local c = H.raw(srv.port)
      assert(c:send(req("POST", "/body", "Transfer-Encoding: chunked\r\n")
        .. "4;name=value\r\nabcd\r\n0\r\nX-Trailer: yes\r\n\r\n"))
      local res = assert(H.read_response(c))
      c:close()
      assert.are.equal("abcd", res.body)
    end)

    it("sends 100 Continue before the body with Expect: 100-continue",
      function()
        local c = H.raw(srv.port, 3)
        assert(c:send(req("POST", "/body",
          "Content-Length: 11\r\nExpect: 100-continue\r\n")))
        local line = c:receive("*l")
        assert.are.equal("HTTP/1.1 100 Continue", line)
        -- the interim response ends with an empty line
        local blank = c:receive("*l")
        assert.are.equal("", blank)
        assert(c:send("hello world"))
        local res = assert(H.read_response(c))
        c:close()
        assert.are.equal(200, res.status)
        assert.are.equal("hello world", res.body)
      end)

    it("sends no 100 Continue for a request without a body", function()
      local c = H.raw(srv.port, 3)
      assert(c:send(req("GET", "/n/1", "Expect: 100-continue\r\n")))
      local res = assert(H.read_response(c))
      c:close()
      assert.are.equal(200, res.status)
      assert.are.equal("r1", res.body)
    end)
  end)

  describe("HEAD", function()
    it("answers with the head only, Content-Length as for GET", function()
      local get = H.get(srv, "/text")
      local c = H.raw(srv.port)
      assert(c:send(req("HEAD", "/text")))
      local res = assert(H.read_response(c, { head = true }))
      assert.are.equal(200, res.status)
      assert.are.equal(get.headers["content-length"],
        res.headers["content-length"])
      -- no body bytes follow: the next response on the connection parses
      assert(c:send(req("GET", "/n/7")))
      local nxt = assert(H.read_response(c))
      c:close()
      assert.are.equal(200, nxt.status)
      assert.are.equal("r7", nxt.body)
    end)
  end)

  describe("odd input", function()
    it("serves a request sent one byte at a time", function()
      local c = H.raw(srv.port)
      local text = req("POST", "/body", "X-Long-Header-Name: some value\r\n"
        .. "Content-Length: 9\r\n") .. "body text"
      for i = 1, #text do
        assert(c:send(text:sub(i, i)))
        if i % 16 == 0 then H.pause(0.001) end
      end
      local res = assert(H.read_response(c))
      c:close()
      assert.are.equal(200, res.status)
      assert.are.equal("body text", res.body)
    end)

    it("serves a request split at every point of the head", function()
      local text = req("GET", "/n/5", "X-A: b\r\n")
      for cut = 1, #text - 1 do
        local c = H.raw(srv.port)
        assert(c:send(text:sub(1, cut)))
        H.pause(0.002)
        assert(c:send(text:sub(cut + 1)))
        local res = assert(H.read_response(c))
        c:close()
        assert.are.equal("r5", res.body, "cut at " .. cut)
      end
    end)

    it("serves a request with a chunked body sent one byte at a time",
      function()
        local c = H.raw(srv.port)
        local text = req("POST", "/body", "Transfer-Encoding: chunked\r\n")
          .. "3\r\nabc\r\na\r\n0123456789\r\n0\r\n\r\n"
        for i = 1, #text do
          assert(c:send(text:sub(i, i)))
          if i % 16 == 0 then H.pause(0.001) end
        end
        local res = assert(H.read_response(c))
        c:close()
        assert.are.equal(200, res.status)
        assert.are.equal("abc0123456789", res.body)
      end)

    it("serves a POST split in two at every point", function()
      local text = req("POST", "/body?q=1", "X-A: b\r\nContent-Length: 4\r\n")
        .. "wxyz"
      for cut = 1, #text - 1 do
        local c = H.raw(srv.port)
        assert(c:send(text:sub(1, cut)))
        H.pause(0.002)
        assert(c:send(text:sub(cut + 1)))
        local res = assert(H.read_response(c))
        c:close()
        assert.are.equal("wxyz", res.body, "cut at " .. cut)
      end
    end)

    it("answers 400 to garbage and closes; the next connection is served",
      function()
        local c = H.raw(srv.port)
        assert(c:send("\1\2\3garbage\255\254 not http at all\r\n\r\n"))
        local res = assert(H.read_response(c))
        assert.are.equal(400, res.status)
        assert.is_true((closed_by_server(c)))
        c:close()
        assert.are.equal("r1", H.get(srv, "/n/1").body)
      end)

    it("refuses an unknown method before any handler, and closes",
      function()
        local c = H.raw(srv.port)
        assert(c:send("FROB /n/1 HTTP/1.1\r\nHost: t\r\n\r\n"))
        local res = assert(H.read_response(c))
        -- a well-formed but unknown method: 400 or 501 are both fair
        assert.is_true(res.status == 400 or res.status == 501, res.status_line)
        assert.is_true((closed_by_server(c)))
        c:close()
        assert.are.equal("r1", H.get(srv, "/n/1").body)
      end)

    it("answers 400 to a broken request line and closes", function()
      local c = H.raw(srv.port)
      assert(c:send("GET /n/1 HTTP/1.1 extra\r\nHost: t\r\n\r\n"))
      local res = assert(H.read_response(c))
      assert.are.equal(400, res.status)
      assert.is_true((closed_by_server(c)))
      c:close()
      assert.are.equal("r1", H.get(srv, "/n/1").body)
    end)

    it("answers 400 to garbage after a good request on the same connection",
      function()
        local c = H.raw(srv.port)
        assert(c:send(req("GET", "/n/1") .. "\0\0\0\0garbage\r\n\r\n"))
        local r1 = assert(H.read_response(c))
        assert.are.equal("r1", r1.body)
        local r2 = assert(H.read_response(c))
        assert.are.equal(400, r2.status)
        assert.is_true((closed_by_server(c)))
        c:close()
      end)

    it("answers 500 to a failing handler; the next request works",
      function()
        local res = H.get(srv, "/boom")
        assert.are.equal(500, res.status)
        assert.is_nil(res.body:match("boom on purpose"))  -- no --debug
        assert.is_not_nil(H.wait_for_log(srv, "boom on purpose"))
        assert.are.equal("r2", H.get(srv, "/n/2").body)
      end)

    it("keeps the connection usable after a 500", function()
      local c = H.raw(srv.port)
      assert(c:send(req("GET", "/boom")))
      local r1 = assert(H.read_response(c))
      assert.are.equal(500, r1.status)
      assert(c:send(req("GET", "/n/3")))
      local r2 = assert(H.read_response(c))
      c:close()
      assert.are.equal("r3", r2.body)
    end)

    it("survives a client that leaves mid-request", function()
      local c = H.raw(srv.port)
      assert(c:send(req("POST", "/body", "Content-Length: 100\r\n") .. "abc"))
      c:close()
      local c2 = H.raw(srv.port)
      assert(c2:send(req("GET", "/slow/1")))
      c2:close()              -- gone while the handler sleeps
      H.pause(0.15)
      assert.are.equal("r4", H.get(srv, "/n/4").body)
      assert.is_nil(srv:status())
    end)
  end)
end)
