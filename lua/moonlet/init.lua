--- moonlet: Flask-style web apps in Lua on a C event loop.
-- `local moonlet = require "moonlet"` gives apps, responses, time and
-- timers; handlers run in coroutines, so waits suspend only themselves.
-- @module moonlet

-- A stock lua5.4 that found this file on package.path: the C runtime is
-- moonlet.so on package.cpath; it sets this state up (module.c).
if not package.loaded["moonlet.core"] and not package.preload["moonlet.core"]
then
  local so = package.searchpath("moonlet", package.cpath)
  local setup = so and package.loadlib(so, "moonlet_lua_setup")
  if not setup then
    error("moonlet: the C module moonlet.so is not on package.cpath "
      .. "(make module builds build/moonlet.so)", 2)
  end
  setup()
end

local core = require "moonlet.core"
local app = require "moonlet.app"
local response = require "moonlet.response"
local cookie = require "moonlet.cookie"
local task = require "moonlet.task"
local json = require "moonlet.json"
local template = require "moonlet.template"
local session = require "moonlet.session"

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
  json = json,
  template = template,
  escape = template.escape,
  session = session,
  csrf_protect = session.protect,
  null = json.null,
  queue = require("moonlet.queue").new,
  worker = { id = core.worker_id(), pid = core.pid() },
  shared = core.shared,
  draining = core.draining,
  thread = { run = core.thread_run },
  pg = require "moonlet.pg",
  redis = require "moonlet.redis",
  tcp = require "moonlet.tcp",
  websocket = { connect = require("moonlet.websocket").connect },
}

--- `moonlet.run(fn, ...)`: from a stock lua5.4 (the module), runs the
-- loop with fn as its first coroutine until fn returns, then closes what
-- it opened (timers, tasks, pooled connections); fn's results.
if core.loop_run then
  function M.run(fn, ...)
    local res = table.pack(pcall(core.loop_run, fn, ...))
    core.loop_cleanup()
    if not res[1] then
      error(res[2], 0)
    end
    return table.unpack(res, 2, res.n)
  end

  --- `moonlet.serve(a)`: the module serves app a on 127.0.0.1 and a free
  -- port (returned) while the loop runs; one app per Lua state, a second
  -- call replaces it on the same port.
  function M.serve(a)
    local router, dispatch = app.serve(a)
    return core.loop_serve(a, router, dispatch, a.settings)
  end
end

--- `moonlet.log(level, message)`: to the error log ("debug" ... "error").
function M.log(level, ...)
  local parts = table.pack(...)
  for i = 1, parts.n do
    parts[i] = tostring(parts[i])
  end
  core.log(level, table.concat(parts, " "))
end

return M
