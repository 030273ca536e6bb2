-- Outbound HTTP (moonlet.http) through real servers: the app under test
-- (spec/apps/client.lua) calls a moonlet backend (client_backend.lua) and
-- a raw-socket backend with canned, sometimes broken, answers
-- (raw_backend.lua), all on 127.0.0.1.
local H = require "helpers"
local cjson = require "cjson"
local socket = require "socket"

--- Starts spec/apps/raw_backend.lua in the background, recording its PID;
-- reads its port from its first line of output.
local function start_raw(lifetime)
  local rb = H.spawn(("lua5.4 spec/apps/raw_backend.lua %d")
    :format(lifetime or 300), "raw backend")
  rb.url = "http://127.0.0.1:" .. rb.port
  return rb
end

local function stop_raw(rb)
  if rb then rb.stop() end
end

local function raw_stats(rb)
  local res = H.get(rb.port, "/stats")
  local s = cjson.decode(res.body)
  s.requests = s.requests or {}
  return s
end

--- Polls fn() until it returns true, for at most 'timeout' seconds.
local function eventually(fn, timeout)
  local deadline = H.now() + (timeout or 2)
  repeat
    if fn() then return true end
    H.pause(0.02)
  until H.now() > deadline
  return fn()
end

--- A port nothing listens on (bound, then closed).
local function free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return port
end

local function fd_count(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

local function escape(s)
  return (tostring(s):gsub("[^%w%-_.~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

--- Query string from {k = v} or {k = {v1, v2}} (repeated), sorted.
local function query(params)
  local keys, parts = {}, {}
  for k in pairs(params) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = params[k]
    if type(v) ~= "table" then v = { v } end
    for _, x in ipairs(v) do parts[#parts + 1] = k .. "=" .. escape(x) end
  end
  return table.concat(parts, "&")
end

describe("moonlet.http", function()
  local raw, backend, srv, RAW, BK, fd_start

  -- GET path?params on the app; returns the decoded JSON and the response.
  local function call(path, params, opts)
    local res = H.get(srv, path .. "?" .. query(params or {}), opts)
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body), res
  end

  local function one(params) return (call("/one", params)) end

  setup(function()
    raw = start_raw(600)
    backend = H.start("spec/apps/client_backend.lua")
    srv = H.start("spec/apps/client.lua")
    RAW, BK = raw.url, "http://127.0.0.1:" .. backend.port
    fd_start = fd_count(srv.pid)
  end)

  teardown(function()
    if srv then srv:stop() end
    if backend then backend:stop() end
    if raw then stop_raw(raw) end
  end)

  describe("the pool", function()
    -- first in the file: the pool is empty, so the counts are exact
    it("sends ten requests over one kept-alive connection", function()
      local before = raw_stats(raw)
      local u = {}
      for i = 1, 10 do u[i] = "GET " .. RAW .. "/ok" end
      local v = call("/seq", { u = u })
      for i = 1, 10 do
        assert.equal(200, v.results[i].status)
        assert.equal("hello from raw", v.results[i].body)
        assert.equal(v.results[1].headers["x-conn"],
          v.results[i].headers["x-conn"])
      end
      assert.equal(1, v.connects)
      local after = raw_stats(raw)
      assert.equal(1, after.accepted - before.accepted)
      assert.equal(10, after.requests["/ok"] - (before.requests["/ok"] or 0))
    end)

    it("keeps using it across requests, as core.http_connects() shows",
      function()
        local n0 = call("/connects").n
        for _ = 1, 3 do
          assert.equal(200, one { url = RAW .. "/ok" }.status)
        end
        assert.equal(n0, call("/connects").n)
      end)

    it("reuses a connection to a moonlet backend", function()
      local u = {}
      for i = 1, 10 do u[i] = "GET " .. BK .. "/hello" end
      local fds = fd_count(backend.pid)
      local v = call("/seq", { u = u })
      for i = 1, 10 do
        assert.equal("hello from moonlet", v.results[i].body)
      end
      assert.equal(1, v.connects)
      -- one connection more on the backend's side (not ten)
      assert.is_true(fd_count(backend.pid) <= fds + 1)
    end)

    it("retries a GET once when the server closed the pooled connection",
      function()
        local before = raw_stats(raw)
        local v = call("/seq", { u = { "GET " .. RAW .. "/drop",
          "GET " .. RAW .. "/ok" } })
        assert.equal("dropping", v.results[1].body)
        assert.equal(200, v.results[2].status)
        assert.equal("hello from raw", v.results[2].body)
        assert.is_nil(v.results[2].err)
        assert.equal(1, raw_stats(raw).dropped - before.dropped)
        assert.is_true(v.connects >= 1)   -- the retry's fresh connection
      end)

    it("does not retry a POST: closed", function()
      local before = raw_stats(raw)
      local v = call("/seq", { u = { "GET " .. RAW .. "/drop",
        "POST " .. RAW .. "/ok" } })
      assert.equal(200, v.results[1].status)
      assert.equal("closed", v.results[2].err)
      assert.is_nil(v.results[2].status)
      assert.equal(1, raw_stats(raw).dropped - before.dropped)
    end)

    it("drops an idle connection the server closed", function()
      local v = call("/seq", { u = { "GET " .. RAW .. "/bye" } })
      assert.equal("bye", v.results[1].body)
      H.pause(0.2)
      for _ = 1, 3 do
        assert.equal(200, one { url = RAW .. "/ok" }.status)
      end
    end)
  end)

  describe("bodies", function()
    it("reads a chunked body, then reuses the connection", function()
      local v = call("/seq", { u = { "GET " .. RAW .. "/chunked",
        "GET " .. RAW .. "/chunked", "GET " .. RAW .. "/ok" } })
      assert.equal("hello from chunk", v.results[1].body)
      assert.equal("hello from chunk", v.results[2].body)
      assert.equal("chunked", v.results[1].headers["transfer-encoding"])
      assert.equal("t", v.results[2].headers["x-trailer"])   -- a trailer
      assert.equal(200, v.results[3].status)
      assert.is_true(v.connects <= 1)
    end)

    it("reads a close-delimited body", function()
      local v = one { url = RAW .. "/close" }
      assert.equal(200, v.status)
      assert.equal("until the end", v.body)
      assert.equal(200, one { url = RAW .. "/ok" }.status)
    end)

    it("skips 1xx responses", function()
      local v = one { url = RAW .. "/continue" }
      assert.equal(200, v.status)
      assert.equal("final", v.body)
      assert.equal("1", v.headers["x-final"])
      assert.is_nil(v.headers.link)          -- the 103's header is gone
    end)

    it("reads no body for HEAD, 204 and 304, and reuses the connection",
      function()
        local v = call("/seq", { u = { "HEAD " .. RAW .. "/head",
          "GET " .. RAW .. "/204", "GET " .. RAW .. "/304",
          "GET " .. RAW .. "/ok" } })
        local head, r204, r304, ok = table.unpack(v.results)
        assert.equal(200, head.status)
        assert.equal("", head.body)
        assert.equal("1234", head.headers["content-length"])
        assert.equal(204, r204.status)
        assert.equal("", r204.body)
        assert.equal("yes", r204.headers["x-empty"])
        assert.equal(304, r304.status)
        assert.equal("", r304.body)
        assert.equal('"v1"', r304.headers.etag)
        assert.equal("hello from raw", ok.body)
        assert.is_true(v.connects <= 1)
      end)

    it("reads a body that takes many reads", function()
      local v = one { url = RAW .. "/big" }
      assert.equal(200, v.status)
      assert.equal(("0123456789abcdef"):rep(64 * 300), v.body)
    end)

    it("refuses a huge Content-Length: too large", function()
      local v = one { url = RAW .. "/huge" }
      assert.equal("too large", v.err)
      assert.is_nil(v.status)
      assert.is_true(v.elapsed < 2, v.elapsed)
      assert.equal(200, one { url = RAW .. "/ok" }.status)
    end)

    it("decodes JSON with res:json() and raises on a non-JSON body",
      function()
        local v = call("/json", { url = RAW .. "/json" })
        assert.is_true(v.ok)
        assert.same({ a = 1, list = { 1, 2, 3 }, s = "x" }, v.value)
        v = call("/json", { url = RAW .. "/notjson" })
        assert.is_false(v.ok)
        assert.matches("not JSON", v.err)
      end)

    it("has response headers in any case, repeats joined", function()
      local v = call("/case", { url = RAW .. "/headers" })
      assert.equal("Yes", v.lower)
      assert.equal("Yes", v.mixed)
      assert.equal("Yes", v.upper)
      assert.equal("a=1, b=2", v.cookie)
      assert.equal("text/x-lower", v.ctype)
      assert.equal("2", v.len)
    end)

    it("has the headers when they are read late, as one table",
      function()
        local v = call("/late-headers", { url = RAW .. "/headers" })
        assert.is_true(v.same)
        assert.equal("1", v.added)
        assert.equal("text/x-lower", v.ctype)
        assert.same({ "content-length", "content-type", "set-cookie",
          "x-added", "x-mixed-case" }, v.names)
        assert.equal(200, v.status)
        assert.equal("hi", v.body)
      end)
  end)

  describe("requests", function()
    it("sends a table body as JSON with its Content-Type", function()
      local v = one { method = "POST", url = RAW .. "/echo", tbody = "1" }
      local echo = cjson.decode(v.body)
      assert.equal("POST", echo.method)
      assert.equal("application/json", echo.headers["content-type"])
      assert.equal(tostring(#echo.body), echo.headers["content-length"])
      assert.same({ name = "moon", n = 3, list = { 1, 2, 3 } },
        cjson.decode(echo.body))
    end)

    it("keeps a Content-Type the caller set for a table body", function()
      local v = one { method = "POST", url = RAW .. "/echo", tbody = "1",
        h = "content-type: application/vnd.moon+json" }
      local echo = cjson.decode(v.body)
      assert.equal("application/vnd.moon+json", echo.headers["content-type"])
    end)

    it("posts to a moonlet backend with http.post", function()
      local v = call("/post", { url = BK .. "/echo" })
      local echo = cjson.decode(v.body)
      assert.equal("POST", echo.method)
      assert.equal("application/json", echo.ctype)
      assert.same({ hello = "world", n = 1 }, cjson.decode(echo.body))
      v = call("/post", { url = BK .. "/echo", body = "just text" })
      echo = cjson.decode(v.body)
      assert.equal("just text", echo.body)
      assert.is_nil(echo.ctype)
    end)

    it("sends a string body as it is", function()
      local v = one { method = "PUT", url = RAW .. "/echo",
        body = "plain text" }
      local echo = cjson.decode(v.body)
      assert.equal("PUT", echo.method)
      assert.equal("plain text", echo.body)
      assert.equal("10", echo.headers["content-length"])
      assert.is_nil(echo.headers["content-type"])
    end)

    it("sends custom headers, Host and a default User-Agent", function()
      local v = one { url = RAW .. "/echo", h = "X-Custom: yes" }
      local echo = cjson.decode(v.body)
      assert.equal("yes", echo.headers["x-custom"])
      assert.equal("127.0.0.1:" .. raw.port, echo.headers.host)
      assert.matches("^moonlet/", echo.headers["user-agent"])
      v = call("/get", { url = BK .. "/echo?a=1",
        h = { "User-Agent: spec", "X-Custom: 2" } })
      echo = cjson.decode(v.body)
      assert.equal("spec", echo.agent)
      assert.equal("2", echo.custom)
      assert.equal("a=1", echo.query)
    end)

    it("sends what each call asks for when calls repeat a URL", function()
      local url = RAW .. "/echo?same=1"
      local function echo(o)
        local v = one(o)
        assert.equal(200, v.status)
        return cjson.decode(v.body)
      end
      local a = echo { url = url }
      local b = echo { url = url, h = "X-Custom: yes" }
      local c = echo { method = "POST", url = url }
      local d = echo { method = "post", url = url, body = "x" }
      local e = one { method = "HEAD", url = url }
      local f = echo { url = url }
      assert.same({ "GET", "GET", "POST", "POST", "GET" },
        { a.method, b.method, c.method, d.method, f.method })
      assert.is_nil(a.headers["x-custom"])
      assert.equal("yes", b.headers["x-custom"])
      assert.is_nil(f.headers["x-custom"])
      assert.equal("0", c.headers["content-length"])
      assert.equal("1", d.headers["content-length"])
      assert.equal("x", d.body)
      assert.is_nil(a.headers["content-length"])
      assert.equal("same=1", f.query)
      assert.equal("127.0.0.1:" .. raw.port, f.headers.host)
      assert.equal(200, e.status)
      assert.equal("", e.body)                -- HEAD: no body
    end)

    it("fetches 300 different URLs, then the first ones again", function()
      local v = call("/many", { url = RAW .. "/echo", n = 300 })
      assert.equal(303, #v.seen)
      for i = 1, 300 do assert.equal(tostring(i), v.seen[i]) end
      assert.same({ "1", "2", "3" }, { v.seen[301], v.seen[302],
        v.seen[303] })
    end)

    it("sends a 4 MB body over many writes", function()
      local v = call("/bigpost", { url = RAW .. "/echo", n = 4000000 },
        { timeout = 30 })
      assert.equal(200, v.status)
      local echo = cjson.decode(v.body)
      assert.equal(4000000, #echo.body)
      assert.equal("4000000", echo.headers["content-length"])
      assert.equal(200, one { url = RAW .. "/ok" }.status)
    end)

    it("closes, not pools, a connection answered while still writing",
      function()
        -- 16 MB: more than the socket buffers take while nobody reads
        local v = call("/bigpost", { url = RAW .. "/early", n = 16000000 },
          { timeout = 30 })
        assert.equal(200, v.status)
        assert.equal("early", v.body)
        for _ = 1, 3 do      -- the pool's newest: not the one still writing
          local ok = one { url = RAW .. "/ok", timeout = "2" }
          assert.equal(200, ok.status, ok.err)
        end
      end)

    it("raises for a header value with CR/LF, sending nothing", function()
      local before = raw_stats(raw)
      local res = H.get(srv, "/crlf?url=" .. escape(RAW .. "/echo"))
      assert.equal(500, res.status)
      assert.truthy(H.wait_for_log(srv, "contains CR, LF or NUL"))
      assert.equal(before.requests["/echo"], raw_stats(raw).requests["/echo"])
    end)

    it("goes to https:// URLs (nothing listens here)", function()
      local v = call("/https")
      assert.is_false(v.res)
      assert.equal("connection refused", v.err)
    end)

    it("raises for a URL that is not http://", function()
      local v = call("/nonhttp", { url = "ftp://127.0.0.1/x" })
      assert.is_false(v.ok)
      assert.matches("not an http:// or https:// URL", v.err)
      v = call("/nonhttp", { url = "no url at all" })
      assert.is_false(v.ok)
      assert.matches("not an http:// or https:// URL", v.err)
      v = call("/nonhttp")
      assert.is_false(v.ok)
      assert.matches("url must be a string", v.err)
    end)

    it("points a misuse's error at the caller's line", function()
      local lines = {}
      local n = 0
      for line in io.lines("spec/apps/client.lua") do
        n = n + 1
        local kind = line:match("%-%- misuse: (%a+)$")
        if kind then lines[kind] = n end
      end
      for _, kind in ipairs { "get", "getopts", "opts", "request" } do
        assert.equal(500, H.get(srv, "/misuse?kind=" .. kind).status)
        assert.truthy(H.wait_for_log(srv, "client%.lua:" .. lines[kind]
          .. ": moonlet%.http%.request: "), kind)
      end
    end)
  end)

  describe("redirects", function()
    it("follows a chain and says where it ended", function()
      local v = one { url = RAW .. "/redirect/3" }
      assert.equal(200, v.status)
      assert.equal("arrived", v.body)
      assert.equal(RAW .. "/redirect/0", v.url)
    end)

    it("follows five hops, not six", function()
      assert.equal("arrived", one { url = RAW .. "/redirect/5" }.body)
      local v = one { url = RAW .. "/redirect/6" }
      assert.equal("too many redirects", v.err)
      assert.is_nil(v.status)
      assert.equal("too many redirects", one { url = RAW .. "/loop" }.err)
    end)

    it("returns the 3xx with follow_redirects = false", function()
      local v = one { url = RAW .. "/redirect/1", follow = "0" }
      assert.equal(302, v.status)
      assert.equal("/redirect/0", v.headers.location)
      assert.equal(RAW .. "/redirect/1", v.url)
    end)

    it("returns a 3xx without a Location as it is, headers and all",
      function()
        local v = one { url = RAW .. "/nolocation" }
        assert.equal(302, v.status)
        assert.equal("stay", v.body)
        assert.equal("none", v.headers["x-why"])
        assert.equal(RAW .. "/nolocation", v.url)
        v = one { url = RAW .. "/redirect/1" }
        assert.equal("arrived", v.body)
        assert.equal("text/plain", v.headers["content-type"])
      end)

    it("resolves relative and absolute locations", function()
      local v = one { url = RAW .. "/rel/a/start" }
      assert.equal("relative x=1", v.body)
      assert.equal(RAW .. "/rel/a/target?x=1", v.url)
      v = one { url = RAW .. "/absredirect" }
      assert.equal("hello from raw", v.body)
      assert.equal(RAW .. "/ok", v.url)
    end)

    it("follows a redirect to another server, and to https", function()
      local v = one { url = RAW .. "/to?" .. escape(BK .. "/hello") }
      assert.equal("hello from moonlet", v.body)
      assert.equal(BK .. "/hello", v.url)
      v = one { url = RAW .. "/to?" .. escape("https://127.0.0.1:1/") }
      assert.equal("connection refused", v.err)
    end)

    it("bounds the redirects and the last hop by one timeout", function()
      local v = one { url = RAW .. "/to?" .. escape(BK .. "/slow/1"),
        timeout = "0.5" }
      assert.equal("timeout", v.err)
      assert.is_true(v.elapsed >= 0.45 and v.elapsed < 0.95, v.elapsed)
    end)

    it("turns a POST into a GET on 303, keeps it on 307", function()
      local v = one { method = "POST", url = RAW .. "/see-other",
        body = "payload" }
      local echo = cjson.decode(v.body)
      assert.equal("GET", echo.method)
      assert.equal("", echo.body)
      v = one { method = "POST", url = RAW .. "/temporary", body = "payload" }
      echo = cjson.decode(v.body)
      assert.equal("POST", echo.method)
      assert.equal("payload", echo.body)
    end)
  end)

  describe("failures", function()
    it("says connection refused", function()
      local v = one { url = "http://127.0.0.1:" .. free_port() .. "/" }
      assert.equal("connection refused", v.err)
      assert.is_nil(v.status)
    end)

    it("says dns: ... for a name in .invalid", function()
      local v = one { url = "http://no-such-host.invalid/" }
      assert.matches("^dns: .", v.err)
    end)

    it("says bad response for a malformed status line or garbage",
      function()
        assert.equal("bad response", one { url = RAW .. "/badstatus" }.err)
        assert.equal("bad response", one { url = RAW .. "/garbage" }.err)
        assert.equal(200, one { url = RAW .. "/ok" }.status)
      end)

    it("times out, and the backend sees the connection closed", function()
      local before = raw_stats(raw)
      local v = one { url = RAW .. "/hang", timeout = "0.3" }
      assert.equal("timeout", v.err)
      assert.is_true(v.elapsed >= 0.25 and v.elapsed < 2, v.elapsed)
      assert.is_true(eventually(function()
        return raw_stats(raw).hang_closed > before.hang_closed
      end, 2))
    end)
  end)

  describe("with tasks", function()
    it("runs three 0.3 s calls through gather in under 0.6 s", function()
      local v = call("/gather", { url = BK .. "/slow/0.3" })
      assert.same({ 200, 200, 200 }, v.results)
      assert.is_true(v.elapsed >= 0.29, v.elapsed)
      assert.is_true(v.elapsed < 0.6, v.elapsed)
    end)

    it("takes the fastest with first and cancels the others' I/O",
      function()
        local before = raw_stats(raw)
        -- the fast one takes 0.2 s: time for the slow one to reach /hang
        local v = call("/first", { slow = RAW .. "/hang",
          fast = BK .. "/slow/0.2" })
        assert.equal("slept 0.2", v.body)
        assert.is_true(v.elapsed < 1, v.elapsed)
        assert.is_true(eventually(function()
          return raw_stats(raw).hang_closed > before.hang_closed
        end, 2))
      end)

    it("cancels the request inside timeout(): nil, 'timeout'", function()
      local before = raw_stats(raw)
      local v = call("/timeout", { url = RAW .. "/hang", t = "0.3" })
      assert.equal("timeout", v.err)
      assert.is_nil(v.status)
      assert.is_true(v.elapsed >= 0.25 and v.elapsed < 2, v.elapsed)
      assert.is_true(eventually(function()
        return raw_stats(raw).hang_closed > before.hang_closed
      end, 1.5))
      v = call("/timeout", { url = RAW .. "/ok", t = "5" })
      assert.equal(200, v.status)
    end)

    it("fetches in a spawned task, and cancels one", function()
      local v = call("/spawn", { url = RAW .. "/ok" })
      assert.equal("hello from raw", v.body)
      local before = raw_stats(raw)
      v = call("/spawn-cancel", { url = RAW .. "/hang" })
      assert.is_true(v.was_running)
      assert.equal("cancelled", v.err)
      assert.is_true(v.done)
      assert.is_true(eventually(function()
        return raw_stats(raw).hang_closed > before.hang_closed
      end, 1.5))
    end)

    it("resolves a future with a fetch, or fails it", function()
      local v = call("/future", { url = RAW .. "/ok" })
      assert.is_true(v.ok)
      assert.equal(200, v.status)
      assert.equal("hello from raw", v.body)
      v = call("/future", { url = "http://127.0.0.1:" .. free_port() })
      assert.is_false(v.ok)
      assert.equal("connection refused", v.status)
    end)
  end)

  it("aborts the backend request when the app's client disconnects",
    function()
      local before = raw_stats(raw)
      local c = H.raw(srv.port)
      c:send("GET /one?url=" .. escape(RAW .. "/hang")
        .. " HTTP/1.1\r\nHost: t\r\n\r\n")
      assert.is_true(eventually(function()
        return (raw_stats(raw).requests["/hang"] or 0)
          > (before.requests["/hang"] or 0)
      end, 2))
      local t0 = H.now()
      c:close()
      assert.is_true(eventually(function()
        return raw_stats(raw).hang_closed > before.hang_closed
      end, 1.5))
      assert.is_true(H.now() - t0 < 1.5)
      assert.equal(200, one { url = RAW .. "/ok" }.status)
    end)

  it("leaks no descriptors over 1,000 mixed requests", function()
    local refused = "http://127.0.0.1:" .. free_port() .. "/"
    local before = raw_stats(raw)
    local totals, after_two = {}, nil
    for batch = 1, 10 do                 -- 10 x 100 at once
      local v = call("/mixed", { per = 20, ok = RAW .. "/ok",
        refused = refused, hang = RAW .. "/hang", short = "0.05",
        notfound = BK .. "/nope", chunked = RAW .. "/chunked" },
        { timeout = 30 })
      assert.equal(100, v.n)
      for k, n in pairs(v.counts) do totals[k] = (totals[k] or 0) + n end
      if batch == 2 then after_two = fd_count(srv.pid) end
    end
    assert.same({ ["200"] = 400, ["404"] = 200, timeout = 200,
      ["connection refused"] = 200 }, totals)
    -- every hung exchange was abandoned: the backend saw each one that
    -- reached it close (under load, some time out before they are sent)
    local hung, closed
    assert.is_true(eventually(function()
      local s = raw_stats(raw)
      hung = s.requests["/hang"] - (before.requests["/hang"] or 0)
      closed = s.hang_closed - before.hang_closed
      return hung == closed and hung > 0
    end, 3), ("%s hung, %s closed"):format(hung, closed))
    -- idle pooled connections stay: at most 32 per backend (raw, moonlet)
    local limit = fd_start + 2 * 32
    local fds
    assert.is_true(eventually(function()
      fds = fd_count(srv.pid)
      return fds <= limit
    end, 5), ("%d descriptors, started with %d"):format(fds, fd_start))
    -- and the pool is full after two rounds: no growth after that
    assert.is_true(eventually(function()
      fds = fd_count(srv.pid)
      return fds <= after_two + 2
    end, 5), ("%d descriptors, %d after two rounds"):format(fds, after_two))
    assert.equal(200, one { url = RAW .. "/ok" }.status)
  end)
end)
