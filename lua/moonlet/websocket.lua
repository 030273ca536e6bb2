--- WebSocket (RFC 6455): `req:websocket(opts)` turns a request into a
-- WebSocket; its methods (`ws:receive`, `ws:send`, `ws:ping`,
-- `ws:close`, `ws.protocol`) are the C core's (lib_ws.c).
-- @module moonlet.websocket

local core = require "moonlet.core"
local http = require "moonlet.http"

local type, error, ipairs, pairs, tostring = type, error, ipairs, pairs,
  tostring
local concat = table.concat
local find = string.find
local math_type = math.type
local ws_connect = core.ws_connect
local split_url = http._split_url

local M = {}

local MAX_MESSAGE = 1024 * 1024

--- `req:websocket{protocols =, max_message =, ping_interval =,
-- deflate =}`: answers 101 and returns the WebSocket.  A request that is
-- not a WebSocket handshake ends the handler with 400 (426 and
-- `Sec-WebSocket-Version: 13` for another version).  The C core's: a
-- handler then waiting in `ws:receive` has called nothing deeper, which
-- keeps its coroutine small.
M.upgrade = core.ws_upgrade

-- "a, b" from a list of subprotocol tokens.
local function protocol_list(protocols)
  if protocols == nil then
    return nil
  end
  if type(protocols) ~= "table" then
    error("websocket.connect: protocols must be a list of strings", 3)
  end
  for _, p in ipairs(protocols) do
    if type(p) ~= "string" or not find(p, "^[%w!#$%%&'*+.^_`|~-]+$") then
      error("websocket.connect: a protocol must be a token", 3)
    end
  end
  return #protocols > 0 and concat(protocols, ", ") or nil
end

-- The handshake's head up to the key: the URL's target, its authority,
-- the caller's headers (checked: no CR, LF or NUL).
local function request_head(target, authority, headers)
  local lines = { "GET " .. target .. " HTTP/1.1", "Host: " .. authority,
    "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13" }
  for name, value in pairs(headers or {}) do
    if type(name) ~= "string" or not find(name, "^[%w!#$%%&'*+.^_`|~-]+$")
        or find(tostring(value), "[\r\n%z]") then
      error("websocket.connect: invalid header " .. tostring(name), 3)
    end
    lines[#lines + 1] = name .. ": " .. tostring(value)
  end
  return concat(lines, "\r\n") .. "\r\n"
end

--- `moonlet.websocket.connect(url [, {headers =, protocols =, timeout =,
-- max_message =, deflate =, tls =}])` (yields): a WebSocket with the
-- methods of a server's, or nil and why ("timeout", "connection
-- refused", "dns: <reason>", "closed", "bad response", "tls: <reason>").
-- timeout (10 s) bounds the connect, TLS and the handshake.  wss:// URLs
-- verify the server's certificate unless tls = {verify = false};
-- tls = {ca_file =, cert =, key =} as for moonlet.http.
function M.connect(url, opts)
  if type(url) ~= "string" then
    error("websocket.connect expects a ws:// or wss:// URL", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("websocket.connect: opts must be a table", 2)
  end
  opts = opts or {}
  local scheme, host, port, target, authority = split_url(url)
  if scheme ~= "ws" and scheme ~= "wss" then
    error("websocket.connect expects a ws:// or wss:// URL: " .. url, 2)
  end
  local tls = nil
  if scheme == "wss" then
    tls = opts.tls or {}
    if type(tls) ~= "table" then
      error("websocket.connect: tls must be a table", 2)
    end
  end
  if opts.headers ~= nil and type(opts.headers) ~= "table" then
    error("websocket.connect: headers must be a table", 2)
  end
  local timeout = opts.timeout or 10
  if type(timeout) ~= "number" or timeout <= 0 then
    error("websocket.connect: timeout must be seconds > 0", 2)
  end
  local max = opts.max_message or MAX_MESSAGE
  if math_type(max) ~= "integer" or max <= 0 then
    error("websocket.connect: max_message must be a positive integer", 2)
  end
  return ws_connect(host, port, request_head(target, authority,
    opts.headers), protocol_list(opts.protocols), timeout, max,
    opts.deflate ~= false, tls)
end

return M
