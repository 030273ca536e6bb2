-- The HTTPS server (--tls-cert/--tls-key) against clients others wrote:
-- curl, openssl s_client, LuaSec and Python's ssl, with a throwaway PKI
-- made by spec/tls/make-certs.sh with the openssl CLI.
local H = require "helpers"
local cjson = require "cjson"

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function copy(from, to)
  assert(os.execute(("cp %s %s"):format(H.quote(from), H.quote(to))))
end

-- One request over a TLS connection; the response (helpers' reader).
local function send(conn, path, extra)
  assert(conn:send(("GET %s HTTP/1.1\r\nHost: localhost\r\n%s\r\n")
    :format(path, extra or "")))
  return assert(H.read_response(conn))
end

-- The SHA-256 fingerprint of a PEM certificate, as LuaSec prints it.
local function fingerprint(pem_file)
  local out = sh("openssl x509 -noout -fingerprint -sha256 -in " .. pem_file)
  return (out:match("=([%x:]+)"):gsub(":", ""):lower())
end

local function peer_fingerprint(conn)
  return conn:getpeercertificate():digest("sha256"):lower()
end

-- Reads from a raw socket until the peer closes; the seconds it took and
-- whether it was a close (not our own timeout).
local function time_to_close(c, limit)
  local t0 = H.now()
  c:settimeout(limit)
  while true do
    local _, err = c:receive(1)
    if err then
      return H.now() - t0, err == "closed"
    end
  end
end

describe("https server", function()
  local pki, dir, srv, cert, key, curl

  setup(function()
    pki = os.tmpname()
    os.remove(pki)
    assert(os.execute("sh spec/tls/make-certs.sh " .. pki))
    dir = pki .. "/static"
    assert(os.execute("mkdir -p " .. dir .. " && head -c 1048576 "
      .. "/dev/urandom > " .. dir .. "/big.bin"))
    -- the pair the server reads, replaced in place by the reload tests
    cert, key = pki .. "/live.pem", pki .. "/live.key"
    copy(pki .. "/server.pem", cert)
    copy(pki .. "/server.key", key)
    srv = H.start("spec/apps/https.lua", { env = "STATIC_DIR=" .. dir,
      args = { "--tls-cert", cert, "--tls-key", key,
               "--header-timeout", "1" } })
    curl = ("curl -sS --max-time 10 --cacert %s/ca.pem "):format(pki)
  end)

  teardown(function()
    if srv then srv:stop() end
    if pki then os.execute("rm -rf " .. pki) end
  end)

  local function url(path)
    return H.quote("https://localhost:" .. srv.port .. path)
  end

  it("says https in its listening line", function()
    assert.equal("https", srv.scheme)
  end)

  it("answers curl, verified against the CA", function()
    local out, code = sh(curl .. url("/hello"))
    assert.equal(0, code, out)
    assert.equal("hello", out)
  end)

  it("speaks TLS 1.2 and 1.3, and says which in req.tls", function()
    for flags, version in pairs { ["--tlsv1.2 --tls-max 1.2"] = "TLSv1.2",
                                  ["--tlsv1.3"] = "TLSv1.3" } do
      local out, code = sh(curl .. flags .. " " .. url("/info"))
      assert.equal(0, code, out)
      local info = cjson.decode(out)
      assert.equal("https", info.scheme)
      assert.equal(version, info.tls.version)
      assert.equal("localhost", info.tls.sni)
      assert.equal("http/1.1", info.tls.alpn)
      assert.truthy(#info.tls.cipher > 0)
    end
  end)

  it("refuses TLS 1.1 and older", function()
    local out = sh(("openssl s_client -connect 127.0.0.1:%d -tls1_1 "
      .. "</dev/null"):format(srv.port))
    assert.matches("alert protocol version", out)
    assert.matches("Cipher is %(NONE%)", out)
    assert.equal("hello", send(assert(H.tls(srv.port)), "/hello").body)
  end)

  it("selects ALPN http/1.1 and refuses a client without it", function()
    local out = sh(("openssl s_client -connect 127.0.0.1:%d -alpn "
      .. "h2,http/1.1 </dev/null"):format(srv.port))
    assert.matches("ALPN protocol: http/1.1", out)
    out = sh(("openssl s_client -connect 127.0.0.1:%d -alpn h2 </dev/null")
      :format(srv.port))
    assert.matches("no application protocol", out)
    local conn = assert(H.tls(srv.port, { sni = false }))
    local info = cjson.decode(send(conn, "/info").body)
    assert.equal(cjson.null, info.tls.alpn)      -- none offered, none chosen
    assert.equal(cjson.null, info.tls.sni)
    conn:close()
  end)

  it("keeps a TLS connection alive and answers pipelined requests",
      function()
    local conn = assert(H.tls(srv.port, { cafile = pki .. "/ca.pem" }))
    for _ = 1, 3 do
      assert.equal("hello", send(conn, "/hello").body)
    end
    local req = "GET /hello HTTP/1.1\r\nHost: localhost\r\n\r\n"
    assert(conn:send(req .. req .. "POST /echo HTTP/1.1\r\nHost: l\r\n"
      .. "Content-Length: 4\r\n\r\nbody" .. req))
    for _, want in ipairs { "hello", "hello", "body", "hello" } do
      assert.equal(want, assert(H.read_response(conn)).body)
    end
    conn:close()
  end)

  it("reads records cut every way, many requests to a write", function()
    for _, version in ipairs { "1.3", "1.2" } do
      local out, code = sh(("/usr/bin/python3 spec/clients/tls_records.py "
        .. "%d %s/ca.pem %s"):format(srv.port, pki, version))
      assert.equal(0, code, out)
      assert.equal(("hello\n"):rep(8), out)
    end
  end)

  it("resumes TLS 1.2 and 1.3 sessions from tickets, none from a cache",
      function()
    -- -ign_eof and a closing request: s_client waits for the server's
    -- close, so a TLS 1.3 ticket (sent after the handshake) is in
    local get = "printf 'GET /hello HTTP/1.1\\r\\nHost: l\\r\\n"
      .. "Connection: close\\r\\n\\r\\n' | "
    local function s_client(flags)
      return sh(("%sopenssl s_client -connect 127.0.0.1:%d -servername "
        .. "localhost -ign_eof %s"):format(get, srv.port, flags))
    end
    for _, v in ipairs { "1_2", "1_3" } do
      local sess = pki .. "/sess" .. v .. ".pem"
      local want = "TLSv" .. v:gsub("_", ".")
      local out = s_client("-tls" .. v .. " -sess_out " .. sess)
      assert.matches("\nNew, " .. want:gsub("%.", "%%."), out)
      assert.matches("TLS session ticket:",
                     sh("openssl sess_id -noout -text -in " .. sess))
      out = s_client("-tls" .. v .. " -sess_in " .. sess)
      assert.matches("\nReused, " .. want:gsub("%.", "%%."), out)
    end
    -- a TLS 1.2 session ID without its ticket: nothing kept to resume
    local sess = pki .. "/sess-id.pem"
    s_client("-tls1_2 -no_ticket -sess_out " .. sess)
    assert.matches("\nNew, TLSv1%.2",
                   s_client("-tls1_2 -no_ticket -sess_in " .. sess))
  end)

  it("sends a 1 MiB static file byte for byte", function()
    local out, code = sh(curl .. "-o " .. pki .. "/got.bin "
      .. url("/files/big.bin"))
    assert.equal(0, code, out)
    assert.equal(H.slurp(dir .. "/big.bin"), H.slurp(pki .. "/got.bin"))
  end)

  it("sends a 1 MiB file to a client that waits before reading",
      function()
    -- the socket fills: pieces the socket took in part wait in the queue
    local conn = assert(H.tls(srv.port))
    assert(conn:send("GET /files/big.bin HTTP/1.1\r\nHost: l\r\n\r\n"))
    H.pause(0.5)
    local res = assert(H.read_response(conn))
    assert.equal(200, res.status)
    assert.equal(H.slurp(dir .. "/big.bin"), res.body)
    assert.equal("hello", send(conn, "/hello").body)
    conn:close()
  end)

  it("sends a stream and events piece by piece", function()
    for _, path in ipairs { "/stream/0.4", "/events/0.4" } do
      local conn = assert(H.tls(srv.port))
      assert(conn:send("GET " .. path .. " HTTP/1.1\r\nHost: l\r\n\r\n"))
      repeat local line = conn:receive("*l") until line == ""
      local t0, got = H.now(), {}
      local text = ""
      while #got < 3 do
        local line = assert(conn:receive("*l"))
        local n = line:match("^piece (%d)") or line:match("^data: event (%d)")
        if n then
          got[#got + 1] = H.now() - t0
          text = text .. n
        end
      end
      assert.equal("123", text)
      assert.is_true(got[1] < 0.3, path)             -- not held back
      assert.is_true(got[2] - got[1] > 0.25, path)   -- as they were sent
      conn:close()
    end
  end)

  it("redirects to a folder's slash on the same scheme", function()
    local out, code = sh(curl .. "-o /dev/null -w '%{http_code} "
      .. "%{redirect_url}' " .. url("/files"))
    assert.equal(0, code, out)
    assert.equal("308 https://localhost:" .. srv.port .. "/files/", out)
  end)

  it("answers plain HTTP on its port with a clear-text 400", function()
    local c = H.raw(srv.port)
    c:send("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
    local res = assert(H.read_response(c))
    assert.equal(400, res.status)
    assert.matches("plain HTTP was sent to an HTTPS port", res.body)
    local _, closed = time_to_close(c, 3)
    assert.is_true(closed)
    c:close()
  end)

  it("closes a truncated ClientHello, garbage and a silent client",
      function()
    local hello = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
    for _, bytes in ipairs { hello, "\x16\x03\x01\x00\x05garbage!!",
                             "\x00\x01\x02\x03 not tls at all", "" } do
      local c = H.raw(srv.port)
      if bytes ~= "" then c:send(bytes) end
      local took, closed = time_to_close(c, 5)
      assert.is_true(closed)
      assert.is_true(took < 3, ("%q took %.1f s"):format(bytes, took))
      c:close()
    end
    assert.equal("hello", send(assert(H.tls(srv.port)), "/hello").body)
    assert.falsy(srv:log():match("request"))   -- none reached a handler
  end)

  it("serves wss:// to Python's websockets", function()
    local out, code = sh(("/usr/bin/python3 spec/clients/wss_python.py %d %s/ca.pem")
      :format(srv.port, pki))
    assert.equal(0, code, out)
    assert.equal("echoed\n", out)
  end)

  it("reads a new pair on SIGHUP; open connections keep theirs",
      function()
    local old = assert(H.tls(srv.port))
    assert.equal(fingerprint(pki .. "/server.pem"), peer_fingerprint(old))
    assert.equal("hello", send(old, "/hello").body)
    copy(pki .. "/server2.pem", cert)
    copy(pki .. "/server2.key", key)
    local mark = #srv:log()
    srv:kill("HUP", 0)
    assert.truthy(H.wait_for_log(srv, "loaded the certificate", 5))
    local new = assert(H.tls(srv.port, { cafile = pki .. "/ca.pem" }))
    assert.equal(fingerprint(pki .. "/server2.pem"), peer_fingerprint(new))
    assert.equal("hello", send(new, "/hello").body)
    assert.equal("hello", send(old, "/hello").body)  -- untouched
    -- a broken key: logged, and the pair in force stays
    copy(pki .. "/broken.key", key)
    srv:kill("HUP", 0)
    local deadline = H.now() + 5
    while not srv:log():sub(mark):match("keeping the ones loaded")
        and H.now() < deadline do
      H.pause(0.05)
    end
    assert.matches("keeping the ones loaded", srv:log():sub(mark))
    local after = assert(H.tls(srv.port, { cafile = pki .. "/ca.pem" }))
    assert.equal(fingerprint(pki .. "/server2.pem"), peer_fingerprint(after))
    assert.equal("hello", send(after, "/hello").body)
    for _, c in ipairs { old, new, after } do c:close() end
  end)
end)

describe("https server settings", function()
  local pki

  setup(function()
    pki = os.tmpname()
    os.remove(pki)
    assert(os.execute("sh spec/tls/make-certs.sh " .. pki))
  end)

  teardown(function()
    if pki then os.execute("rm -rf " .. pki) end
  end)

  it("exits 1 naming the reason when the pair does not load", function()
    local out, code = sh(("%s run spec/apps/https.lua --port 0 --tls-cert "
      .. "%s/server.pem --tls-key %s/broken.key"):format(H.bin, pki, pki))
    assert.equal(1, code, out)
    assert.matches("tls: cannot load the key", out)
    out, code = sh(("%s run spec/apps/https.lua --port 0 --tls-cert "
      .. "%s/server.pem"):format(H.bin, pki))
    assert.equal(2, code, out)
    assert.matches("%-%-tls%-cert and %-%-tls%-key go together", out)
  end)

  it("refuses --proxy-protocol with TLS as bad usage", function()
    local out, code = sh(("%s run spec/apps/https.lua --port 0 --tls-cert "
      .. "%s/server.pem --tls-key %s/server.key --proxy-protocol")
      :format(H.bin, pki, pki))
    assert.equal(2, code, out)
    assert.matches("%-%-proxy%-protocol does not work with TLS", out)
  end)

  it("resumes sessions across --workers 2", function()
    local srv = H.start("spec/apps/https.lua", { args = { "--workers", "2",
      "--tls-cert", pki .. "/server.pem", "--tls-key", pki .. "/server.key" } })
    local sess = pki .. "/sess.pem"
    local get = "printf 'GET /who HTTP/1.1\\r\\nHost: l\\r\\nConnection: "
      .. "close\\r\\n\\r\\n' | "
    local s_client = ("openssl s_client -connect 127.0.0.1:%d "
      .. "-servername localhost -ign_eof "):format(srv.port)
    local ok, err = pcall(function()
      local out = sh(get .. s_client .. "-sess_out " .. sess)
      assert.matches("\r\n\r\n[12]", out)
      local reused, workers = 0, {}
      for _ = 1, 20 do
        out = sh(get .. s_client .. "-sess_in " .. sess)
        if out:match("\nReused,") then reused = reused + 1 end
        local w = out:match("\r\n\r\n([12])")
        if w then workers[w] = true end
      end
      assert.equal(20, reused)
      assert.truthy(workers["1"] and workers["2"], "one worker served all")
    end)
    srv:stop()
    assert(ok, err)
  end)

  it("counts a handshake against --max-connections", function()
    local srv = H.start("spec/apps/https.lua", { args = {
      "--max-connections", "1", "--tls-cert", pki .. "/server.pem",
      "--tls-key", pki .. "/server.key" } })
    local ok, err = pcall(function()
      local silent = H.raw(srv.port)        -- connected, no ClientHello yet
      H.pause(0.2)
      local conn = assert(H.tls(srv.port))
      conn:send("GET /hello HTTP/1.1\r\nHost: l\r\n\r\n")
      assert.equal(503, assert(H.read_response(conn)).status)
      conn:close()
      silent:close()
      H.pause(0.2)
      conn = assert(H.tls(srv.port))
      assert.equal("hello", send(conn, "/hello").body)
      conn:close()
    end)
    srv:stop()
    assert(ok, err)
  end)

  it("says http in req.scheme on a plain listener", function()
    local srv = H.start("spec/apps/https.lua")
    local res = H.get(srv, "/info")
    srv:stop()
    assert.same({ scheme = "http", tls = cjson.null }, cjson.decode(res.body))
  end)
end)
