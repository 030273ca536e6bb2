-- The https client (moonlet.http over TLS) against real TLS servers:
-- Python's ssl module (spec/tls/server.py) on 127.0.0.1 with a throwaway
-- PKI made by spec/tls/make-certs.sh with the openssl CLI.
local H = require "helpers"
local cjson = require "cjson"
local socket = require "socket"

local function escape(s)
  return (tostring(s):gsub("[^%w%-_.~]", function(c)
    return ("%%%02X"):format(c:byte())
  end))
end

local function query(t)
  local parts = {}
  for _, kv in ipairs(t) do
    parts[#parts + 1] = kv[1] .. "=" .. escape(kv[2])
  end
  return table.concat(parts, "&")
end

--- A TLS backend: spec/tls/server.py with this pair (and client CA).
local function start_backend(pki, cert, key, client_ca)
  local b = H.spawn(("python3 spec/tls/server.py %s/%s %s/%s %s"):format(
    pki, cert, pki, key, client_ca and (pki .. "/" .. client_ca) or ""),
    "TLS backend")
  b.url = "https://localhost:" .. b.port
  return b
end

local function stop_backend(b)
  if b then b.stop() end
end

local function fd_count(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd 2>/dev/null | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

describe("https client", function()
  local pki, srv, srv_env, main, rogue, other, mtls

  local function call(server, route, params)
    local res = H.get(server, route .. "?" .. query(params),
      { timeout = 30 })
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function stats(b)
    return cjson.decode(call(srv, "/one", { { "url", b.url .. "/stats" },
      { "ca", pki .. "/ca.pem" } }).body)
  end

  setup(function()
    pki = os.tmpname()
    os.remove(pki)
    assert(os.execute("sh spec/tls/make-certs.sh " .. pki))
    main = start_backend(pki, "server.pem", "server.key")
    rogue = start_backend(pki, "rogue.pem", "rogue.key")
    other = start_backend(pki, "other.pem", "other.key")
    mtls = start_backend(pki, "server.pem", "server.key", "ca.pem")
    srv = H.start("spec/apps/https_client.lua")
    srv_env = H.start("spec/apps/https_client.lua",
      { env = "SSL_CERT_FILE=" .. pki .. "/ca.pem" })
  end)

  teardown(function()
    if srv then srv:stop() end
    if srv_env then srv_env:stop() end
    for _, b in ipairs { main, rogue, other, mtls } do stop_backend(b) end
    if pki then os.execute("rm -rf " .. pki) end
  end)

  it("verifies the server against ca_file and gets the page", function()
    local o = call(srv, "/one", { { "url", main.url .. "/hello" },
      { "ca", pki .. "/ca.pem" } })
    assert.same({ status = 200, body = "hello" }, o)
  end)

  it("refuses a server the system store does not trust", function()
    local o = call(srv, "/one", { { "url", main.url .. "/hello" } })
    assert.matches("^tls: certificate verify failed %(.+%)$", o.err)
    o = call(srv, "/one", { { "url", rogue.url .. "/hello" },
      { "ca", pki .. "/ca.pem" } })
    assert.matches("^tls: certificate verify failed %(.+%)$", o.err)
  end)

  it("refuses a certificate for another name", function()
    local o = call(srv, "/one", { { "url", other.url .. "/hello" },
      { "ca", pki .. "/ca.pem" } })
    assert.equal("tls: certificate verify failed (hostname mismatch)", o.err)
    -- server_name names the one to check (and SNI)
    o = call(srv, "/one", { { "url", other.url .. "/sni" },
      { "ca", pki .. "/ca.pem" }, { "sni", "other.example" } })
    assert.same({ status = 200, body = "other.example" }, o)
  end)

  it("checks an IP address against the certificate's", function()
    local o = call(srv, "/one", { { "url", "https://127.0.0.1:" .. main.port
      .. "/sni" }, { "ca", pki .. "/ca.pem" } })
    assert.same({ status = 200, body = "" }, o)    -- no SNI for addresses
  end)

  it("skips the checks with verify = false", function()
    local o = call(srv, "/one", { { "url", rogue.url .. "/hello" },
      { "verify", "0" } })
    assert.same({ status = 200, body = "hello" }, o)
  end)

  it("honours SSL_CERT_FILE for the default store", function()
    local o = call(srv_env, "/one", { { "url", main.url .. "/hello" } })
    assert.same({ status = 200, body = "hello" }, o)
  end)

  it("says when the CA file does not load", function()
    local o = call(srv, "/one", { { "url", main.url .. "/hello" },
      { "ca", pki .. "/missing.pem" } })
    assert.matches("^tls: cannot load the CA file", o.err)
  end)

  it("sends a client certificate to a server that asks", function()
    local o = call(srv, "/one", { { "url", mtls.url .. "/peer" },
      { "ca", pki .. "/ca.pem" }, { "cert", pki .. "/client.pem" },
      { "key", pki .. "/client.key" } })
    assert.same({ status = 200, body = "client" }, o)
    o = call(srv, "/one", { { "url", mtls.url .. "/peer" },
      { "ca", pki .. "/ca.pem" } })
    assert.is_nil(o.status)
    -- the alert, or a reset that came first
    assert.is_truthy(o.err:match("^tls: ") or o.err == "closed", o.err)
  end)

  it("sends SNI", function()
    local o = call(srv, "/one", { { "url", main.url .. "/sni" },
      { "ca", pki .. "/ca.pem" } })
    assert.same({ status = 200, body = "localhost" }, o)
  end)

  it("keeps one connection for five calls in a row", function()
    local before = stats(main).conns
    local o = call(srv, "/seq", { { "url", main.url .. "/hello" },
      { "ca", pki .. "/ca.pem" }, { "n", 5 } })
    for i = 1, 5 do
      assert.same({ status = 200, body = "hello" }, o.results[i])
    end
    assert.is_true(o.connects <= 1)
    assert.is_true(stats(main).conns - before <= 2)  -- and /stats's own
  end)

  it("resumes the session on a new connection", function()
    local before = stats(main)
    -- /eof closes each connection: every call after the first (which may
    -- take a pooled one) opens a new one and offers the last session
    local o = call(srv, "/seq", { { "url", main.url .. "/eof" },
      { "ca", pki .. "/ca.pem" }, { "n", 3 } })
    assert.is_true(o.connects >= 2)
    local after = stats(main)
    assert.is_true(after.handshakes - before.handshakes >= 2)
    assert.is_true(after.reused - before.reused >= 2, cjson.encode(after))
  end)

  --- The backend's counters, read on one keep-alive connection of the
  -- test's own (LuaSec), so reading them opens none.
  local function direct_stats(conn)
    assert(conn:send("GET /stats HTTP/1.1\r\nHost: localhost\r\n\r\n"))
    local res = assert(H.read_response(conn))
    return cjson.decode(res.body)
  end

  it("opens at most n connections for rounds of n calls at once",
    function()
      local sc = assert(H.tls(main.port, { cafile = pki .. "/ca.pem" }))
      local before = direct_stats(sc)
      local o = call(srv, "/fan", { { "url", main.url .. "/slow?ms=50" },
        { "ca", pki .. "/ca.pem" }, { "n", 8 }, { "rounds", 4 } })
      assert.same({ ["200"] = 32 }, o.statuses)
      assert.is_true(o.connects <= 8, o.connects)
      local after = direct_stats(sc)
      assert.equal(32, after.slow - before.slow)
      assert.is_true(after.conns - before.conns <= 8,
        after.conns - before.conns)
      sc:close()
    end)

  it("reopens after Connection: close, resuming the session", function()
    local sc = assert(H.tls(main.port, { cafile = pki .. "/ca.pem" }))
    local before = direct_stats(sc)
    -- server_name makes a pool of its own: no connection idle in it
    local o = call(srv, "/seq", { { "url", main.url .. "/close" },
      { "ca", pki .. "/ca.pem" }, { "sni", "localhost" }, { "n", 4 } })
    for i = 1, 4 do
      assert.same({ status = 200, body = "closing" }, o.results[i])
    end
    assert.equal(4, o.connects)
    local after = direct_stats(sc)
    -- each call needs a new connection, the server having closed the
    -- last one; each after the first resumes the pool's session
    assert.equal(4, after.conns - before.conns)
    assert.is_true(after.reused - before.reused >= 3, cjson.encode(after))
    sc:close()
  end)

  it("keeps the connections of handlers whose clients left", function()
    local sc = assert(H.tls(main.port, { cafile = pki .. "/ca.pem" }))
    local n = 8
    local before = direct_stats(sc)
    -- n handlers wait on the backend at once; their clients leave
    local clients = {}
    for i = 1, n do
      clients[i] = H.start_get(srv, "/one?" .. query {
        { "url", main.url .. "/slow?ms=100" }, { "ca", pki .. "/ca.pem" } })
    end
    local deadline = H.now() + 5
    while direct_stats(sc).slow - before.slow < n and H.now() < deadline do
      H.pause(0.02)
    end
    assert.equal(n, direct_stats(sc).slow - before.slow)
    for i = 1, n do clients[i]:close() end      -- each handler cancelled
    H.pause(0.5)             -- the responses came; the drains are over
    -- n more at once, twice: the connections of the first n serve them
    local o = call(srv, "/fan", { { "url", main.url .. "/slow?ms=50" },
      { "ca", pki .. "/ca.pem" }, { "n", n }, { "rounds", 2 } })
    assert.same({ ["200"] = 2 * n }, o.statuses)
    local after = direct_stats(sc)
    assert.is_true(after.conns - before.conns <= n,
      after.conns - before.conns)
    sc:close()
  end)

  it("reads chunked and close-delimited bodies", function()
    local o = call(srv, "/one", { { "url", main.url .. "/chunked" },
      { "ca", pki .. "/ca.pem" } })
    assert.same({ status = 200, body = "onetwothree" }, o)
    o = call(srv, "/one", { { "url", main.url .. "/eof" },
      { "ca", pki .. "/ca.pem" } })
    assert.same({ status = 200, body = "all of it" }, o)
  end)

  it("fails a close-delimited body cut without close_notify", function()
    local o = call(srv, "/one", { { "url", main.url .. "/truncate" },
      { "ca", pki .. "/ca.pem" } })
    assert.same({ err = "closed" }, o)
  end)

  it("closes the socket of a handler cancelled mid-handshake", function()
    local l = assert(socket.bind("127.0.0.1", 0))
    local _, lport = l:getsockname()
    local c = H.raw(srv.port)
    c:send("GET /one?" .. query { { "url", "https://127.0.0.1:" .. lport },
      { "timeout", 30 } } .. " HTTP/1.1\r\nHost: t\r\n\r\n")
    l:settimeout(5)
    local peer = assert(l:accept())          -- TCP, but no handshake
    local hello = peer:receive(5)            -- the ClientHello's record
    assert.equal(0x16, hello:byte(1))
    c:close()                                -- the handler is cancelled
    peer:settimeout(2)
    local t0 = H.now()
    local _, err = peer:receive("*a")      -- to the end: nil err
    assert.is_nil(err)
    assert.is_true(H.now() - t0 < 2)
    peer:close()
    l:close()
  end)

  it("leaks no descriptor over 1,000 mixed calls", function()
    local q = { { "ca", pki .. "/ca.pem" }, { "n", 1000 },
      { "u", main.url .. "/hello" }, { "u", main.url .. "/eof" },
      { "u", rogue.url .. "/hello" }, { "u", main.url .. "/truncate" },
      { "u", main.url .. "/chunked" } }
    call(srv, "/mixed", { q[1], { "n", 5 }, q[3], q[4], q[5], q[6], q[7] })
    local before = fd_count(srv.pid)
    local o = call(srv, "/mixed", q)
    assert.equal(1000, o.ok + o.failed)
    assert.equal(600, o.ok)
    assert.is_true(fd_count(srv.pid) <= before + 1)
  end)
end)
