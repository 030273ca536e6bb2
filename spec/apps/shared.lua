-- moonlet.shared: POST /eval runs the Lua in the body with `moonlet` and
-- `shared` in scope, and answers each result as a line "type:value" (or
-- "error:message"); GET /gen says which load of the app is serving.  For
-- --workers: /incr and /add/<key> answer "ID result" (ID: the worker's),
-- /hammer increments until the key "stop" is set.
local moonlet = require "moonlet"
local size = tonumber(os.getenv("APP_SHARED_SIZE") or "")
local app = moonlet.app { shared_size = size }
local shared = moonlet.shared

local gen = tostring(math.random(1 << 40))   -- Lua 5.4 seeds randomly

local function show(v)
  local t = math.type(v) or type(v)
  if t == "nil" then return "nil" end
  return t .. ":" .. tostring(v)
end

app:get("/gen", function(req)
  return gen
end)

app:get("/incr", function(req)
  moonlet.sleep(0.01)                     -- all of them in flight at once
  return moonlet.worker.id .. " " .. assert(shared.incr("hits", 1, 0))
end)

app:get("/add/<key>", function(req, key)
  moonlet.sleep(0.01)
  local ok, err = shared.add(key, moonlet.worker.id)
  return moonlet.worker.id .. " " .. (ok and "won" or err)
end)

-- Increments "hammer" until "stop" is set, yielding now and then so the
-- worker serves other requests too; says which worker hammers first.
app:get("/hammer", function(req)
  local id = moonlet.worker.id
  shared.set("hammering:" .. id, moonlet.worker.pid)
  local n = 0
  while not shared.get("stop") do
    for _ = 1, 50 do shared.incr("hammer", 1, 0) end
    n = n + 50
    moonlet.sleep(0.001)
  end
  return id .. " " .. n
end)

app:post("/eval", function(req)
  local env = setmetatable({ moonlet = moonlet, shared = moonlet.shared },
    { __index = _G })
  local chunk = assert(load(req.body, "=eval", "t", env))
  local r = table.pack(pcall(chunk))
  if not r[1] then
    return "error:" .. tostring(r[2])
  end
  local out = {}
  for i = 2, r.n do out[#out + 1] = show(r[i]) end
  return table.concat(out, "\n")
end)

return app
