--- The first module of every Lua state moonlet makes.
-- It lets runtime waits (moonlet.sleep, ...) pass through the user's own
-- coroutines, replaces `require` with one that may wait while a module
-- loads, and loads the app file in a coroutine for the server.
-- @module moonlet.boot

local core = require "moonlet.core"

local coroutine, package, error, type, select = coroutine, package, error,
  type, select
local co_create, co_resume, co_yield, co_status, co_running, co_close =
  coroutine.create, coroutine.resume, coroutine.yield, coroutine.status,
  coroutine.running, coroutine.close
local TOKEN = core.yield_token()

local M = {}

--- Coroutine wrappers.
-- A runtime wait yields TOKEN first.  When the user's coroutine yields it,
-- we are inside a handler's coroutine: yield the same values up to the
-- scheduler, and hand what it resumes us with back down.
local function pass(co, ok, first, ...)
  if ok and first == TOKEN and co_status(co) == "suspended" then
    return pass(co, co_resume(co, co_yield(TOKEN, ...)))
  end
  return ok, first, ...
end

function coroutine.resume(co, ...)
  return pass(co, co_resume(co, ...))
end

local function unwrap(co, ok, ...)
  if ok then
    return ...
  end
  if co_status(co) == "dead" then
    co_close(co)      -- as coroutine.wrap does: close it, then re-raise
  end
  error((...), 0)
end

function coroutine.wrap(f)
  local co = co_create(f)
  return function(...)
    return unwrap(co, pass(co, co_resume(co, ...)))
  end
end

--- A `require` that may wait.
-- Lua's own calls the loader from C, so a module whose top level sleeps
-- or fetches cannot yield.  This one calls the loader from Lua.  A module
-- another coroutine is still loading is waited for, not loaded twice.
local loaded, searchers = package.loaded, package.searchers
local loading = {}   -- module name -> the coroutine loading it

local function find_loader(name)
  local msgs = {}
  for i = 1, #searchers do
    local loader, extra = searchers[i](name)
    if type(loader) == "function" then
      return loader, extra
    elseif type(loader) == "string" then
      msgs[#msgs + 1] = loader
    end
  end
  error(("module '%s' not found:\n\t%s"):format(name,
    table.concat(msgs, "\n\t")), 3)
end

function require(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'require' (string expected, got "
      .. type(name) .. ")", 2)
  end
  local v = loaded[name]
  if v ~= nil then
    return v
  end
  while loading[name] do
    if loading[name] == co_running() then
      error("loop while loading module '" .. name .. "'", 2)
    end
    core.sleep(0.001)        -- another coroutine is loading it
    if loaded[name] ~= nil then
      return loaded[name]
    end
  end
  local loader, extra = find_loader(name)
  loading[name] = co_running()
  local ok, r = pcall(loader, name, extra)
  loading[name] = nil
  if not ok then
    error(r, 0)
  end
  if r ~= nil then
    loaded[name] = r
  elseif loaded[name] == nil then
    loaded[name] = true
  end
  return loaded[name], extra
end

--- Loads the app file; the server calls it in a coroutine.
-- @return the app, its compiled router, its dispatch function, its options
function M.load_app(path)
  local dir = path:match("^(.*)/[^/]*$") or "."
  package.path = dir .. "/?.lua;" .. dir .. "/?/init.lua;" .. package.path
  local chunk, err = loadfile(path)
  if not chunk then
    error(err, 0)
  end
  local app = chunk()
  local appmod = require "moonlet.app"
  if not appmod.is_app(app) then
    error(("%s: the app file must end with 'return app' (an app made by "
      .. "moonlet.app()); it returned %s"):format(path, type(app)), 0)
  end
  local router, dispatch = appmod.serve(app)
  return app, router, dispatch, app.settings
end

require "moonlet.request"    -- registers the request class with the core
return M
