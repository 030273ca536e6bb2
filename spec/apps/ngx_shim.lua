-- A small `ngx` for drivers written for OpenResty's cosockets: just what
-- lua-resty-redis and lua-resty-memcached touch (ngx.socket.tcp, ngx.null,
-- ngx.log), over moonlet.tcp.  `load(name)` runs a Debian-packaged driver
-- unmodified, with this ngx (and Lua 5.1's `unpack`) in its environment.
local moonlet = require "moonlet"

local Sock = {}
Sock.__index = Sock

-- ngx's timeouts are milliseconds; moonlet's seconds.
function Sock:settimeout(ms)
  self.timeout = ms and ms / 1000 or nil
  if self.sock and self.timeout then self.sock:settimeout(self.timeout) end
end

function Sock:settimeouts(connect, send, read)
  self:settimeout(math.max(connect or 0, send or 0, read or 0))
end

function Sock:connect(host, port)
  if self.sock then self.sock:close() end
  local sock, err = moonlet.tcp.connect(host, port,
    { timeout = self.timeout or 60 })
  if not sock then return nil, err end
  self.sock = sock
  return 1
end

local function forward(name)
  return function(self, ...)
    if not self.sock then return nil, "closed" end
    return self.sock[name](self.sock, ...)
  end
end
Sock.send = forward("send")
Sock.receive = forward("receive")
Sock.getreusedtimes = forward("getreusedtimes")

function Sock:setkeepalive(ms, size)
  local s = self.sock
  self.sock = nil
  if not s then return nil, "closed" end
  return s:setkeepalive(ms and ms / 1000, size)
end

function Sock:close()
  local s = self.sock
  self.sock = nil
  if not s then return nil, "closed" end
  return s:close()
end

local ngx = {
  socket = { tcp = function() return setmetatable({}, Sock) end },
  null = moonlet.null,
  ERR = "error", WARN = "warn", INFO = "info", DEBUG = "debug",
  log = function(level, ...) moonlet.log(level, ...) end,
}

local M = { ngx = ngx }

--- Runs the driver module `name` (e.g. "nginx.redis") from Debian's
-- Lua 5.1 tree, unmodified, with this ngx.
function M.load(name)
  local path = assert(package.searchpath(name, "/usr/share/lua/5.1/?.lua"))
  local env = setmetatable({ ngx = ngx, unpack = table.unpack },
    { __index = _G })
  return assert(loadfile(path, "t", env))()
end

return M
