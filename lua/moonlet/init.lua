--- moonlet: Flask-style web apps in Lua on a C event loop.
-- `local moonlet = require "moonlet"` gives apps, responses, time and
-- timers; handlers run in coroutines, so waits suspend only themselves.
-- @module moonlet

local core = require "moonlet.core"
local app = require "moonlet.app"
local response = require "moonlet.response"
local cookie = require "moonlet.cookie"
local task = require "moonlet.task"

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
  spawn = core.spawn,
  future = core.future,
  gather = task.gather,
  first = task.first,
  timeout = task.timeout,
  http = require "moonlet.http",
  queue = require("moonlet.queue").new,
  worker = { id = core.worker_id(), pid = core.pid() },
  shared = core.shared,
  thread = { run = core.thread_run },
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
