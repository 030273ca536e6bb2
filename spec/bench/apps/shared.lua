-- moonlet.shared from Lua (make bench-shared): GET /run/OP/N runs N
-- get, set or incr calls on 1,000 keys in one go and answers the worker's
-- id; GET /who says which worker a connection reached; GET /prepare sets
-- the keys.  The client times the calls of all workers at once.
local moonlet = require "moonlet"
local app = moonlet.app()
local shared = moonlet.shared
local get, set, incr = shared.get, shared.set, shared.incr

local keys = {}
for i = 1, 1000 do keys[i] = "key:" .. i end

app:get("/who", function()
  return tostring(moonlet.worker.id)
end)

app:get("/prepare", function()
  for i = 1, 1000 do set(keys[i], i) end
  return "ok"
end)

app:get("/run/<op>/<int:n>", function(req, op, n)
  if op == "get" then
    for i = 1, n do get(keys[i % 1000 + 1]) end
  elseif op == "set" then
    for i = 1, n do set(keys[i % 1000 + 1], i) end
  elseif op == "incr" then
    for i = 1, n do incr(keys[i % 1000 + 1], 1, 0) end
  else
    return "unknown op", 404
  end
  return tostring(moonlet.worker.id)
end)

return app
