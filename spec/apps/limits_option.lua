-- The limits_spec app with a body limit set as an app option.
local moonlet = require "moonlet"
local app = moonlet.app { max_body = 100 }

hits = 0

app:get("/hits", function(req)
  return tostring(hits)
end)

app:route("/", { methods = { "GET", "POST" } }, function(req)
  hits = hits + 1
  return "ok " .. #req.body
end)

return app
