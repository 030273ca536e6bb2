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
local format, sub = string.format, string.sub

local M = {}

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

---A test client (moonlet.testing.client).
---@class moonlet.testing.Client
---@field port integer the app's loopback port
---@field url string "http://127.0.0.1:PORT"
---@field timeout number seconds a request may take
---@field clock moonlet.testing.Clock? with {virtual_time = true}
---@field cookies table<string, string> what responses set, sent back (a browser's jar)
local Client = {}
Client.__index = Client

---@class moonlet.testing.Options
---@field timeout number? seconds a request may take (10)
---@field virtual_time boolean? timers and sleeps follow client.clock

---`client:request{...}`: a path on the app, and moonlet.http's options.
---@class moonlet.testing.Request
---@field method string? "GET"
---@field path string? "/" and the query
---@field headers table<string, string|string[]>?
---@field body (string|table)? a table goes as JSON
---@field timeout number?
---@field follow_redirects boolean? false

---A response as moonlet.http gives it; tostring shows status and body.
---@class moonlet.testing.Response: moonlet.http.Response

---What client:start returns.
---@class moonlet.testing.Pending
---@field wait fun(): moonlet.testing.Response runs the loop until it came
---@field done fun(): boolean whether the response has come

---What client:stub_http returns.
---@class moonlet.testing.Stub
---@field prefix string
---@field calls integer the calls it answered

--- The virtual clock of a client made with {virtual_time = true}.
---@class moonlet.testing.Clock
local Clock = {}
Clock.__index = Clock

--- `clock:advance(seconds)`: moves time forward, firing the timers,
-- sleeps and wait timeouts that come due, in order, each at its own
-- time, and turns the loop after each so that what it woke runs on.
---@param seconds number
function Clock:advance(seconds)
  if type(seconds) ~= "number" or seconds < 0 then
    error("clock:advance: a number of seconds >= 0 expected", 2)
  end
  core.loop_advance(seconds)
end

--- `clock:now()`: the virtual time in seconds, as moonlet.now() says.
---@return number seconds
function Clock:now()
  return core.now()
end

local current        -- the client whose stubs apply (the last made)

--- Makes a test client for an app (a table from moonlet.app()) or an app
-- file's path, served from this Lua state.  One app is served per state:
-- a new client replaces the previous one's app.
-- opts.timeout: seconds a request may take (10).  opts.virtual_time:
-- the app's timers, sleeps and wait timeouts follow client.clock (its
-- file's too, when app_or_path is a path; a table's timers made before
-- this call stay on real time).
-- @return the client
---@param app_or_path moonlet.App|string
---@param opts moonlet.testing.Options?
---@return moonlet.testing.Client
function M.client(app_or_path, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("testing.client: opts must be a table", 2)
  end
  core.loop_virtual_time(opts.virtual_time == true)
  local port
  if type(app_or_path) == "string" then
    local boot = require "moonlet.boot"
    port = core.loop_serve(core.loop_run(boot.load_app, app_or_path))
  elseif type(app_or_path) == "table" then
    port = moonlet.serve(app_or_path)
  else
    error("testing.client: an app or the path of an app file expected", 2)
  end
  local c = setmetatable({
    port = port,
    url = "http://127.0.0.1:" .. port,
    timeout = opts.timeout or 10,
    stubs = {},
    cookies = {},
  }, Client)
  if opts.virtual_time then
    c.clock = setmetatable({}, Clock)
  end
  current = c
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
  r.method = o.method or "GET"
  r.timeout = o.timeout or self.timeout
  r.follow_redirects = o.follow_redirects == true
  r.headers = with_cookies(self, o.headers)
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
    error(format("moonlet.testing: %s %s: %s%s", r.method, path,
      tostring(err), hint), 3)
  end
  keep_cookies(self, res)
  return show(res)
end

--- `client:request{method=, path=, headers=, body=, timeout=,
-- follow_redirects=}`: sends it, runs the loop until the response has
-- arrived and returns it (status, headers, body, json()).  Raises when
-- no response came (the reason: "timeout", "closed", ...).
---@param o moonlet.testing.Request
---@return moonlet.testing.Response
function Client:request(o)
  local r, path = request_options(self, o)
  return done(self, r, path, core.loop_run(raw_request, r))
end

--- `client:get(path [, opts])`.
---@param path string
---@param opts moonlet.testing.Request?
---@return moonlet.testing.Response
function Client:get(path, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.method, o.path = "GET", path
  local r, p = request_options(self, o)
  return done(self, r, p, core.loop_run(raw_request, r))
end

--- `client:post(path, body [, opts])`: a table body is sent as JSON.
---@param path string
---@param body string|table
---@param opts moonlet.testing.Request?
---@return moonlet.testing.Response
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
---@param o moonlet.testing.Request
---@return moonlet.testing.Pending
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
---@param prefix string
---@param answer table|fun(req: table): table?, string?|nil
---@return moonlet.testing.Stub?
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

--- `client:run(fn, ...)`: runs fn in a coroutine with the loop turning
-- (moonlet.sleep, futures, moonlet.http work inside) until it returns.
---@param fn async fun(...): ...
---@return any ...
function Client:run(fn, ...)
  return core.loop_run(fn, ...)
end

return M
