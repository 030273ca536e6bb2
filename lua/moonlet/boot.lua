--- The first module of every Lua state moonlet makes.
-- It lets runtime waits (moonlet.sleep, ...) pass through the user's own
-- coroutines, replaces `require` with one that may wait while a module
-- loads, and loads the app file in a coroutine for the server.
-- @module moonlet.boot

local core = require "moonlet.core"

local coroutine, package, error, type, select = coroutine, package, error,
  type, select
local co_create, co_yield, co_status, co_running, co_close =
  coroutine.create, coroutine.yield, coroutine.status, coroutine.running,
  coroutine.close
local co_resume = core.resume   -- coroutine.resume's, and tells the watchdog
local TOKEN = core.yield_token()

local M = {}

--- Coroutine wrappers.
-- A runtime wait yields TOKEN first.  When the user's coroutine yields it,
-- we are inside a handler's coroutine: yield the same values up to the
-- scheduler, and hand what it resumes us with back down.  core.resume
-- tells the watchdog which coroutine runs, so a loop inside one is seen.
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

-- The files --reload watches: the app file and the Lua files required from
-- its directory tree, as the searcher found them.  moonlet's own modules
-- are built in (gen.c puts their searcher second) and are never watched,
-- whatever their file names look like.
local builtin_searcher = searchers[2]
local app_dir               -- the app's directory, with a trailing "/"
local required = {}
local where = "^" .. debug.getinfo(1, "S").short_src:gsub("%p", "%%%0")
  .. ":%d+: "               -- our own position, in a searcher's errors

local function record(file)
  if app_dir and type(file) == "string"
      and file:sub(1, #app_dir) == app_dir then
    required[#required + 1] = file
  end
end

-- A searcher raises when it finds a file that does not compile: that file
-- is watched all the same (its fix must reload), and the error names the
-- file and line rather than this one.
local function search(i, name)
  local ok, loader, extra = pcall(searchers[i], name)
  if not ok then
    record(package.searchpath(name, package.path))
    error((tostring(loader):gsub(where, "")), 0)
  end
  if type(loader) == "function" and searchers[i] ~= builtin_searcher then
    record(extra)
  end
  return loader, extra
end

local function find_loader(name)
  local msgs = {}
  for i = 1, #searchers do
    local loader, extra = search(i, name)
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
  app_dir, required = dir .. "/", { path }
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

--- `boot.watch(file)`: a file the app reads (a template) that --reload
-- watches, when it is in the app's directory tree.
function M.watch(file)
  record(file)
end

--- The app file and the files it has required from its own directory
-- tree so far, in load order (for --reload; the server reads it after
-- each load).
function M.required_files()
  return table.move(required, 1, #required, 1, {})
end

require "moonlet.request"    -- registers the request class with the core
return M
