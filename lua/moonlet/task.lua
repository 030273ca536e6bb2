--- Running several things at once: gather, first, timeout.
-- Built on tasks (moonlet.spawn) and futures (moonlet.future), which the
-- core provides.  Tasks spawned here are children of the caller, so a
-- cancelled caller (its client left) cancels them, and their I/O, too.
-- @module moonlet.task

local core = require "moonlet.core"

local spawn, future = core.spawn, core.future
local select, error, pcall, type, tostring = select, error, pcall, type,
  tostring
local pack, unpack = table.pack, table.unpack

local M = {}

local function check_functions(level, ...)
  for i = 1, select("#", ...) do
    local f = select(i, ...)
    if type(f) ~= "function" then
      error(("bad argument #%d (function expected, got %s)")
        :format(i, type(f)), level + 1)
    end
  end
end

--- `moonlet.gather(fn1, fn2, ...)` (yields): runs all at once and returns
-- each one's first result, in order.  If any raised, raises the first
-- error (in argument order) once all have settled.
function M.gather(...)
  local n = select("#", ...)
  check_functions(2, ...)
  local tasks = {}
  for i = 1, n do
    tasks[i] = spawn((select(i, ...)))
  end
  local results, failed, err = {}, false, nil
  for i = 1, n do
    local ok, v = pcall(tasks[i].wait, tasks[i])
    if ok then
      results[i] = v
    elseif not failed then
      failed, err = true, v
    end
  end
  if failed then
    error(err, 0)
  end
  return unpack(results, 1, n)
end

--- `moonlet.first(fn1, fn2, ...)` (yields): runs all at once, returns the
-- results of the first to finish (or raises its error) and cancels the
-- others.
function M.first(...)
  local n = select("#", ...)
  if n == 0 then
    error("moonlet.first needs at least one function", 2)
  end
  check_functions(2, ...)
  local winner = future()
  local tasks = {}
  for i = 1, n do
    local fn = select(i, ...)
    tasks[i] = spawn(function()
      local r = pack(pcall(fn))
      if not winner:done() then
        winner:set(i, r)
      end
    end)
  end
  local index, r = winner:get()
  for i = 1, n do
    if i ~= index then
      tasks[i]:cancel()
    end
  end
  if r[1] then
    return unpack(r, 2, r.n)
  end
  error(r[2], 0)
end

--- `moonlet.timeout(seconds, fn, ...)` (yields): fn's results, or nil and
-- "timeout" once the time is up, when fn and its pending I/O are
-- cancelled.  An error in fn is raised here.
function M.timeout(seconds, fn, ...)
  if type(seconds) ~= "number" or seconds < 0 or seconds ~= seconds then
    error("bad argument #1 to 'timeout' (seconds expected, got "
      .. tostring(seconds) .. ")", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #2 to 'timeout' (function expected, got "
      .. type(fn) .. ")", 2)
  end
  local t = spawn(fn, ...)
  local r = pack(pcall(t.wait, t, seconds))
  if not t:done() then
    t:cancel()
    return nil, "timeout"
  end
  if not r[1] then
    error(r[2], 0)
  end
  return unpack(r, 2, r.n)
end

return M
