--- WebSocket (RFC 6455): `req:websocket(opts)` turns a request into a
-- WebSocket; its methods (`ws:receive`, `ws:send`, `ws:ping`,
-- `ws:close`, `ws.protocol`) are the C core's (lib_ws.c).
-- @module moonlet.websocket

local core = require "moonlet.core"
local response = require "moonlet.response"

local type, error, ipairs = type, error, ipairs
local math_type = math.type
local abort = response.abort
local ws_upgrade = core.ws_upgrade

local M = {}

local MAX_MESSAGE = 1024 * 1024

--- `req:websocket{protocols =, max_message =, ping_interval =,
-- deflate =}`: answers 101 and returns the WebSocket.  A request that is
-- not a WebSocket handshake ends the handler with 400 (426 and
-- `Sec-WebSocket-Version: 13` for another version).
function M.upgrade(req, opts)
  if opts ~= nil and type(opts) ~= "table" then
    error("req:websocket expects an options table", 2)
  end
  opts = opts or {}
  local protocols = opts.protocols
  if protocols ~= nil then
    if type(protocols) ~= "table" then
      error("req:websocket: protocols must be a list of strings", 2)
    end
    for _, p in ipairs(protocols) do
      if type(p) ~= "string" then
        error("req:websocket: protocols must be a list of strings", 2)
      end
    end
  end
  local max = opts.max_message or MAX_MESSAGE
  if math_type(max) ~= "integer" or max <= 0 then
    error("req:websocket: max_message must be a positive integer", 2)
  end
  local ping = opts.ping_interval or 0
  if type(ping) ~= "number" or ping < 0 then
    error("req:websocket: ping_interval must be seconds >= 0", 2)
  end
  local ws, status, why = ws_upgrade(req, protocols, max, ping,
    opts.deflate ~= false)
  if not ws then
    if status == 426 then
      abort(426, why, { ["Sec-WebSocket-Version"] = "13" })
    end
    abort(status, why)
  end
  return ws
end

return M
