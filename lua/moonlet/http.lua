--- Outbound HTTP and HTTPS from handlers: `moonlet.http.request/get/post`.
-- The exchange itself (lookup, pool, TLS, parsing) is C's; this module
-- turns options into a request, follows redirects within one deadline and
-- makes the response object.  Every call yields only its own coroutine.
-- @module moonlet.http

local core = require "moonlet.core"
local json = require "moonlet.json"

local type, pairs, ipairs, next, error, tostring, tonumber, setmetatable,
  rawget = type, pairs, ipairs, next, error, tostring, tonumber,
  setmetatable, rawget
local concat = table.concat
local lower, upper, find, sub, match = string.lower, string.upper,
  string.find, string.sub, string.match
local http_request, http_headers, now = core.http_request, core.http_headers,
  core.now

local M = {}

local MAX_REDIRECTS = 5
local MAX_BODY = 64 * 1024 * 1024

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true,
  OPTIONS = true, TRACE = true }
-- The methods whose header-less, body-less request is kept per URL.
local KNOWN = { GET = true, HEAD = true, POST = true, PUT = true,
  DELETE = true, PATCH = true, OPTIONS = true, TRACE = true }
local NO_HEADERS = {}              -- never written to
local MAX_URLS, MAX_URL_LEN = 256, 512

--- Responses: `res.status`, `res.headers` (any case), `res.body`,
-- `res:json()`, and `res.url`, where the last redirect led.  The headers
-- table is made on the first read of `res.headers`: until then the
-- response's headers wait as one string in 'raw_headers'.
local Response = { __name = "moonlet.http.Response" }
local raw_headers = setmetatable({}, { __mode = "k" })

function Response.__index(res, k)
  if k == "headers" then
    local raw = raw_headers[res]
    if raw == nil then
      return nil
    end
    raw_headers[res] = nil
    local h = http_headers(raw)
    res.headers = h
    return h
  end
  return Response[k]
end

--- The decoded body; raises when it is not JSON.
function Response:json()
  local v, err = json.decode(self.body)
  if v == nil then
    error("the response body is not JSON: " .. err, 2)
  end
  return v
end

-- Splits an absolute URL into scheme, host, port, target and authority.
local function split_url(u)
  local scheme, rest = match(u, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then
    return nil
  end
  scheme = lower(scheme)
  local authority, target = match(rest, "^([^/?#]*)(.*)$")
  target = target:gsub("#.*$", "")
  if target == "" or sub(target, 1, 1) == "?" then
    target = "/" .. target
  end
  if find(authority, "@", 1, true) then
    return nil       -- credentials in URLs: send an Authorization header
  end
  local host, port
  if sub(authority, 1, 1) == "[" then
    host, port = match(authority, "^%[([%x:.]+)%]:?(%d*)$")
  else
    host, port = match(authority, "^([^:]+):?(%d*)$")
  end
  if not host then
    return nil
  end
  port = tonumber(port) or ((scheme == "https" or scheme == "wss") and 443
    or 80)
  return scheme, host, port, target, authority
end

-- The URLs seen lately, split once: a service calls the same few
-- endpoints over and over, and Lua patterns cost more than the rest of
-- an exchange.  url -> { scheme=, host=, port=, target=, authority=,
-- plain = { [method] = the request when there are no headers and no
-- body } }.  At most MAX_URLS of at most MAX_URL_LEN bytes; when full, it
-- starts over.
local urls, nurls = {}, 0

local function parse_url(u)
  local p = urls[u]
  if p then
    return p
  end
  local scheme, host, port, target, authority = split_url(u)
  if not scheme then
    return nil
  end
  p = { scheme = scheme, host = host, port = port, target = target,
    authority = authority }
  if #u <= MAX_URL_LEN then
    if nurls >= MAX_URLS then
      urls, nurls = {}, 0
    end
    urls[u] = p
    nurls = nurls + 1
  end
  return p
end

-- Where a Location header leads from 'base'.
local function resolve(base, location)
  if match(location, "^%a[%w+.-]*://") then
    return location
  end
  local scheme, authority, path = match(base, "^(%a[%w+.-]*)://([^/?#]*)([^?#]*)")
  if sub(location, 1, 2) == "//" then
    return scheme .. ":" .. location
  elseif sub(location, 1, 1) == "/" then
    return scheme .. "://" .. authority .. location
  end
  local dir = match(path, "^(.*/)") or "/"
  return scheme .. "://" .. authority .. dir .. location
end

local function check_header(name, value)
  if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+.^_`|~-]+$") then
    error("invalid header name: " .. tostring(name), 4)
  end
  value = tostring(value)
  if find(value, "[\r\n%z]") then
    error("header value for " .. name .. " contains CR, LF or NUL", 4)
  end
  return value
end

-- The request as it goes on the wire, head and body.
local function build(method, target, authority, headers, body)
  local lines, has = { method .. " " .. target .. " HTTP/1.1" }, {}
  for name, v in pairs(headers) do
    local lname = lower(name)
    if lname ~= "content-length" and lname ~= "transfer-encoding" then
      has[lname] = true
      if type(v) == "table" then
        for _, x in ipairs(v) do
          lines[#lines + 1] = name .. ": " .. check_header(name, x)
        end
      else
        lines[#lines + 1] = name .. ": " .. check_header(name, v)
      end
    end
  end
  if not has.host then
    lines[#lines + 1] = "Host: " .. authority
  end
  if not has["user-agent"] then
    lines[#lines + 1] = "User-Agent: moonlet/" .. core.version
  end
  if body ~= "" or method == "POST" or method == "PUT" or method == "PATCH"
  then
    lines[#lines + 1] = "Content-Length: " .. #body
  end
  lines[#lines + 1] = "\r\n"
  return concat(lines, "\r\n") .. body
end

local TLS_STRINGS = { "ca_file", "cert", "key", "server_name" }

-- The options but the URL; errors at 'level' (the caller of the public
-- function).
local function check_fields(opts, level)
  if type(opts) ~= "table" then
    error("moonlet.http.request expects a table of options", level)
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    error("moonlet.http.request: headers must be a table", level)
  end
  local t = opts.timeout
  if t ~= nil and (type(t) ~= "number" or t <= 0 or t ~= t) then
    error("moonlet.http.request: timeout must be a positive number", level)
  end
  local b = opts.body
  if b ~= nil and type(b) ~= "string" and type(b) ~= "table" then
    error("moonlet.http.request: body must be a string or a table", level)
  end
  local tls = opts.tls
  if tls ~= nil then
    if type(tls) ~= "table" then
      error("moonlet.http.request: tls must be a table", level)
    end
    for i = 1, #TLS_STRINGS do
      local k = TLS_STRINGS[i]
      if tls[k] ~= nil and type(tls[k]) ~= "string" then
        error("moonlet.http.request: tls." .. k .. " must be a string", level)
      end
    end
    if tls.key ~= nil and tls.cert == nil then
      error("moonlet.http.request: tls.key needs tls.cert", level)
    end
  end
end

local function check_options(opts)
  check_fields(opts, 4)
  if type(opts.url) ~= "string" then
    error("moonlet.http.request: url must be a string", 3)
  end
end

-- A table body is sent as JSON, with its Content-Type unless one is set.
local function encode_body(body, headers)
  if type(body) ~= "table" then
    return body or "", headers
  end
  local ok, text = pcall(json.encode, body)
  if not ok then
    error("moonlet.http.request: cannot send the body as JSON: "
      .. tostring(text):gsub("^json%.encode: ", ""), 3)
  end
  for name in pairs(headers) do
    if lower(name) == "content-type" then
      return text, headers
    end
  end
  local h = { ["Content-Type"] = "application/json" }
  for k, v in pairs(headers) do h[k] = v end
  return text, h
end

-- The request for method on the URL u (parse_url's), as build makes it;
-- with no headers and no body, made once per URL.
local function request_for(u, method, headers, body)
  if body ~= "" or next(headers) ~= nil or not KNOWN[method] then
    return build(method, u.target, u.authority, headers, body)
  end
  local plain = u.plain
  if plain == nil then
    plain = {}
    u.plain = plain
  end
  local r = plain[method]
  if r == nil then
    r = build(method, u.target, u.authority, NO_HEADERS, "")
    plain[method] = r
  end
  return r
end

-- One call with its options checked: the exchange, and the redirects it
-- follows, all within 'timeout' seconds.  Raises at level 2, so only
-- through tail calls.  The first exchange has all of 'timeout'.  'tls'
-- (opts.tls) applies to the https URLs on the way.
local function fetch(method, url, headers, body, timeout, follow, tls,
    real_time)
  local deadline, left, hops = now() + timeout, timeout, 0
  while true do
    local u = urls[url] or parse_url(url)
    local scheme, use_tls = u and u.scheme, nil
    if scheme == "https" then
      use_tls = tls or true
    elseif scheme ~= "http" then
      error("moonlet.http.request: not an http:// or https:// URL: " .. url,
        2)
    end
    local plain = u.plain
    local req = plain and headers == NO_HEADERS and body == ""
      and plain[method] or request_for(u, method, headers, body)
    local status, raw, rbody = http_request(u.host, u.port, req, left,
      method == "HEAD", IDEMPOTENT[method], MAX_BODY, use_tls, real_time)
    if not status then
      return nil, raw
    end
    if not (follow and (status == 301 or status == 302 or status == 303
        or status == 307 or status == 308)) then
      local res = setmetatable({ status = status, body = rbody, url = url },
        Response)
      raw_headers[res] = raw       -- until res.headers is read
      return res
    end
    local hdrs = http_headers(raw)
    local location = rawget(hdrs, "location")
    if not location then
      return setmetatable({ status = status, headers = hdrs, body = rbody,
        url = url }, Response)
    end
    hops = hops + 1
    if hops > MAX_REDIRECTS then
      return nil, "too many redirects"
    end
    url = resolve(url, location)
    if status == 303 or ((status == 301 or status == 302)
        and method ~= "GET" and method ~= "HEAD") then
      method, body = "GET", ""     -- as browsers do
    end
    left = deadline - now()
    if left <= 0 then
      return nil, "timeout"
    end
  end
end

--- `moonlet.http.request{method=, url=, headers=, body=, timeout=,
-- follow_redirects=, tls=}` (yields) -> res, or nil and a short reason.
-- `tls = {verify = false}`, `{ca_file = PATH}`, `{cert =, key =}`,
-- `{server_name = NAME}` for https URLs; certificates are verified
-- against the system's store unless told otherwise.  The timeout follows
-- moonlet.testing's virtual clock when it is on, unless `_real_time` (the
-- test client's own requests to the app).
local function request(opts)
  check_options(opts)
  local method = opts.method or "GET"
  if not KNOWN[method] then
    method = upper(method)
  end
  local body, headers = encode_body(opts.body, opts.headers or NO_HEADERS)
  return fetch(method, opts.url, headers, body, opts.timeout or 30,
    opts.follow_redirects ~= false, opts.tls, opts._real_time)
end
M.request = request

-- For moonlet.websocket.connect: ws:// and wss:// URLs split the same way.
M._split_url = split_url

--- For moonlet.testing's stubs: a response like the network's, from
-- {status=, headers=, body=, url=} (headers already a table).
function M._response(fields)
  return setmetatable(fields, Response)
end

--- `moonlet.http.get(url [, opts])` (yields).  Through M.request when
-- moonlet.testing has replaced it (to answer stubs).
function M.get(url, opts)
  if M.request == request then     -- no copy of opts: a fan-in's path
    if type(url) ~= "string" then
      error("moonlet.http.request: url must be a string", 2)
    end
    if opts == nil then
      return fetch("GET", url, NO_HEADERS, "", 30, true)
    end
    check_fields(opts, 3)
    local body, headers = encode_body(opts.body, opts.headers or NO_HEADERS)
    return fetch("GET", url, headers, body, opts.timeout or 30,
      opts.follow_redirects ~= false, opts.tls, opts._real_time)
  end
  local o = {}
  for k, v in pairs(opts or o) do o[k] = v end
  o.url, o.method = url, "GET"
  return M.request(o)
end

--- `moonlet.http.post(url, body [, opts])` (yields).
function M.post(url, body, opts)
  local o = {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url, o.method, o.body = url, "POST", body
  return M.request(o)
end

return M
