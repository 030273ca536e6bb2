-- JSON through a real server: requests, responses, aborts, errors.
local moonlet = require "moonlet"
local json = moonlet.json
local app = moonlet.app()

local notes = {}

app:post("/notes", function(req)
  local n = req:json()
  notes[n.id] = n
  return { url = "/notes/" .. n.id, id = n.id, kind = math.type(n.id) }, 201
end)

app:get("/notes/<int:id>", function(req, id)
  return notes[id] or moonlet.abort(404, { error = "no note", id = id })
end)

app:get("/big", function()
  return { n = 2^53 | 0, m = -(2^62 | 0), f = 0.1, empty = json.array(),
    none = moonlet.null, url = "http://x/y" }
end)

app:post("/validate", function(req)
  local v = req:json()
  if type(v.name) ~= "string" then
    moonlet.abort(422, { field = "name", error = "required" })
  end
  return { ok = true }
end)

app:get("/unsendable", function()
  return { cb = function() end }
end)

app:get("/string-status", function()
  return "created", "201"
end)

app:get("/task-error", function()
  moonlet.spawn(function() error({ code = 42, why = "table error" }) end)
  collectgarbage(); collectgarbage()
  return "spawned"
end)

app:get("/gc", function()
  collectgarbage(); collectgarbage()
  return "collected"
end)

app:get("/table-error", function()
  error({ code = 7, why = "raised a table" })
end)

return app
