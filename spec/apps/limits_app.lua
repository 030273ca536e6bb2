-- The limits_spec app: every route but /hits counts the requests that
-- reach a handler, so a refused request can be seen not to.
local moonlet = require "moonlet"
local app = moonlet.app()

hits = 0

app:get("/hits", function(req)
  return tostring(hits)
end)

-- Works past the header and keep-alive timeouts: a handler at work has
-- no connection deadline.
app:get("/slow", function(req)
  moonlet.sleep(1.2)
  return "slow"
end)

app:route("/", { methods = { "GET", "POST", "PUT" } }, function(req)
  hits = hits + 1
  return "ok " .. #req.body
end)

app:route("/<path:rest>", { methods = { "GET", "POST", "PUT" } }, function(req)
  hits = hits + 1
  return "ok " .. #req.body
end)

return app
