-- Queues (moonlet.queue): in one handler, and shared by requests.  A
-- named queue is made by /q/<name>/new/<max> (0: unbounded); what its
-- getters took is recorded in 'got', so a spec can count every item.
local moonlet = require "moonlet"
local app = moonlet.app()

local queues, got = {}, {}

local function errmsg(f, ...)
  local ok, err = pcall(f, ...)
  return ok and "no error" or tostring(err)
end

app:get("/fifo", function(req)
  local q = moonlet.queue()
  local out = {}
  for _, v in ipairs { "a", "b", "c" } do q:put(v) end
  out[#out + 1] = q:get()
  q:put("d")
  for _ = 1, 3 do out[#out + 1] = q:get() end
  return { order = out, size = q:size() }
end)

app:get("/timeout", function(req)
  local q = moonlet.queue()
  local t0 = moonlet.now()
  local v, err = q:get(0.1)
  return { v = v == nil and "nil" or v, err = err,
    waited = moonlet.now() - t0 }
end)

app:get("/errors", function(req)
  local q = moonlet.queue(2)
  return {
    put_nil = errmsg(q.put, q, nil),
    zero = errmsg(moonlet.queue, 0),
    negative = errmsg(moonlet.queue, -1),
    float = errmsg(moonlet.queue, 1.5),
    string = errmsg(moonlet.queue, "3"),
    unbounded = errmsg(moonlet.queue),
    one = errmsg(moonlet.queue, 1),
    size = q:size(),
  }
end)

-- Getters cancelled after a put handed them an item, before they ran.
app:get("/handoff/<kind>", function(req, kind)
  local q = moonlet.queue()
  local first = moonlet.spawn(function() return q:get() end)
  local second = kind == "two" and moonlet.spawn(function()
    return q:get()
  end)
  moonlet.sleep(0.05)          -- both wait now, first in front
  q:put("x")                   -- handed to 'first', which has not run
  if kind == "one" then
    q:put("y")                 -- no getter left: y is queued
  end
  first:cancel()
  local res = {}
  if second then
    local v, err = second:wait(0.5)
    res.second = v or err
  end
  res.size = q:size()
  res.items = {}
  while q:size() > 0 do res.items[#res.items + 1] = q:get() end
  return res
end)

app:get("/q/<name>/new/<int:max>", function(req, name, max)
  queues[name] = moonlet.queue(max > 0 and max or nil)
  got[name] = {}
  return { ok = true }
end)

app:get("/q/<name>/put/<v>", function(req, name, v)
  local t0 = moonlet.now()
  queues[name]:put(v)
  return { waited = moonlet.now() - t0 }
end)

app:get("/q/<name>/get", function(req, name)
  local v, err = queues[name]:get(tonumber(req.query.timeout))
  if v ~= nil then
    table.insert(got[name], v)
  end
  return { v = v, err = err }
end)

app:get("/q/<name>/info", function(req, name)
  local q = queues[name]
  local items = {}
  for i, v in ipairs(q.items) do items[i] = v end
  return { size = q:size(), full = q:full(), getters = #q.getters,
    putters = #q.putters, got = got[name], items = items }
end)

return app
