-- moonlet.tcp's cosockets against a throwaway redis-server, and an
-- unmodified OpenResty driver (Debian's lua-nginx-redis) running over them
-- through a small ngx (spec/apps/ngx_shim.lua).
local helpers = require "helpers"
local stores = require "stores"
local cjson = require "cjson"
local socket = require "socket"

describe("moonlet.tcp", function()
  local rd, rd_tls, srv

  local function get(path)
    local res = helpers.get(srv, path, { timeout = 30 })
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  setup(function()
    rd = stores.redis()
    rd_tls = stores.redis({ tls = true })
    srv = helpers.start("spec/apps/tcp.lua", { env = ("REDIS_PORT=%d "
      .. "TLS_PORT=%d TLS_CA=%s"):format(rd.port, rd_tls.port, rd_tls.ca) })
  end)

  teardown(function()
    if srv then srv:stop() end
    if rd then rd:stop() end
    if rd_tls then rd_tls:stop() end
  end)

  it("receives lines, counts and everything to the end", function()
    local p = get("/patterns")
    assert.equal(6, p.sent)
    assert.equal("+PONG", p.line)
    assert.equal("+OK", p.ok)
    assert.equal("$5", p.head)
    assert.equal("hello", p.body)
    assert.equal("\r\n", p.crlf)
    assert.equal("+OK\r\n", p.all)
    assert.equal("closed", p.after_err)
    assert.equal("", p.after_partial)
    assert.equal("closed", p.closed_err)
  end)

  it("gives nil, err and the partial data on timeout or close", function()
    local p = get("/patterns")
    assert.equal("timeout", p.t_err)
    assert.equal("$5\r\nhello\r\n", p.t_partial)
    local c = get("/partial_close")
    assert.equal("closed", c.err)
    assert.equal("+OK\r\n", c.partial)
  end)

  it("keeps connections alive in a pool per host and port", function()
    local k = get("/keepalive")
    assert.equal(1, k.keep)
    assert.equal(0, k.reused1)
    assert.equal(1, k.reused2)
    assert.equal(k.id1, k.id2)                -- the same connection
    assert.equal("closed", k.after_keep)      -- the holder let it go
    assert.equal("unread data in buffer", k.unread_err)
  end)

  it("reports connection failures as short strings", function()
    assert.equal("connection refused",
      get("/connect?port=" .. stores.free_port()).err)
    assert.matches("^dns: ", get("/connect?host=nowhere.invalid&port=1").err)
  end)

  it("times out reading from a server that never answers", function()
    local silent = assert(socket.bind("127.0.0.1", 0))
    local _, port = silent:getsockname()
    local r = get("/connect?port=" .. port)
    silent:close()
    assert.equal("timeout", r.err)
    assert.equal("", r.partial)
  end)

  it("closes the socket when its handler's client leaves", function()
    local function waiting()
      return select(2, rd:cli("CLIENT", "LIST"):gsub("name=waiter", ""))
    end
    local c = helpers.raw(srv.port)
    c:send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n")
    local n
    for _ = 1, 100 do
      n = waiting()
      if n == 1 then break end
      socket.sleep(0.02)
    end
    assert.equal(1, n)
    c:close()
    for _ = 1, 100 do                         -- within 2 s, not 30
      n = waiting()
      if n == 0 then break end
      socket.sleep(0.02)
    end
    assert.equal(0, n)
  end)

  it("speaks TLS, checking the certificate and the name", function()
    local t = get("/tls")
    assert.is_nil(t.err)
    assert.equal("+PONG", t.line)
    assert.equal(1, t.keep)
    assert.equal(1, t.reused)                 -- TLS connections pool too
    assert.matches("^tls: .*verif", get("/tls?system=1").err)
    assert.matches("^tls: ", get("/tls?name=other.example").err)
  end)

  it("runs lua-resty-redis unmodified through a small ngx", function()
    local r = get("/resty")
    assert.equal("OK", r.set)
    assert.equal("works", r.get)
    assert.is_true(r.missing)
    assert.equal(1, r.incr)
    assert.same({ "OK", "a", 1 }, r.pipeline)
    assert.matches("not an integer", r.err)
    assert.equal(0, r.reused)
    assert.equal(1, r.keep)
    assert.equal(1, r.reused2)                -- set_keepalive pooled it
    assert.equal("works", rd:cli("GET", "resty"))
  end)
end)
