-- Streamed responses (req:stream) through real servers: chunks leave as
-- they are written, exact framing on HTTP/1.1 and 1.0, HEAD, an error
-- mid-stream, keep-alive afterwards, back-pressure against a reader that
-- lags, a writer waiting on a client that leaves (cancelled, never
-- resumed), writes after that, and apps/stream.lua itself.
local H = require "helpers"
local cjson = require "cjson"

--- Reads a response head from a raw socket: status line, lower-case
-- headers, and the head as sent.
local function read_head(c)
  local lines = {}
  local status_line = assert(c:receive("*l"))
  local headers = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    lines[#lines + 1] = l
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    headers[k:lower()] = v
  end
  return status_line, headers, lines
end

--- Reads one chunk: its data ("" for the last one, whose trailer CRLF is
-- consumed too), or nil and the error.
local function read_chunk(c)
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local n = tonumber(line:match("^%x+"), 16)
  assert(n, "bad chunk size line: " .. line)
  if n == 0 then
    assert.equal("", c:receive("*l"))
    return ""
  end
  local data = assert(c:receive(n))
  assert.equal("", c:receive("*l"))
  return data
end

--- VmRSS of a process, in KiB.
local function rss_kib(pid)
  local s = H.slurp("/proc/" .. pid .. "/status")
  local kib = tonumber(s:match("VmRSS:%s*(%d+)"))
  return assert(kib, "no VmRSS for " .. pid) and kib
end

--- What the app recorded (its /state route), decoded.
local function app_state(srv)
  local res = H.get(srv, "/state")
  assert.equal(200, res.status, res.body)
  return cjson.decode(res.body)
end

describe("streams", function()
  local srv

  setup(function()
    srv = H.start("spec/apps/stream.lua", { args = { "--log-level", "debug" } })
  end)
  teardown(function() srv:stop() end)

  it("sends each chunk when written, before the handler ends", function()
    local c = H.raw(srv.port)
    local t0 = H.now()
    c:send("GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n")
    local status_line, headers = read_head(c)
    assert.equal("HTTP/1.1 200 OK", status_line)
    assert.equal("chunked", headers["transfer-encoding"])
    assert.is_nil(headers["content-length"])
    assert.equal("START\n", read_chunk(c))
    local t1 = H.now()
    -- the handler is still sleeping: it has not recorded its end yet
    assert.is_nil(app_state(srv).chunks_ended)
    assert.equal("MIDDLE\n", read_chunk(c))
    local t2 = H.now()
    assert.equal("END\n", read_chunk(c))
    local t3 = H.now()
    assert.equal("", read_chunk(c))
    c:close()
    assert.is_true(t1 - t0 < 0.25, "first chunk after " .. (t1 - t0))
    assert.is_true(t2 - t1 >= 0.2, "second chunk after " .. (t2 - t1))
    assert.is_true(t3 - t2 >= 0.2, "third chunk after " .. (t3 - t2))
    assert.is_true(t3 - t0 < 2.0, "took " .. (t3 - t0))
    assert.is_number(app_state(srv).chunks_ended)
  end)

  it("frames HTTP/1.1 chunks exactly, then keeps the connection", function()
    local c = H.raw(srv.port)
    c:send("GET /framing HTTP/1.1\r\nHost: t\r\n\r\n")
    local status_line, headers = read_head(c)
    assert.equal("HTTP/1.1 201 Created", status_line)
    assert.equal("chunked", headers["transfer-encoding"])
    assert.equal("text/plain", headers["content-type"])
    assert.equal("yes", headers["x-stream"])
    assert.is_nil(headers["content-length"])
    assert.is_nil(headers["connection"])
    local wire = "5\r\nhello\r\n6\r\n world\r\n2\r\n42\r\n0\r\n\r\n"
    assert.equal(wire, c:receive(#wire))
    c:settimeout(0.2)                    -- and nothing after it
    local extra, err = c:receive(1)
    assert.is_nil(extra)
    assert.equal("timeout", err)
    c:settimeout(5)
    c:send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    local res = H.read_response(c)
    assert.equal(200, res.status)
    assert.equal("hello", res.body)
    c:close()
  end)

  it("gives HTTP/1.0 a body that ends when the connection closes", function()
    local c = H.raw(srv.port)
    c:send("GET /framing HTTP/1.0\r\nHost: t\r\n\r\n")
    local all = assert(c:receive("*a"))
    c:close()
    local head, body = all:match("^(.-\r\n)\r\n(.*)$")
    assert.truthy(head, all)
    assert.matches("^HTTP/1%.[01] 201 ", head)
    assert.matches("\r\nConnection: close\r\n", head)
    assert.is_nil(head:lower():find("transfer%-encoding"))
    assert.is_nil(head:lower():find("content%-length"))
    assert.equal("hello world42", body)
  end)

  it("sends the head only for HEAD, and the connection goes on", function()
    local c = H.raw(srv.port)
    c:send("HEAD /chunks HTTP/1.1\r\nHost: t\r\n\r\n")
    local status_line, headers = read_head(c)
    assert.equal("HTTP/1.1 200 OK", status_line)
    assert.equal("text/plain", headers["content-type"])
    assert.is_nil(headers["content-length"])
    -- the next bytes on the wire are the next response's: no body at all
    c:send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    local res = H.read_response(c)
    assert.equal("HTTP/1.1 200 OK", res.status_line)
    assert.equal("hello", res.body)
    c:close()
  end)

  it("closes the connection on an error mid-stream, unterminated", function()
    local c = H.raw(srv.port)
    c:send("GET /fail HTTP/1.1\r\nHost: t\r\n\r\n")
    local status_line, headers = read_head(c)
    assert.equal("HTTP/1.1 200 OK", status_line)
    assert.equal("chunked", headers["transfer-encoding"])
    local rest, err, partial = c:receive("*a")   -- until the server closes
    c:close()
    rest = rest or partial
    assert.is_nil(err)
    assert.equal("8\r\npartial\n\r\n", rest)  -- no terminating 0\r\n\r\n
    assert.truthy(H.wait_for_log(srv, "boom mid%-stream"))
    assert.equal("hello", H.get(srv, "/hello").body)  -- worker unharmed
  end)

  it("serves a second request on the connection after a stream", function()
    local c = H.raw(srv.port)
    c:send("GET /chunks HTTP/1.1\r\nHost: t\r\n\r\n")
    local res = H.read_response(c)
    assert.equal(200, res.status)
    assert.equal("START\nMIDDLE\nEND\n", res.body)
    c:send("GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    res = H.read_response(c)
    assert.equal(200, res.status)
    assert.equal("hello", res.body)
    c:close()
  end)

  it("holds memory flat while a reader lags 100 MiB behind", function()
    assert.equal("hello", H.get(srv, "/hello").body)
    local before = rss_kib(srv.pid)
    local c = H.raw(srv.port, 10)
    c:send("GET /big/100 HTTP/1.1\r\nHost: t\r\n\r\n")
    -- read nothing until the writer stalls (no write for 0.5 s)
    local last, stable, writes = -1, 0, nil
    for _ = 1, 100 do
      H.pause(0.1)
      local big = app_state(srv).big
      writes = big and big.writes
      if writes ~= nil and writes == last then
        stable = stable + 1
        if stable >= 5 then break end
      else
        stable = 0
      end
      last = writes or -1
    end
    assert.is_number(writes)
    assert.is_true(writes < 100, "no back-pressure: " .. writes .. " writes")
    local stalled = rss_kib(srv.pid)
    assert.is_true(stalled - before <= 16 * 1024,
      ("RSS grew by %d KiB"):format(stalled - before))
    -- now read it all: 100 MiB exactly, every byte an x
    local status_line, headers = read_head(c)
    assert.equal("HTTP/1.1 200 OK", status_line)
    assert.equal("chunked", headers["transfer-encoding"])
    local total, peak = 0, stalled
    for i = 1, 10000 do
      local line = assert(c:receive("*l"))
      local n = assert(tonumber(line:match("^%x+"), 16), line)
      if n == 0 then
        assert.equal("", c:receive("*l"))
        break
      end
      while n > 0 do
        local part = assert(c:receive(math.min(n, 256 * 1024)))
        assert.is_nil(part:find("[^x]"))
        total, n = total + #part, n - #part
      end
      assert.equal("", c:receive("*l"))
      if i % 10 == 0 then peak = math.max(peak, rss_kib(srv.pid)) end
    end
    c:close()
    assert.equal(100 * 1024 * 1024, total)
    assert.is_true(peak - before <= 16 * 1024,
      ("RSS grew by %d KiB while reading"):format(peak - before))
    assert.same({ writes = 100, done = true }, app_state(srv).big)
  end)

  it("wakes every writer waiting on one slow reader", function()
    local c = H.raw(srv.port, 10)
    c:send("GET /two-writers HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.5)                          -- both writers wait meanwhile
    assert.equal("HTTP/1.1 200 OK", read_head(c))
    local count = { a = 0, b = 0 }
    while true do
      local piece = assert(read_chunk(c))
      if piece == "" then break end
      count[piece:sub(1, 1)] = count[piece:sub(1, 1)] + #piece
    end
    c:close()
    assert.same({ a = 8 * 1024 * 1024, b = 8 * 1024 * 1024 }, count)
  end)

  -- The wake path: a write waiting for the output to drain is a wait
  -- like a sleep.  The client leaving cancels the handler there: its
  -- <close> runs, and nothing resumes it (the write never returns).
  it("cancels a writer waiting on a client that leaves, never resuming it",
    function()
    local c = H.raw(srv.port)
    c:send("GET /until-closed HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal("HTTP/1.1 200 OK", read_head(c))
    assert.truthy(c:receive(1000))        -- some of the body came
    local writes, closed = -1
    repeat                                -- until the writer waits
      closed = app_state(srv).closed
      local parked = closed.writes == writes
      writes = closed.writes
      H.pause(0.1)
    until parked
    c:close()
    for _ = 1, 150 do
      closed = app_state(srv).closed
      if closed.ended then break end
      H.pause(0.02)
    end
    assert.is_true(closed.ended)
    assert.is_nil(closed.ok)              -- the write never returned
    assert.is_nil(closed.err)
    assert.is_true(closed.writes < 16384)
    assert.truthy(H.wait_for_log(srv, "client gone: cancelled", 1.0))
    H.pause(0.2)
    assert.is_nil(srv:log():find("a write returned", 1, true))
    assert.equal("hello", H.get(srv, "/hello").body)
  end)

  it("returns nil, 'closed' from a write once the client left", function()
    local c = H.raw(srv.port)
    c:send("GET /until-closed HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal("HTTP/1.1 200 OK", read_head(c))
    assert.truthy(c:receive(1000))
    c:close()
    for _ = 1, 150 do
      if app_state(srv).closed.ended then break end
      H.pause(0.02)
    end
    local res = H.get(srv, "/write-late")
    assert.equal(200, res.status)
    assert.same({ ok = "nil", err = "closed" }, cjson.decode(res.body))
  end)
end)

describe("apps/stream.lua", function()
  local srv
  setup(function() srv = H.start("apps/stream.lua") end)
  teardown(function() srv:stop() end)

  it("sends START, MIDDLE 3 s later, then END 5 s after", function()
    local c = H.raw(srv.port, 12)
    local t0 = H.now()
    c:send("GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    local status_line, headers = read_head(c)
    assert.equal("HTTP/1.1 200 OK", status_line)
    assert.matches("^text/plain", headers["content-type"])
    assert.equal("START\n", read_chunk(c))
    local t_start = H.now()
    assert.equal("MIDDLE\n", read_chunk(c))
    local t_middle = H.now()
    assert.equal("END\n", read_chunk(c))
    local t_end = H.now()
    assert.equal("", read_chunk(c))
    c:close()
    assert.is_true(t_start - t0 < 0.5, "START after " .. (t_start - t0))
    local m, e = t_middle - t_start, t_end - t_middle
    assert.is_true(m > 2.7 and m < 3.8, "MIDDLE after " .. m)
    assert.is_true(e > 4.7 and e < 5.8, "END after " .. e)
  end)
end)

describe("the send timeout", function()
  local srv

  -- Reads everything until the server closes; returns the byte count.
  local function drain(c)
    local total = 0
    c:settimeout(5)
    while true do
      local data, err, partial = c:receive(256 * 1024)
      total = total + #(data or partial or "")
      if not data then return total, err end
    end
  end

  setup(function()
    srv = H.start("spec/apps/stream.lua", { args = { "--send-timeout", "1" } })
  end)
  teardown(function() srv:stop() end)

  it("drops a client that takes none of a stream", function()
    local c = H.raw(srv.port)
    c:send("GET /until-closed HTTP/1.1\r\nHost: t\r\n\r\n")
    local t0, st = H.now()
    repeat
      H.pause(0.1)
      st = app_state(srv).closed
    until (st and st.ended) or H.now() - t0 > 6
    local took = H.now() - t0
    c:close()
    assert.is_true(st and st.ended)       -- cancelled as its write waited
    assert.is_true(took > 0.9 and took < 4, "dropped after " .. took)
  end)

  it("drops a client that takes none of a large plain response", function()
    local c = H.raw(srv.port)
    c:send("GET /blob/64 HTTP/1.1\r\nHost: t\r\n\r\n")
    c:settimeout(30)               -- making 64 MiB may take a loaded
    assert(c:receive(1))           -- machine seconds: from its start,
    H.pause(2.5)                   -- the timeout passes meanwhile
    local total = 1 + drain(c)
    c:close()
    assert.is_true(total > 0 and total < 64 * 1024 * 1024,
      "received " .. total)
    assert.equal(200, H.get(srv, "/state").status)
  end)

  it("counts the timeout from the write, not from the loop's last turn",
    function()
      local c = H.raw(srv.port, 10)
      c:send("GET /late-blob/16 HTTP/1.1\r\nHost: t\r\n\r\n")
      local total = drain(c)        -- as fast as it comes
      c:close()
      assert.is_true(total > 16 * 1024 * 1024, "received " .. total)
    end)

  -- Progress is libuv handing more bytes to the kernel, whose buffers
  -- (megabytes on loopback) must drain first: the reader must take a few
  -- MiB per timeout.  A 3 s timeout leaves room for a loaded machine.
  it("keeps a slow client that keeps reading", function()
    local slow = H.start("spec/apps/stream.lua",
      { args = { "--send-timeout", "3" } })
    finally(function() slow:stop() end)
    local c = H.raw(slow.port, 10)
    c:send("GET /blob/48 HTTP/1.1\r\nHost: t\r\n\r\n")
    local head = assert(c:receive("*l"))
    assert.equal("HTTP/1.1 200 OK", head)
    repeat local line = assert(c:receive("*l")) until line == ""
    local total, t0 = 0, H.now()
    while total < 48 * 1024 * 1024 and H.now() - t0 < 60 do
      local data = assert(c:receive(128 * 1024))
      total = total + #data
      H.pause(0.01)                -- about 10 MiB/s: slow, never stalled
    end
    local took = H.now() - t0
    c:close()
    assert.equal(48 * 1024 * 1024, total)
    assert.is_true(took > 3, "too fast to mean anything: " .. took)
  end)
end)

describe("the send timeout over TLS", function()
  local pki, srv, sc

  -- GET /state on the test's own keep-alive TLS connection.
  local function tls_state()
    assert(sc:send("GET /state HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    local res = assert(H.read_response(sc))
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  -- A stalled reader (spec/tls/stall.py) of PATH for SECONDS; its
  -- output once it has read to the end: total bytes and how it ended.
  local function stalled(path, seconds)
    local c = H.spawn(("python3 spec/tls/stall.py %d %s/ca.pem %s %s")
      :format(srv.port, pki, path, seconds), "stalled TLS client")
    return c, function()
      local deadline, out = H.now() + seconds + 15
      repeat
        out = H.slurp(c.out)
        if out:match("total %d+ end %a+") then break end
        H.pause(0.05)
      until H.now() > deadline
      c.stop()
      local total, why = out:match("total (%d+) end (%a+)")
      return tonumber(total), why
    end
  end

  setup(function()
    pki = os.tmpname()
    os.remove(pki)
    assert(os.execute("sh spec/tls/make-certs.sh " .. pki))
    srv = H.start("spec/apps/stream.lua", { args = { "--send-timeout", "1",
      "--tls-cert", pki .. "/server.pem", "--tls-key", pki .. "/server.key" } })
    sc = assert(H.tls(srv.port, { cafile = pki .. "/ca.pem" }))
  end)

  teardown(function()
    if sc then sc:close() end
    if srv then srv:stop() end
    if pki then os.execute("rm -rf " .. pki) end
  end)

  it("drops a TLS client that stops reading a stream, serving others",
    function()
      local t0 = H.now()
      local _, finish = stalled("/until-closed", 3)
      local st, polls
      polls = 0
      repeat                       -- another client, served meanwhile
        H.pause(0.1)
        st = tls_state().closed
        polls = polls + 1
      until (st and st.ended) or H.now() - t0 > 8
      local took = H.now() - t0
      assert.is_true(st and st.ended)     -- cancelled as its write waited
      assert.is_true(took > 0.9 and took < 5, "dropped after " .. took)
      assert.is_true(polls >= 5)
      local total, why = finish()
      assert.is_true(why == "eof" or why == "error", tostring(why))
      assert.is_true(total < 1024 * 1024 * 1024, tostring(total))
      local c = assert(H.tls(srv.port, { cafile = pki .. "/ca.pem" }))
      assert(c:send("GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"))
      assert.equal("hello", assert(H.read_response(c)).body)
      c:close()
    end)

  it("drops a TLS client that stops reading a large response", function()
    local _, finish = stalled("/blob/64", 2.5)
    local total, why = finish()
    assert.is_true(why == "eof" or why == "error", tostring(why))
    assert.is_true(total > 0 and total < 64 * 1024 * 1024, tostring(total))
    assert.is_table(tls_state())          -- the server still serves
  end)
end)
