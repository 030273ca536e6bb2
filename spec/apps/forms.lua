-- The ways a handler answers, in an app without hooks: what the core
-- answers itself (spec/forms_spec.lua).
local moonlet = require "moonlet"
local app = moonlet.app()

-- One headers table for every request, as apps keep constants.
local KEPT = { ["X-Kept"] = "yes", ["Cache-Control"] = "no-store" }

app:get("/string", function() return "hello" end)
app:get("/headers", function()
  return "with headers", 202, { ["Content-Type"] = "text/plain",
    ["X-Multi"] = { "a", "b" }, ["X-Num"] = 42, ["Date"] = "never",
    ["Content-Length"] = "999" }
end)
app:get("/json", function() return { n = 1, s = "é\n", list = { 1, 2 } } end)
app:get("/json-kept", function() return { made = true }, 201, KEPT end)
app:get("/kept", function()
  local n = 0
  for _ in pairs(KEPT) do n = n + 1 end
  return tostring(n)
end)
app:get("/json-204", function() return { x = 1 }, 204 end)
app:get("/close", function() return "bye", 200, { Connection = "close" } end)
app:get("/bad-name", function() return "x", 200, { ["Bad Name"] = "v" } end)
app:get("/bad-json", function() return { f = print } end)
app:get("/array", function() return moonlet.json.array({}) end)
app:get("/user/<int:id>", function(_, id) return tostring(id * 2) end)
app:get("/sleep", function()
  moonlet.sleep(0.01)
  return { slept = true }, 200, { ["X-Slept"] = "1" }
end)
-- Header names made afresh for every request, the garbage collected
-- before: Content-Length in cases never used before (dropped: the core
-- frames) and names of its own (sent).  The core knows the names it has
-- seen by their strings' addresses; a name must never be taken for one
-- that lay at the same address before.
local function variant(k)   -- "content-length", cased by k's bits
  return (("content-length"):gsub("%a", function(c)
    local up = k % 2 == 1
    k = k // 2
    return up and c:upper() or c
  end))
end

app:get("/fresh/<int:i>", function(_, i)
  collectgarbage()
  local h = {}
  for j = 1, 8 do
    h[variant(i * 8 + j)] = "999"
    h[("X-Fresh-%d-%d"):format(i, j)] = "v"
  end
  return "b", 200, h
end)

return app
