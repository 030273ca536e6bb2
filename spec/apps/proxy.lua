-- Behind a proxy: GET /who answers "REMOTE_ADDR SCHEME"; GET /ready is a
-- readiness route (503 once the server is draining); GET /slow takes 0.5 s.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/who", function(req)
  return req.remote_addr .. " " .. req.scheme
end)

app:get("/ready", function()
  if moonlet.draining() then
    return "draining", 503
  end
  return "ready"
end)

app:get("/slow", function()
  moonlet.sleep(0.5)
  return "slow"
end)

return app
