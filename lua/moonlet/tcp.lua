--- TCP from handlers: `moonlet.tcp.connect(host, port [, opts])` gives a
-- cosocket in OpenResty's shape (send, receive("*l" | "*a" | n),
-- settimeout, setkeepalive, close), so drivers written for OpenResty port
-- with little change.  Only the calling coroutine waits.  The socket and
-- its pool are C's (lib_tcp.c over net/tcp.c).
-- @module moonlet.tcp

local core = require "moonlet.core"

local type, error, tostring, concat = type, error, tostring, table.concat
local tcp_connect = core.tcp_connect

local M = {}

local Socket = core.tcp_socket_mt.__index
local c_send = Socket.send

-- An array of strings and numbers, nested, as one string (what
-- OpenResty's send takes besides a string).
local function flatten(t, out)
  for i = 1, #t do
    local v = t[i]
    if type(v) == "table" then
      flatten(v, out)
    elseif type(v) == "string" or type(v) == "number" then
      out[#out + 1] = tostring(v)
    else
      error("send: strings, numbers or arrays of them expected", 3)
    end
  end
  return out
end

--- `sock:send(data)` (yields): a string, a number or a (nested) array of
-- them; the bytes sent once the kernel has them all, or `nil, err`.
function Socket:send(data)
  if type(data) == "table" then
    data = concat(flatten(data, {}))
  elseif type(data) == "number" then
    data = tostring(data)
  end
  return c_send(self, data)
end

--- `moonlet.tcp.connect(host, port [, {timeout = 5, tls = ...}])`
-- (yields): a socket, from the worker's keep-alive pool for host:port if
-- one is there, or `nil, err`.  `timeout` (seconds) bounds the connect and
-- every later call until `sock:settimeout` says otherwise.  `tls = true`,
-- or `{verify =, ca_file =, server_name =, cert =, key =}`: TLS, the
-- certificate checked against the system's store (or ca_file) and the
-- host (or server_name), which SNI sends.
function M.connect(host, port, opts)
  if type(host) ~= "string" or math.type(port) ~= "integer" then
    error("moonlet.tcp.connect: host (a string) and port expected", 2)
  end
  opts = opts or {}
  local tls = opts.tls
  if tls ~= nil and tls ~= false and tls ~= true and type(tls) ~= "table" then
    error("moonlet.tcp.connect: tls is true or a table", 2)
  end
  return tcp_connect(host, port, opts.timeout or 5, tls or nil,
    type(tls) == "table" and tls.server_name or nil)
end

return M
