--- moonlet: Flask-style web apps in Lua on a C event loop.
-- `local moonlet = require "moonlet"` gives apps, responses, time and
-- timers; handlers run in coroutines, so waits suspend only themselves.
-- @module moonlet

local core = require "moonlet.core"
local app = require "moonlet.app"
local response = require "moonlet.response"
local cookie = require "moonlet.cookie"

local M = {
  _VERSION = core.version,
  app = app.new,
  response = response.response,
  redirect = response.redirect,
  abort = response.abort,
  cookie = cookie.build,
  sleep = core.sleep,
  now = core.now,
  after = core.after,
  every = core.every,
  worker = { id = 1, pid = core.pid() },
}

--- `moonlet.log(level, message)`: to the error log ("debug" ... "error").
function M.log(level, ...)
  local parts = table.pack(...)
  for i = 1, parts.n do
    parts[i] = tostring(parts[i])
  end
  core.log(level, table.concat(parts, " "))
end

return M
