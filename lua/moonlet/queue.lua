--- `moonlet.queue([maxsize])`: a FIFO between coroutines.
-- `q:put(v)` waits while the queue is full; `q:get([timeout])` waits for
-- an item.  A waiter cancelled with its request leaves the queue as it
-- was: a getter's place is given up, and an item already handed to it
-- goes to the next getter, or back to the front.
-- @module moonlet.queue

local core = require "moonlet.core"

local future = core.future
local setmetatable, error, type, math_type = setmetatable, error, type,
  math.type
local remove, insert = table.remove, table.insert
local pcall = pcall

local M = {}

local Queue = { __name = "moonlet.Queue" }
Queue.__index = Queue

function M.new(maxsize)
  if maxsize ~= nil and (math_type(maxsize) ~= "integer" or maxsize < 1) then
    error("moonlet.queue: maxsize must be a positive integer", 2)
  end
  return setmetatable({ items = {}, getters = {}, putters = {},
    maxsize = maxsize }, Queue)
end

local function drop(list, x)
  for i = 1, #list do
    if list[i] == x then
      remove(list, i)
      return
    end
  end
end

-- A place in a waiting list, given up if the waiter is cancelled.
local function waiting(list, entry, on_cancel)
  list[#list + 1] = entry
  return setmetatable({}, { __close = function(_, err)
    drop(list, entry)
    if on_cancel then on_cancel() end
  end })
end

function Queue:size()
  return #self.items
end

function Queue:full()
  return self.maxsize ~= nil and #self.items >= self.maxsize
end

-- Room was made: let the first waiting putter in.
local function admit_putter(self)
  local p = remove(self.putters, 1)
  if p then
    self.items[#self.items + 1] = p.value
    p.f:set(true)
  end
end

--- `q:put(v)` (yields while full).
function Queue:put(v)
  if v == nil then
    error("moonlet.queue: cannot put nil", 2)
  end
  local g = remove(self.getters, 1)
  if g then
    g:set(v)             -- straight to a waiting getter
    return true
  end
  if not self:full() then
    self.items[#self.items + 1] = v
    return true
  end
  local p = { f = future(), value = v }
  local place <close> = waiting(self.putters, p)
  p.f:get()
  return true
end

--- `q:get([timeout])` (yields) -> v, or nil and "timeout".
function Queue:get(timeout)
  if #self.items > 0 then
    local v = remove(self.items, 1)
    admit_putter(self)
    return v
  end
  local f = future()
  local taken = false
  local place <close> = waiting(self.getters, f, function()
    -- cancelled after a put handed us an item: it goes to the next
    -- getter, or back in front
    if f:done() and not taken then
      local ok, v = pcall(f.get, f, 0)
      if ok and v ~= nil then
        local g = remove(self.getters, 1)
        if g then g:set(v) else insert(self.items, 1, v) end
      end
    end
  end)
  local v, err = f:get(timeout)
  taken = true
  if v == nil then
    return nil, err
  end
  return v
end

return M
