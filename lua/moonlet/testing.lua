--- Testing apps with busted, as Flask's test_client does.
-- `testing.client(app_or_path [, opts])` serves the app in this Lua state
-- on 127.0.0.1 and a free port; `client:get`, `client:post` and
-- `client:request` send real HTTP over loopback through the production
-- code path and turn the loop until the response has arrived.
-- Needs the Lua module (`require "moonlet"` from a stock lua5.4).
-- @module moonlet.testing

local moonlet = require "moonlet"
local core = require "moonlet.core"
local http = require "moonlet.http"

local type, pairs, next, error, tostring, setmetatable, getmetatable =
  type, pairs, next, error, tostring, setmetatable, getmetatable
local format, sub, find = string.format, string.sub, string.find

local M = {}

local serve, restore_modules     -- defined below, used by M.client

-- The server's log lines since the last look, onto client.log.
local function take_log(c)
  local more = core.log_take()
  if more ~= "" then
    c.log = c.log .. more
  end
end

-- The network's moonlet.http.request: the client's own requests use it,
-- and so do the app's calls no stub answers.  (busted may load this file
-- again over the same moonlet.http: keep the first.)
local raw_request = http._network_request or http.request
http._network_request = raw_request

-- Responses as moonlet.http returns them (status, headers, body, json()),
-- shown with their status and body when an assertion prints them.
local shown = setmetatable({}, { __mode = "k" })   -- http mt -> ours

local function body_excerpt(body)
  body = tostring(body or "")
  if #body > 2000 then
    return sub(body, 1, 2000) .. format("... (%d bytes)", #body)
  end
  return body
end

local function show(res)
  local mt = getmetatable(res)
  local ours = shown[mt]
  if not ours then
    ours = { __index = mt and mt.__index or mt,
      __name = "moonlet.testing.Response" }
    ours.__tostring = function(r)
      return format("HTTP %s\n%s", tostring(r.status), body_excerpt(r.body))
    end
    shown[mt] = ours
  end
  return setmetatable(res, ours)
end

-- luassert prints a table with its own formatter, which ignores
-- __tostring: ours shows a response as "HTTP 404" and its body.  And
-- `assert.status(200, res)` fails with the whole response in its message.
local luassert, say
do
  local ok, a = pcall(require, "luassert")
  local ok2, sy = pcall(require, "say")
  if ok and ok2 then
    luassert, say = a, sy
  end
end

local function format_response(v)
  local mt = type(v) == "table" and getmetatable(v)
  if mt and mt.__name == "moonlet.testing.Response" then
    return tostring(v)
  end
end

if luassert then
  say:set("assertion.status.positive",
    "Expected HTTP status %s; the response was:\n%s")
  say:set("assertion.status.negative",
    "Expected an HTTP status other than %s; the response was:\n%s")
  luassert:register("assertion", "status", function(_, args)
    local want, res = args[1], args[2]
    local got = type(res) == "table" and res.status
    args[1] = tostring(want)
    args[2] = type(res) == "table" and tostring(show(res)) or tostring(res)
    args.nofmt = { true, true }
    return got == want
  end, "assertion.status.positive", "assertion.status.negative")
end

-- A test client (moonlet.testing.client); its annotations for editors
-- are in lua/types/moonlet/testing.lua.
local Client = {}
Client.__index = Client






--- The virtual clock of a client made with {virtual_time = true}.
local Clock = {}
Clock.__index = Clock

--- `clock:advance(seconds)`: moves time forward, firing the timers,
-- sleeps and wait timeouts that come due, in order, each at its own
-- time, and turns the loop after each so that what it woke runs on.
function Clock:advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("clock:advance: a number of seconds >= 0 expected", 2)
  end
  core.loop_advance(seconds)
  take_log(self.client)
end

--- `clock:now()`: the virtual time in seconds, as moonlet.now() says.
function Clock:now()
  return core.now()
end

-- The client whose stubs apply (the last made), kept in the registry:
-- busted loads this file again for each spec file, and a new client must
-- still close the previous file's.
local registry = debug.getregistry()
local current = registry["moonlet.testing.current"]

-- What an app file's load adds to package.loaded and package.path is
-- taken back when its client closes, so that the next app, loaded from
-- elsewhere, requires its own modules and not these.
local function snapshot_modules(c)
  local before = {}
  for k in pairs(package.loaded) do
    before[k] = true
  end
  c.loaded_before, c.path_before = before, package.path
end

function restore_modules(c)
  if not c.loaded_before then
    return
  end
  for k in pairs(package.loaded) do
    if not c.loaded_before[k] and sub(k, 1, 8) ~= "moonlet." and k ~= "moonlet" then
      package.loaded[k] = nil
    end
  end
  package.path = c.path_before
  c.loaded_before = nil
end

-- opts.tls: a throwaway certificate (made with libcrypto) and its key,
-- in files the client removes on close (the key once it is loaded); the
-- client's own requests trust that certificate and no other.
local function write_file(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function use_tls(c, on)
  if not on then
    core.loop_tls(nil)
    return
  end
  local cert, key = core.tls_throwaway()
  local cert_path, key_path = os.tmpname(), os.tmpname()
  write_file(cert_path, cert)
  write_file(key_path, key)
  local ok, err = pcall(core.loop_tls, cert_path, key_path)
  os.remove(key_path)
  if not ok then
    os.remove(cert_path)
    error(err, 0)
  end
  c.ca_file = cert_path
end

-- Serves app_or_path in this state; the port and the scheme.
function serve(c, app_or_path)
  if type(app_or_path) == "table" then
    return moonlet.serve(app_or_path)
  end
  local boot = require "moonlet.boot"
  snapshot_modules(c)
  return core.loop_serve(core.loop_run(boot.load_app, app_or_path))
end


--- Makes a test client for an app (a table from moonlet.app()) or an app
-- file's path, served from this Lua state.  One app is served per state:
-- a new client replaces the previous one's app.
-- opts.timeout: seconds a request may take (10).  opts.tls: served over
-- TLS with a throwaway certificate, which the client's requests (and
-- websockets and streams) trust; client.url is https://.  opts.virtual_time:
-- the app's timers, sleeps and wait timeouts follow client.clock (its
-- file's too, when app_or_path is a path; a table's timers made before
-- this call stay on real time).
-- @return the client
function M.client(app_or_path, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("testing.client: opts must be a table", 2)
  end
  if type(app_or_path) ~= "string" and type(app_or_path) ~= "table" then
    error("testing.client: an app or the path of an app file expected", 2)
  end
  if current then
    current:close()          -- its timers, tasks and modules go
  end
  core.log_capture(opts.log ~= "stderr")
  core.loop_virtual_time(opts.virtual_time == true)
  local c = setmetatable({
    timeout = opts.timeout or 10,
    stubs = {},
    cookies = {},
    streams = setmetatable({}, { __mode = "k" }),
    log = "",
  }, Client)
  if opts.virtual_time then
    c.clock = setmetatable({ client = c }, Clock)
  end
  local ok, port, scheme = pcall(use_tls, c, opts.tls)
  if ok then
    ok, port, scheme = pcall(serve, c, app_or_path)
  end
  c.log = c.log .. core.log_take()
  if not ok then
    restore_modules(c)
    if c.ca_file then os.remove(c.ca_file) end
    error(port, 2)
  end
  c.port = port
  c.scheme = scheme
  c.url = scheme .. "://127.0.0.1:" .. port
  current = c
  registry["moonlet.testing.current"] = c
  if luassert then       -- busted reverts formatters between files
    luassert:add_formatter(format_response)
  end
  return c
end

-- The request's headers with the client's cookies, unless it sets a
-- Cookie header itself.
local function with_cookies(self, headers)
  if next(self.cookies) == nil then
    return headers
  end
  local h = {}
  for k, v in pairs(headers or {}) do
    if type(k) == "string" and k:lower() == "cookie" then
      return headers
    end
    h[k] = v
  end
  local parts = {}
  for name, value in pairs(self.cookies) do
    parts[#parts + 1] = name .. "=" .. value
  end
  table.sort(parts)
  h.Cookie = table.concat(parts, "; ")
  return h
end

local function request_options(self, o)
  if type(o) ~= "table" then
    error("client:request expects a table {method=, path=, ...}", 3)
  end
  local r = {}
  for k, v in pairs(o) do r[k] = v end
  local path = o.path or "/"
  if sub(path, 1, 1) ~= "/" then
    error("client:request: the path must start with '/': " .. path, 3)
  end
  r.path = nil
  r.url = self.url .. path
  if self.ca_file and r.tls == nil then
    r.tls = { ca_file = self.ca_file }
  end
  r.method = o.method or "GET"
  r.timeout = o.timeout or self.timeout
  r.follow_redirects = o.follow_redirects == true
  r.headers = with_cookies(self, o.headers)
  r._real_time = true            -- the test's own wait: never virtual
  return r, path
end

-- Keeps the cookies a response sets, as a browser would (one app: path
-- and domain are not looked at).  An empty value or Max-Age=0 deletes.
local function keep_cookies(self, res)
  local sc = res.headers["set-cookie"]
  if sc == nil then
    return
  end
  -- repeats are joined with ", "; a date's comma is not followed by name=
  for one in (sc .. ", "):gmatch("(.-), %f[%w!#$%%&'*+.^_`|~-]") do
    local name, value, attrs = one:match("^%s*([^=;%s]+)=([^;]*)(.*)$")
    if name then
      if value == "" or attrs:lower():match(";%s*max%-age=0") then
        self.cookies[name] = nil
      else
        self.cookies[name] = value
      end
    end
  end
end

local function done(self, r, path, res, err)
  if not res then
    local hint = ""
    if err == "timeout" and current and current.clock then
      hint = " (a handler waiting on the virtual clock needs client:start"
        .. " and client.clock:advance)"
    end
    take_log(self)
    error(format("moonlet.testing: %s %s: %s%s", r.method, path,
      tostring(err), hint), 3)
  end
  keep_cookies(self, res)
  take_log(self)
  return show(res)
end

--- `client:request{method=, path=, headers=, body=, timeout=,
-- follow_redirects=}`: sends it, runs the loop until the response has
-- arrived and returns it (status, headers, body, json()).  Raises when
-- no response came (the reason: "timeout", "closed", ...).
function Client:request(o)
  local r, path = request_options(self, o)
  return done(self, r, path, core.loop_run(raw_request, r))
end

--- `client:get(path [, opts])`.
function Client:get(path, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.method, o.path = "GET", path
  local r, p = request_options(self, o)
  return done(self, r, p, core.loop_run(raw_request, r))
end

--- `client:post(path, body [, opts])`: a table body is sent as JSON.
function Client:post(path, body, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.method, o.path, o.body = "POST", path, body
  local r, p = request_options(self, o)
  return done(self, r, p, core.loop_run(raw_request, r))
end

--- `client:start{...}`: sends the request and returns once it is in a
-- handler; the returned handle's `.wait()` runs the loop until its
-- response arrives, and `.done()` says whether it has.
-- For a handler that waits on time (with clock:advance between).
function Client:start(o)
  local r, path = request_options(self, o)
  local t = core.spawn(raw_request, r)
  -- turn the loop until the request is in a handler (or answered), so
  -- that a clock:advance after this finds it waiting
  local base = core.loop_live()
  while not t:done() and core.loop_live() <= base do
    core.loop_once()
  end
  return {
    done = function()                -- true once the response has come
      return t:done()
    end,
    wait = function()
      return done(self, r, path, core.loop_run(t.wait, t))
    end,
  }
end

--[[ Stubs: the app's outbound calls to a prefix get an answer made here.
]]

local json = require "moonlet.json"

local lower = string.lower
local Headers = { __index = function(t, k)
  if type(k) == "string" then
    return rawget(t, lower(k))
  end
end }

-- A stub's {status=, headers=, body=} as moonlet.http returns it: a
-- table body is JSON, headers answer in any case.
local function stub_response(t, url)
  if type(t) ~= "table" then
    error("a stub must give a table {status=, headers=, body=}, got "
      .. type(t), 0)
  end
  local headers = setmetatable({}, Headers)
  for k, v in pairs(t.headers or {}) do headers[lower(k)] = v end
  local body = t.body or ""
  if type(body) == "table" then
    body = json.encode(body)
    if headers["content-type"] == nil then
      headers["content-type"] = "application/json"
    end
  end
  return http._response({ status = t.status or 200, headers = headers,
    body = body, url = url })
end

-- The stub of the current client whose prefix is the longest that
-- starts url, or nil.
local function find_stub(url)
  local best
  for _, st in pairs(current and current.stubs or {}) do
    if sub(url, 1, #st.prefix) == st.prefix
        and (best == nil or #st.prefix > #best.prefix) then
      best = st
    end
  end
  return best
end

--- moonlet.http.request as the app sees it while a client exists.
function http.request(opts)
  local st = type(opts) == "table" and type(opts.url) == "string"
    and find_stub(opts.url)
  if not st then
    return raw_request(opts)
  end
  st.calls = st.calls + 1
  if type(st.answer) ~= "function" then
    return stub_response(st.answer, opts.url)
  end
  local req = { method = (opts.method or "GET"):upper(), url = opts.url,
    headers = opts.headers or {}, body = opts.body }
  local res, err = st.answer(req)
  if res == nil then
    return nil, err
  end
  return stub_response(res, opts.url)
end

--- `client:stub_http(url_prefix, res_or_fn)`: the app's moonlet.http
-- calls to URLs starting with url_prefix no longer reach the network:
-- they get res (`{status=, headers=, body=}`, a table body as JSON), or
-- what fn(req) returns (such a table, or nil and an error string such as
-- "timeout"); req has method, url, headers and body.  fn runs in the
-- app's coroutine and may wait.  The longest matching prefix wins; nil
-- removes the stub.  Returns a table whose `calls` counts the calls.
function Client:stub_http(prefix, answer)
  if type(prefix) ~= "string" or prefix == "" then
    error("client:stub_http: a URL prefix expected", 2)
  end
  if answer == nil then
    self.stubs[prefix] = nil
    return nil
  end
  if type(answer) ~= "table" and type(answer) ~= "function" then
    error("client:stub_http: a response table or a function expected", 2)
  end
  local st = { prefix = prefix, answer = answer, calls = 0 }
  self.stubs[prefix] = st
  return st
end

--[[ WebSockets: client:websocket(path) ]]

local websocket = require "moonlet.websocket"

---A WebSocket connected to the app under test; each method runs the
---loop until it returns, as client:get does.
---@class moonlet.testing.WebSocket
---@field protocol string? the subprotocol the app chose
local TestSocket = { __name = "moonlet.testing.WebSocket" }
TestSocket.__index = TestSocket

local function ws_call(method)
  return function(self, ...)
    local ws = self.ws
    return core.loop_run(function(...)
      return ws[method](ws, ...)
    end, ...)
  end
end

--- `ws:send(data [, kind])`, `ws:receive([timeout])`, `ws:ping([data])`,
-- `ws:close([code [, reason]])`: as in the app (moonlet.WebSocket).
TestSocket.send = ws_call("send")
TestSocket.receive = ws_call("receive")
TestSocket.ping = ws_call("ping")
TestSocket.close = ws_call("close")

--- `client:websocket(path [, opts])`: opens a WebSocket to the app
-- (opts as moonlet.websocket.connect's: protocols, headers, timeout,
-- max_message, deflate) and returns it; raises when the handshake
-- fails.  The app's receive timeouts follow client.clock with
-- {virtual_time = true}; so do the test's own.
---@param path string
---@param opts table?
---@return moonlet.testing.WebSocket
function Client:websocket(path, opts)
  if type(path) ~= "string" or sub(path, 1, 1) ~= "/" then
    error("client:websocket: a path starting with '/' expected", 2)
  end
  local url = (self.scheme == "https" and "wss" or "ws") .. "://127.0.0.1:"
    .. self.port .. path
  if self.ca_file and (opts == nil or opts.tls == nil) then
    local o = { tls = { ca_file = self.ca_file } }
    for k, v in pairs(opts or {}) do o[k] = v end
    opts = o
  end
  local ws, err = core.loop_run(websocket.connect, url, opts)
  if not ws then
    error(format("moonlet.testing: websocket %s: %s", path, tostring(err)),
      2)
  end
  return setmetatable({ ws = ws, protocol = ws.protocol }, TestSocket)
end

--- `client:run(fn, ...)`: runs fn in a coroutine with the loop turning
-- (moonlet.sleep, futures, moonlet.http work inside) until it returns.
function Client:run(fn, ...)
  local r = table.pack(pcall(core.loop_run, fn, ...))
  take_log(self)
  if not r[1] then
    error(r[2], 0)
  end
  return table.unpack(r, 2, r.n)
end

--- `client:close()`: stops the app's timers and tasks (requests in
-- flight finish), closes its pooled outbound connections and open
-- streams, and forgets the modules its file loaded.  The next
-- testing.client closes the previous one itself.
function Client:close()
  if self.closed then
    return
  end
  self.closed = true
  for s in pairs(self.streams) do
    s:close()
  end
  core.loop_cleanup()
  take_log(self)
  restore_modules(self)
  if self.ca_file then
    os.remove(self.ca_file)
  end
  if current == self then
    current = nil
    registry["moonlet.testing.current"] = nil
    core.log_capture(false)
  end
end

--[[ Streams: a response read as it arrives, over a socket of its own
(luasocket) read between turns of the loop. ]]

local Stream = { __name = "moonlet.testing.Stream" }
Stream.__index = Stream

-- Turns the loop and reads what the socket has, until want() is true or
-- the deadline passes (raises) or the peer closes (returns false).
local function pump(s, want, timeout)
  local deadline = s.gettime() + (timeout or s.client.timeout)
  while not want() do
    if s.eof then
      return false
    end
    local data, err, partial = s.sock:receive(65536)
    local got = data or partial
    if got and got ~= "" then
      s.buf = s.buf .. got
    elseif err == "closed" then
      s.eof = true
    else
      local left = deadline - s.gettime()
      if left <= 0 then
        take_log(s.client)
        error(format("moonlet.testing: stream %s: timeout", s.path), 3)
      end
      core.loop_once(left < 0.05 and left or 0.05)
    end
  end
  return true
end

-- The head: status and headers, case-insensitive.
local function read_head(s)
  pump(s, function() return find(s.buf, "\r\n\r\n", 1, true) end)
  local e = find(s.buf, "\r\n\r\n", 1, true)
  if not e then
    error(format("moonlet.testing: stream %s: closed before a response",
      s.path), 3)
  end
  local head = sub(s.buf, 1, e - 1)
  s.buf = sub(s.buf, e + 4)
  s.status = tonumber(head:match("^HTTP/1%.%d (%d%d%d)"))
  s.headers = setmetatable({}, Headers)
  for name, value in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
    local k = lower(name)
    s.headers[k] = s.headers[k] and (s.headers[k] .. ", " .. value) or value
  end
  local te = s.headers["transfer-encoding"]
  s.chunked = te ~= nil and lower(te):find("chunked", 1, true) ~= nil
  s.left = tonumber(s.headers["content-length"] or "")
  s.sse = (s.headers["content-type"] or ""):find("text/event-stream", 1,
    true) == 1
end

-- The next piece of the body as the server wrote it, or nil at its end.
local function next_piece(s, timeout)
  if s.done then
    return nil
  end
  if s.chunked then
    if not pump(s, function() return find(s.buf, "\r\n", 1, true) end,
        timeout) then
      s.done = true
      return nil
    end
    local e = find(s.buf, "\r\n", 1, true)
    local size = tonumber(sub(s.buf, 1, e - 1):match("^%x+"), 16)
    if not size then
      error(format("moonlet.testing: stream %s: bad chunk", s.path), 3)
    end
    pump(s, function() return #s.buf >= e + 1 + size + 2 end, timeout)
    local data = sub(s.buf, e + 2, e + 1 + size)
    s.buf = sub(s.buf, e + size + 4)
    if size == 0 then
      s.done = true
      return nil
    end
    return data
  end
  if s.left == 0 then
    s.done = true
    return nil
  end
  pump(s, function() return #s.buf > 0 end, timeout)
  if #s.buf == 0 then
    s.done = true
    return nil
  end
  local data = s.buf
  if s.left then
    data = sub(data, 1, s.left)
    s.left = s.left - #data
  end
  s.buf = ""
  return data
end

-- The next server-sent event of the body: {data=, event=, id=, retry=}.
local function next_event(s, timeout)
  while true do
    local e = find(s.text, "\n\n", 1, true)
    if e then
      local block = sub(s.text, 1, e - 1)
      s.text = sub(s.text, e + 2)
      local ev, data = {}, {}
      for line in (block .. "\n"):gmatch("(.-)\n") do
        local field, value = line:match("^([^:]*):? ?(.*)$")
        if field == "data" then
          data[#data + 1] = value
        elseif field == "event" or field == "id" then
          ev[field] = value
        elseif field == "retry" then
          ev.retry = tonumber(value)
        end
      end
      if #data > 0 or ev.event or ev.id or ev.retry then
        ev.data = #data > 0 and table.concat(data, "\n") or nil
        return ev
      end
    else
      local piece = next_piece(s, timeout)
      if piece == nil then
        return nil
      end
      s.text = s.text .. piece:gsub("\r\n?", "\n")
    end
  end
end

--- `stream:read([timeout])`: the next piece of the body as it arrives (a
-- chunk; for text/event-stream, the next event as a table {data=,
-- event=, id=, retry=}), or nil once the body has ended.  Waits (turning
-- the loop) up to timeout seconds (the client's), then raises.
function Stream:read(timeout)
  local v
  if self.sse then
    v = next_event(self, timeout)
  else
    v = next_piece(self, timeout)
  end
  take_log(self.client)
  return v
end

Stream.__call = function(self)
  return self:read()
end

--- `stream:close()`: leaves: the server sees its client go.
function Stream:close()
  if self.sock then
    self.sock:close()
    self.sock = nil
    self.done = true
    core.loop_once(0)                 -- the server notices
    take_log(self.client)
  end
end

-- A TLS client's stream: LuaSec over the socket, trusting the client's
-- certificate; the handshake turns the loop, which serves the other end.
local function tls_wrap(self, sock)
  local ok, ssl = pcall(require, "ssl")
  if not ok then
    error("client:stream over TLS needs LuaSec (Debian: lua-sec)", 3)
  end
  local conn = assert(ssl.wrap(sock, { mode = "client", protocol = "any",
    verify = "peer", cafile = self.ca_file, options = { "all" } }))
  conn:settimeout(0)
  local deadline = os.time() + self.timeout
  while true do
    local done, err = conn:dohandshake()
    if done then
      break
    end
    if (err ~= "wantread" and err ~= "wantwrite") or os.time() > deadline then
      error("client:stream: TLS handshake: " .. tostring(err), 3)
    end
    core.loop_once(0.01)
  end
  conn:settimeout(self.timeout)
  return conn
end

--- `client:stream(path [, opts])`: a GET whose response is read as it
-- arrives: returns once its head has come, with `status` and `headers`;
-- `for piece in client:stream(path) do ... end` iterates its body (the
-- events of an SSE stream).  opts.headers adds headers.  Needs
-- luasocket.
function Client:stream(path, opts)
  if type(path) ~= "string" or sub(path, 1, 1) ~= "/" then
    error("client:stream: a path starting with '/' expected", 2)
  end
  local ok, socket = pcall(require, "socket")
  if not ok then
    error("client:stream needs luasocket (Debian: lua-socket)", 2)
  end
  local sock = assert(socket.tcp())
  sock:settimeout(self.timeout)
  local c_ok, c_err = sock:connect("127.0.0.1", self.port)
  if not c_ok then
    error("client:stream: " .. tostring(c_err), 2)
  end
  if self.scheme == "https" then
    sock = tls_wrap(self, sock)
  end
  local lines = { "GET " .. path .. " HTTP/1.1", "Host: 127.0.0.1",
    "Connection: close" }
  local headers = with_cookies(self, opts and opts.headers) or {}
  for k, v in pairs(headers) do
    lines[#lines + 1] = k .. ": " .. v
  end
  sock:send(table.concat(lines, "\r\n") .. "\r\n\r\n")
  sock:settimeout(0)
  local s = setmetatable({ client = self, sock = sock, path = path,
    buf = "", text = "", gettime = socket.gettime }, Stream)
  self.streams[s] = true
  read_head(s)
  take_log(self)
  return s
end

return M
