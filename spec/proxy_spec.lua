-- Behind a proxy: --proxy-headers with --forwarded-allow-ips (Forwarded,
-- X-Forwarded-For and -Proto set req.remote_addr and req.scheme, from
-- trusted peers only), --proxy-protocol (a PROXY v1 or v2 header first,
-- else the connection closes; HAProxy in front for real), and
-- --drain-delay with a readiness route.
local H = require "helpers"
local socket = require "socket"

local function who(srv, headers)
  local res = H.get(srv, "/who", { headers = headers })
  assert.equal(200, res.status)
  return res.body
end

-- Sends raw bytes (in pieces, with pauses, when given a list) on a new
-- connection; the response, or nil and why.
local function raw(srv, pieces)
  local c = H.raw(srv.port)
  if type(pieces) == "string" then pieces = { pieces } end
  for i, p in ipairs(pieces) do
    c:send(p)
    if i < #pieces then H.pause(0.05) end
  end
  local res, err = H.read_response(c)
  c:close()
  return res, err
end

local GET = "GET /who HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
local V2_SIG = "\r\n\r\n\0\r\nQUIT\n"

-- A PROXY v2 header for TCP over IPv4 from a.b.c.d:sport; with_ssl adds
-- an SSL TLV saying the client spoke TLS to the proxy.
local function v2(a, b, c, d, sport, with_ssl)
  local tlv = with_ssl and "\x20\x00\x05\x01\0\0\0\0" or ""
  local body = string.char(a, b, c, d, 10, 0, 0, 1, sport >> 8, sport & 255,
    0, 80) .. tlv
  return V2_SIG .. "\x21\x11" .. string.char(#body >> 8, #body & 255) .. body
end

describe("--proxy-headers", function()
  local srv, plain, strict
  setup(function()
    srv = H.start("spec/apps/proxy.lua",
      { args = { "--proxy-headers", "--access-log", "-" } })
    plain = H.start("spec/apps/proxy.lua")
    strict = H.start("spec/apps/proxy.lua", { args = { "--proxy-headers",
      "--forwarded-allow-ips", "10.0.0.0/8, 2001:db8::/32" } })
  end)
  teardown(function()
    srv:stop(); plain:stop(); strict:stop()
  end)

  it("takes the client from X-Forwarded-For and -Proto of a trusted peer",
    function()
    assert.equal("203.0.113.9 https", who(srv, { ["X-Forwarded-For"] =
      "203.0.113.9", ["X-Forwarded-Proto"] = "https" }))
    local out = { log = function() return H.slurp(srv.out) end }
    assert.truthy(H.wait_for_log(out,       -- the access log's address
      "\n203%.0%.113%.9 %- %- %[[^\n]*\"GET /who HTTP/1%.1\" 200"))
    assert.equal("127.0.0.1 http", who(srv, {}))
  end)

  it("walks the chain from the nearest proxy: the first untrusted is the "
    .. "client", function()
    assert.equal("203.0.113.9 http", who(srv, { ["X-Forwarded-For"] =
      "1.1.1.1, 203.0.113.9" }))
    assert.equal("198.51.100.4 http", who(srv, { ["X-Forwarded-For"] =
      "198.51.100.4, 127.0.0.1" }))
  end)

  it("reads RFC 7239 Forwarded, which wins over X-Forwarded-*", function()
    assert.equal("2001:db8::1 https", who(srv, { Forwarded =
      'for="[2001:db8::1]:4711";proto=https;by=127.0.0.1' }))
    assert.equal("192.0.2.60 http", who(srv, { Forwarded = "for=192.0.2.60",
      ["X-Forwarded-For"] = "203.0.113.9", ["X-Forwarded-Proto"] = "https" }))
    assert.equal("127.0.0.1 http", who(srv, { Forwarded = "for=unknown" }))
  end)

  it("ignores the headers without the flag, or from an untrusted peer",
    function()
    local spoof = { ["X-Forwarded-For"] = "203.0.113.9",
      ["X-Forwarded-Proto"] = "https", Forwarded = "for=192.0.2.1" }
    assert.equal("127.0.0.1 http", who(plain, spoof))
    assert.equal("127.0.0.1 http", who(strict, spoof))
  end)

  it("refuses a bad --forwarded-allow-ips with a clear message", function()
    local code, _, err = H.cli({ "run", "spec/apps/proxy.lua",
      "--forwarded-allow-ips", "10.0.0.0/40" })
    assert.equal(2, code)
    assert.matches("not an address or range: 10%.0%.0%.0/40", err)
  end)
end)

describe("--proxy-protocol", function()
  local srv, strict
  setup(function()
    srv = H.start("spec/apps/proxy.lua", { args = { "--proxy-protocol" } })
    strict = H.start("spec/apps/proxy.lua", { args = { "--proxy-protocol",
      "--forwarded-allow-ips", "10.0.0.0/8" } })
  end)
  teardown(function() srv:stop(); strict:stop() end)

  it("takes the client from a version 1 header", function()
    local res = raw(srv, "PROXY TCP4 192.0.2.7 198.51.100.1 56324 80\r\n"
      .. GET)
    assert.equal("192.0.2.7 http", res.body)
    res = raw(srv, "PROXY TCP6 2001:db8::7 2001:db8::1 1000 80\r\n" .. GET)
    assert.equal("2001:db8::7 http", res.body)
    res = raw(srv, "PROXY UNKNOWN\r\n" .. GET)
    assert.equal("127.0.0.1 http", res.body)
  end)

  it("takes the client and TLS from a version 2 header, in pieces too",
    function()
    local h = v2(192, 0, 2, 9, 40000, true)
    assert.equal("192.0.2.9 https", raw(srv, h .. GET).body)
    assert.equal("192.0.2.9 https",
      raw(srv, { h:sub(1, 5), h:sub(6, 20), h:sub(21) .. GET }).body)
    local loc = V2_SIG .. "\x20\x00\x00\x00"      -- LOCAL: a health check
    assert.equal("127.0.0.1 http", raw(srv, loc .. GET).body)
  end)

  it("keeps the header's client for every request on the connection",
    function()
    local c = H.raw(srv.port)
    c:send(v2(192, 0, 2, 10, 1, false)
      .. "GET /who HTTP/1.1\r\nHost: t\r\n\r\n")
    assert.equal("192.0.2.10 http", H.read_response(c).body)
    c:send(GET)
    assert.equal("192.0.2.10 http", H.read_response(c).body)
    c:close()
  end)

  it("closes a connection whose header is missing or bad", function()
    for _, bytes in ipairs { GET, "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n" .. GET,
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n" .. GET,
        V2_SIG .. "\x22\x11\x00\x0c" .. string.rep("\0", 12) .. GET } do
      local res, err = raw(srv, bytes)
      assert.is_nil(res)
      assert.equal("closed", err)
    end
    assert.equal("192.0.2.7 http", raw(srv,
      "PROXY TCP4 192.0.2.7 198.51.100.1 1 80\r\n" .. GET).body)
  end)

  it("closes a peer outside --forwarded-allow-ips at once", function()
    local res, err = raw(strict, v2(192, 0, 2, 9, 1, false) .. GET)
    assert.is_nil(res)
    assert.equal("closed", err)
  end)

  it("serves through HAProxy with send-proxy-v2", function()
    local s = socket.bind("127.0.0.1", 0)
    local _, port = s:getsockname()
    s:close()
    local dir = H.write_app("", "x")
    dir = dir:match("^(.*)/")
    local cfg = dir .. "/haproxy.cfg"
    local f = assert(io.open(cfg, "w"))
    f:write(([[
defaults
  mode http
  timeout connect 2s
  timeout client 5s
  timeout server 5s
frontend in
  bind 127.0.0.1:%d
  default_backend hosts
backend hosts
  server h1 127.0.0.1:%d send-proxy-v2
]]):format(port, srv.port))
    f:close()
    os.execute(("haproxy -f %s -db > %s/out 2>&1 & echo $! > %s/pid")
      :format(cfg, dir, dir))
    local pid = tonumber(H.slurp(dir .. "/pid"))
    finally(function() os.execute("kill " .. pid) end)
    local body
    for _ = 1, 50 do        -- until HAProxy listens
      local p = io.popen(("curl -s --interface 127.0.0.2 "
        .. "http://127.0.0.1:%d/who"):format(port))
      body = p:read("a")
      p:close()
      if body ~= "" then break end
      H.pause(0.05)
    end
    assert.equal("127.0.0.2 http", body)
  end)
end)

describe("--drain-delay", function()
  it("serves on with a 503 readiness route, then closes and drains",
    function()
    local srv = H.start("spec/apps/proxy.lua", { args = { "--drain-delay",
      "0.8", "--grace", "2" } })
    finally(function() srv:stop() end)
    assert.equal(200, H.get(srv, "/ready").status)
    local c = H.raw(srv.port)
    os.execute("kill -TERM " .. srv.pid)
    assert.truthy(H.wait_for_log(srv, "SIGTERM: draining for 0%.8 s"))
    local t0 = H.now()
    local res = H.get(srv, "/ready")             -- new connections still
    assert.equal(503, res.status)
    assert.equal("draining", res.body)
    assert.equal(200, H.get(srv, "/who").status)
    c:send("GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")   -- in flight at the end
    assert.equal(503, H.get(srv, "/ready").status)
    assert.truthy(H.wait_for_log(srv, "drain delay over", 3))
    assert.truthy(H.now() - t0 > 0.5)
    assert.is_nil(socket.connect("127.0.0.1", srv.port))  -- listener gone
    assert.equal("slow", H.read_response(c).body)
    assert.equal(0, srv:kill("TERM", 5) or srv:status())
  end)

  it("lets a second signal end the delay at once", function()
    local srv = H.start("spec/apps/proxy.lua", { args = { "--drain-delay",
      "30" } })
    finally(function() srv:stop() end)
    os.execute("kill -TERM " .. srv.pid)
    assert.truthy(H.wait_for_log(srv, "draining for 30 s"))
    local t0 = H.now()
    assert.equal(0, srv:kill("TERM", 5))
    assert.truthy(H.now() - t0 < 3)
  end)
end)
