-- moonlet.shared: POST /eval runs the Lua in the body with `moonlet` and
-- `shared` in scope, and answers each result as a line "type:value" (or
-- "error:message"); GET /gen says which load of the app is serving.
local moonlet = require "moonlet"
local app = moonlet.app()

local gen = tostring(math.random(1 << 40))   -- Lua 5.4 seeds randomly

local function show(v)
  local t = math.type(v) or type(v)
  if t == "nil" then return "nil" end
  return t .. ":" .. tostring(v)
end

app:get("/gen", function(req)
  return gen
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
