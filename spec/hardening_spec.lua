-- Hostile input and runaway code (API §10): slow and abusive clients,
-- framing tricks, handlers that never wait, a Lua state that grows.
local H = require "helpers"
local cjson = require "cjson"

-- The first line of the answer to raw bytes, and whether it then closed.
local function answer(port, bytes)
  local c = H.raw(port, 3)
  c:send(bytes)
  local line = c:receive("*l")
  c:settimeout(2)
  local rest, err = c:receive("*a")
  c:close()
  return line, err == nil and rest ~= nil
end

local function cpu_seconds(pid)
  local stat = H.slurp("/proc/" .. pid .. "/stat")
  local utime, stime = stat:match("%) %S+" .. (" %S+"):rep(11) .. " (%d+) (%d+)")
  return (tonumber(utime) + tonumber(stime)) / 100
end

describe("malformed framing", function()
  local srv
  setup(function() srv = H.start("apps/hello.lua") end)
  teardown(function() srv:stop() end)

  for name, bytes in pairs {
    ["obsolete line folding"] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n"
      .. " c\r\n\r\n",
    ["a space in a header name"] = "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
    ["a bare CR"] = "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n",
    ["a NUL in a header"] = "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n",
    ["an HTTP/0.9 request"] = "GET /\r\n\r\n",
    ["a chunk size that overflows"] = "POST / HTTP/1.1\r\nHost: a\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffffff\r\nx\r\n",
    ["Transfer-Encoding with Content-Length"] = "POST / HTTP/1.1\r\n"
      .. "Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
      .. "\r\n0\r\n\r\n",
    ["two Content-Lengths"] = "POST / HTTP/1.1\r\nHost: a\r\n"
      .. "Content-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    ["invalid percent-encoding"] = "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
    ["a head ending in CRLF, CR and any byte"] = "GET /a HTTP/1.1\r\n"
      .. "Host: a\r\n\rXGET / HTTP/1.1\r\nHost: a\r\n\r\n",
    ["a body after CRLF, CR and any byte"] = "POST / HTTP/1.1\r\nHost: a\r\n"
      .. "Content-Length: 5\r\n\rXhello",
    ["a head ending in CRLF LF"] = "GET / HTTP/1.1\r\nHost: a\r\n\n",
    ["chunk data followed by two bytes other than CRLF"] = "POST / HTTP/1.1"
      .. "\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY5\r\n"
      .. "hello\r\n0\r\n\r\n",
    ["chunk data followed by LF alone"] = "POST / HTTP/1.1\r\nHost: a\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
    ["two spaces before the target"] = "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
    ["two spaces after the target"] = "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",
    ["chunked framing in HTTP/1.0"] = "POST / HTTP/1.0\r\nTransfer-Encoding: "
      .. "chunked\r\n\r\n0\r\n\r\n",
    ["chunked twice"] = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
      .. "chunked, chunked\r\n\r\n0\r\n\r\n",
  } do
    it("answers 400 and closes for " .. name, function()
      local line, closed = answer(srv.port, bytes)
      assert.equal("HTTP/1.1 400 Bad Request", line)
      assert.is_true(closed)
      assert.equal(200, H.get(srv, "/").status)
    end)
  end

  it("answers 400 to a head ending in CRLF LF however it is cut", function()
    local c = H.raw(srv.port, 3)
    c:send("GET / HTTP/1.1\r\nHost: a\r\n")
    H.pause(0.1)
    c:send("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert.equal("HTTP/1.1 400 Bad Request", c:receive("*l"))
    c:close()
  end)

  it("serves a request whose CRLF CRLF is cut anywhere", function()
    local req = "GET / HTTP/1.1\r\nHost: a\r\n\r\n"
    for cut = #req - 3, #req - 1 do
      local c = H.raw(srv.port, 3)
      c:send(req:sub(1, cut))
      H.pause(0.05)
      c:send(req:sub(cut + 1))
      assert.equal("HTTP/1.1 200 OK", c:receive("*l"))
      c:close()
    end
  end)

  it("answers 400 to two spaces in a request line cut between them",
    function()
      local c = H.raw(srv.port, 3)
      c:send("GET ")
      H.pause(0.1)
      c:send(" / HTTP/1.1\r\nHost: a\r\n\r\n")
      assert.equal("HTTP/1.1 400 Bad Request", c:receive("*l"))
      c:close()
    end)

  it("answers 501 to a transfer coding other than chunked", function()
    local line, closed = answer(srv.port, "POST / HTTP/1.1\r\nHost: a\r\n"
      .. "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
    assert.equal("HTTP/1.1 501 Not Implemented", line)
    assert.is_true(closed)
  end)

  it("answers 413 at once to a chunk larger than --max-body", function()
    local t0 = H.now()
    local line, closed = answer(srv.port, "POST / HTTP/1.1\r\nHost: a\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\nab")
    assert.equal("HTTP/1.1 413 Content Too Large", line)
    assert.is_true(closed)
    assert.is_true(H.now() - t0 < 2, "took " .. (H.now() - t0))
  end)

  it("answers 501 to an unknown method, 505 to HTTP/2.0", function()
    assert.equal("HTTP/1.1 501 Not Implemented",
      (answer(srv.port, "FROB / HTTP/1.1\r\n\r\n")))
    assert.equal("HTTP/1.1 505 HTTP Version Not Supported",
      (answer(srv.port, "GET / HTTP/2.0\r\n\r\n")))
  end)
end)

describe("slow and abusive clients", function()
  it("closes 1,000 trickling connections at the header timeout while "
    .. "others are served fast", function()
    local srv = H.start("apps/hello.lua", { args = { "--header-timeout", "1" } })
    finally(function() srv:stop() end)
    local out = os.tmpname()
    os.execute(("sh -c 'ulimit -n 4096; exec lua5.4 spec/apps/trickle.lua %d "
      .. "1000 8' > %s 2>&1 &"):format(srv.port, out))
    local deadline = H.now() + 5
    repeat H.pause(0.05) until H.slurp(out):find("opened") or H.now() > deadline
    local worst = 0
    for _ = 1, 20 do
      local t0 = H.now()
      assert.equal(200, H.get(srv, "/").status)
      worst = math.max(worst, H.now() - t0)
      H.pause(0.05)
    end
    assert.is_true(worst < 0.5, "a normal request took " .. worst)
    deadline = H.now() + 12
    repeat H.pause(0.2) until H.slurp(out):find("closed") or H.now() > deadline
    local text = H.slurp(out)
    os.remove(out)
    local closed, got408, after = text:match("closed (%d+) got408 (%d+) after ([%d.]+)")
    assert.equal("1000", closed, text)
    assert.is_true(tonumber(got408) >= 900, text)
    assert.is_true(tonumber(after) < 6, text)
  end)

  it("answers over --max-connections with 503 and closes", function()
    local srv = H.start("apps/hello.lua", { args = { "--max-connections", "5" } })
    finally(function() srv:stop() end)
    local held = {}
    for i = 1, 5 do
      held[i] = H.raw(srv.port)
      held[i]:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
      assert.equal(200, H.read_response(held[i]).status)
    end
    local line, closed = answer(srv.port, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal("HTTP/1.1 503 Service Unavailable", line)
    assert.is_true(closed)
    held[1]:close()
    H.pause(0.2)
    assert.equal(200, H.get(srv, "/").status)
    for i = 2, 5 do held[i]:close() end
  end)

  it("does not spin out of file descriptors, and recovers", function()
    local srv = H.start("apps/hello.lua", { env = "ulimit -n 48;" })
    finally(function() srv:stop() end)
    assert.matches("Max open files%s+48", H.slurp("/proc/" .. srv.pid
      .. "/limits"))
    local held = {}
    for _ = 1, 80 do
      local c = require("socket").tcp()
      c:settimeout(1)
      if c:connect("127.0.0.1", srv.port) then held[#held + 1] = c end
    end
    local cpu0 = cpu_seconds(srv.pid)
    H.pause(1)
    local used = cpu_seconds(srv.pid) - cpu0
    assert.is_true(used < 0.3, "the loop spun: " .. used .. " s of CPU")
    -- past the limit, libuv's spare descriptor accepts and closes them
    local refused = 0
    for _, c in ipairs(held) do
      c:settimeout(0)
      local _, err = c:receive(1)
      if err == "closed" then refused = refused + 1 end
    end
    assert.is_true(refused > 0, "no connection met the limit")
    assert.truthy(srv:log():find("accept: out of file descriptors", 1, true))
    for _, c in ipairs(held) do c:close() end
    H.pause(0.3)
    assert.equal(200, H.get(srv, "/").status)
  end)
end)

describe("runaway handlers", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/hardening.lua", { args = { "--watchdog", "100",
      "--cpu-budget", "0.5", "--lua-memory", "32" } })
  end)
  teardown(function() srv:stop() end)

  it("logs a handler that keeps the loop busy, with its route and line",
    function()
      assert.equal("spun", H.get(srv, "/spin/0.2").body)
      assert.truthy(H.wait_for_log(srv, "watchdog: the loop has been busy "
        .. "for %d+ ms in GET /spin/0%.2"))
      assert.truthy(H.wait_for_log(srv, "spec/apps/hardening%.lua:%d+"))
    end)

  it("logs a handler stuck in a C function while it is stuck", function()
    local c = H.raw(srv.port, 5)
    c:send("GET /block/1.5 HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.truthy(H.wait_for_log(srv, "watchdog: the loop has been stuck "
      .. "for %d+ ms in GET /block/1%.5, inside a C function", 1.2))
    assert.truthy(H.wait_for_log(srv, "watchdog: the loop runs again, "
      .. "after 1%.%d+ s", 3))
    c:close()
    assert.equal(200, H.get(srv, "/").status)
  end)

  it("stops a handler past --cpu-budget with 503 and goes on", function()
    local t0 = H.now()
    local res = H.get(srv, "/forever")
    assert.equal(503, res.status)
    assert.matches("cpu%-budget", res.body)
    assert.is_true(H.now() - t0 < 3)
    assert.equal("ok", H.get(srv, "/").body)
  end)

  it("stops it even when it pcalls in the loop", function()
    assert.equal(503, H.get(srv, "/swallow").status)
    assert.equal("ok", H.get(srv, "/").body)
  end)

  it("stops code looping in the handler's own coroutines past "
    .. "--cpu-budget", function()
      local res = H.get(srv, "/nested-forever")
      assert.equal(503, res.status)
      assert.matches("cpu%-budget", res.body)
      assert.equal(503, H.get(srv, "/nested-swallow").status)
      assert.equal("ok", H.get(srv, "/").body)
    end)

  it("stops a timer callback that never waits", function()
    assert.equal("started", H.get(srv, "/spin-timer").body)
    assert.truthy(H.wait_for_log(srv, "timer callback failed: abort 503", 3))
    assert.equal(1, cjson.decode(H.get(srv, "/timer-runs").body).runs)
  end)

  it("fails a handler that grows its state past --lua-memory with 500",
    function()
      local res = H.get(srv, "/hog", { timeout = 20 })
      assert.equal(500, res.status)
      assert.truthy(H.wait_for_log(srv, "GET /hog HTTP[^\n]*: not enough memory"))
      assert.equal("ok", H.get(srv, "/").body)
      assert.equal("ok", H.get(srv, "/").body)
    end)
end)

describe("the watchdog in the handler's own coroutines", function()
  local srv
  setup(function()   -- no budget: a loaded machine cannot make it a 503
    srv = H.start("spec/apps/hardening.lua", { args = { "--watchdog",
      "100" } })
  end)
  teardown(function() srv:stop() end)

  it("logs code looping inside one, with that coroutine's traceback",
    function()
      assert.equal("spun inside", H.get(srv, "/nested-spin/0.3").body)
      -- seen while it loops, not once control is back in the handler
      assert.truthy(H.wait_for_log(srv, "watchdog: the loop has been busy "
        .. "for %d+ ms in GET /nested%-spin/0%.3, without waiting:\n"
        .. "stack traceback:\n[^\n]*spin_inside"))
    end)
end)

describe("stopping a server stuck in a handler", function()
  local function start(args, env)
    local a = { "--grace", "0.5" }
    for _, v in ipairs(args or {}) do a[#a + 1] = v end
    return H.start("spec/apps/hardening.lua", { args = a, env = env })
  end

  -- An idle keep-alive connection, after one request.
  local function idle_conn(srv)
    local c = H.raw(srv.port)
    c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal("ok", H.read_response(c).body)
    return c
  end

  for _, path in ipairs { "/forever", "/swallow", "/nested-forever" } do
    it("stops " .. path .. " once the grace is over, then exits 0",
      function()
        local srv = start()
        finally(function() srv:stop() end)
        local idle = idle_conn(srv)
        local stuck = H.raw(srv.port)
        stuck:send("GET " .. path .. " HTTP/1.1\r\nHost: t\r\n\r\n")
        assert.truthy(H.wait_for_log(srv, "busy for %d+ ms in GET "
          .. path:gsub("%-", "%%-")))
        local t0 = H.now()
        assert.equal(0, srv:kill("TERM", 10))
        local took = H.now() - t0
        assert.is_true(took > 0.4, "did not wait for the grace: " .. took)
        assert.is_true(took < 0.5 + 3, "took " .. took)
        assert.truthy(srv:log():match("watchdog: stopping GET "
          .. path:gsub("%-", "%%-") .. ": the server is stopping, the grace "
          .. "period is over.-stack traceback:\n[^\n]*spec/apps/"
          .. "hardening%.lua:%d+"))
        assert.truthy(srv:log():match("watchdog: SIGTERM while the loop has "
          .. "been busy for %d+ ms: Lua code still running in 0%.%d+ s is "
          .. "stopped"))
        assert.equal(503, H.read_response(stuck).status)
        idle:settimeout(2)
        local _, err = idle:receive(1)
        assert.equal("closed", err)
        stuck:close(); idle:close()
      end)
  end

  it("stops it at once on a second signal", function()
    local srv = start { "--grace", "30" }
    finally(function() srv:stop() end)
    local stuck = H.raw(srv.port)
    stuck:send("GET /forever HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.truthy(H.wait_for_log(srv, "busy for %d+ ms in GET /forever"))
    local t0 = H.now()
    srv:kill("TERM", 0.3)
    assert.equal(0, srv:kill("TERM", 10))
    assert.is_true(H.now() - t0 < 3, "took " .. H.now() - t0)
    assert.equal(503, H.read_response(stuck).status)
    stuck:close()
  end)

  it("exits with status 3 when the code is stuck in C, naming it",
    function()
      local fifo = os.tmpname()
      os.remove(fifo)
      assert.is_true(os.execute("mkfifo " .. H.quote(fifo)))
      local srv = start({}, "HARDENING_FIFO=" .. H.quote(fifo))
      finally(function() srv:stop(); os.remove(fifo) end)
      local stuck = H.raw(srv.port)
      stuck:send("GET /stuck-in-c HTTP/1.1\r\nHost: t\r\n\r\n")
      H.pause(0.3)
      local t0 = H.now()
      assert.equal(3, srv:kill("TERM", 10))
      local took = H.now() - t0
      assert.is_true(took > 1.4 and took < 0.5 + 1 + 3, "took " .. took)
      assert.matches("watchdog: the server cannot stop: the loop is still "
        .. "busy in GET /stuck%-in%-c 1%.0 s after the grace period ended "
        .. "%(in C code, or a hook cannot run%); exiting with status 3",
        srv:log())
      stuck:close()
    end)
end)
