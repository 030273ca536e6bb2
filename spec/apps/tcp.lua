-- moonlet.tcp against a throwaway redis-server (REDIS_PORT), and
-- lua-resty-redis, unmodified, over it (spec/tcp_spec.lua).
local moonlet = require "moonlet"
local tcp = moonlet.tcp
local app = moonlet.app()

local PORT = tonumber(os.getenv("REDIS_PORT"))

app:get("/patterns", function()
  local s = assert(tcp.connect("127.0.0.1", PORT))
  local out = {}
  out.sent = s:send("PING\r\n")
  out.line = s:receive("*l")                        -- "+PONG", no CR LF
  s:send({ "SET k ", { "hello" }, "\r\n", "GET k\r\n" })  -- arrays too
  out.ok = s:receive()                              -- "*l" by default
  out.head = s:receive("*l")                        -- "$5"
  out.body = s:receive(5)                           -- exactly 5 bytes
  out.crlf = s:receive(2)
  -- more than will come: timeout with what came
  s:settimeout(0.2)
  s:send("GET k\r\n")
  out.t_v, out.t_err, out.t_partial = s:receive(100)
  -- the server closes: "*a" reads to the end
  s:settimeout(2)
  s:send("QUIT\r\n")
  out.all = s:receive("*a")
  out.after, out.after_err, out.after_partial = s:receive("*l")
  s:close()
  out.closed_v, out.closed_err = s:send("x")
  return out
end)

app:get("/partial_close", function()
  local s = assert(tcp.connect("127.0.0.1", PORT))
  s:send("QUIT\r\n")
  local v, err, partial = s:receive(100)
  return { v = v, err = err, partial = partial }
end)

app:get("/keepalive", function()
  local out = {}
  local s = assert(tcp.connect("127.0.0.1", PORT))
  s:send("CLIENT ID\r\n")
  out.id1 = s:receive("*l")
  out.reused1 = s:getreusedtimes()
  out.keep = s:setkeepalive()
  out.after_keep = select(2, s:send("PING\r\n"))
  local s2 = assert(tcp.connect("127.0.0.1", PORT))
  s2:send("CLIENT ID\r\n")
  out.id2 = s2:receive("*l")
  out.reused2 = s2:getreusedtimes()
  -- unread bytes: not pooled
  s2:send("PING\r\n")
  moonlet.sleep(0.05)
  s2:receive(1)
  out.unread_ok, out.unread_err = s2:setkeepalive()
  return out
end)

app:get("/connect", function(req)
  local s, err = tcp.connect(req.query.host or "127.0.0.1",
    tonumber(req.query.port), { timeout = 0.5 })
  if not s then return { err = err } end
  local v, rerr, partial = s:receive("*l")
  return { v = v, err = rerr, partial = partial }
end)

-- a handler that waits in receive until its client leaves
app:get("/wait", function()
  local s = assert(tcp.connect("127.0.0.1", PORT))
  s:send("CLIENT SETNAME waiter\r\n")
  s:receive()
  s:settimeout(30)
  return { v = s:receive() }                        -- nothing comes
end)

-- TLS to a TLS-only redis-server (TLS_PORT, its CA in TLS_CA)
app:get("/tls", function(req)
  local tls = { ca_file = os.getenv("TLS_CA"), server_name = req.query.name }
  if req.query.system then tls = true end
  local s, err = tcp.connect("127.0.0.1", tonumber(os.getenv("TLS_PORT")),
    { tls = tls, timeout = 2 })
  if not s then return { err = err } end
  s:send("PING\r\n")
  local line, rerr = s:receive()
  local keep = s:setkeepalive()
  local s2 = assert(tcp.connect("127.0.0.1", tonumber(os.getenv("TLS_PORT")),
    { tls = tls }))
  return { line = line, err = rerr, keep = keep, reused = s2:getreusedtimes() }
end)

-- lua-resty-redis, unmodified, through a small ngx
local shim = require "ngx_shim"
local redis = shim.load("nginx.redis")

app:get("/resty", function()
  local red = redis:new()
  red:set_timeout(1000)
  assert(red:connect("127.0.0.1", PORT))
  local out = {}
  out.set = red:set("resty", "works")
  out.get = red:get("resty")
  out.missing = red:get("nope") == moonlet.null
  out.incr = red:incr("resty_n")
  red:init_pipeline()
  red:set("p1", "a")
  red:get("p1")
  red:lpush("plist", "x")
  out.pipeline = red:commit_pipeline()
  out.err_v, out.err = red:incr("resty")
  out.reused = red:get_reused_times()
  out.keep = red:set_keepalive(10000, 10)
  local red2 = redis:new()
  assert(red2:connect("127.0.0.1", PORT))
  out.reused2 = red2:get_reused_times()
  red2:close()
  return out
end)

return app
