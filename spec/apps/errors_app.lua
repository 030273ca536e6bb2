-- Error handlers and the logs: a catch-all, a mounted app's own pages,
-- what a 500's handler sees, and a request id.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/id", function(req) return req.id end)
app:get("/boom", function() error("kaboom at the root") end)
app:get("/teapot", function() moonlet.abort(418, "short and stout") end)
app:get("/missing", function() moonlet.abort(404) end)

app:errorhandler(404, function(req, err)
  return "root 404 for " .. req.path
end)
app:errorhandler(function(req, err)        -- every other status
  return ("root caught %d: %s"):format(err.status, tostring(err.message))
end)

local api = moonlet.app { name = "api" }
api:get("/items", function() return { items = {} } end)
api:get("/crash", function() error("kaboom in the api") end)
api:errorhandler(function(req, err)
  return { error = err.status, message = err.message,
    has_detail = err.detail ~= nil and err.detail:find("errors_app%.lua:%d+")
      ~= nil }
end)
app:mount("/api", api)

return app
