-- The app flood_spec.lua floods: a short answer, and one of n bytes.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/", function() return "Hello, World!" end)

local bodies = {}
app:get("/bytes/<int:n>", function(req, n)
  if n > 1024 * 1024 then moonlet.abort(400) end
  bodies[n] = bodies[n] or ("x"):rep(n)
  return bodies[n]
end)

return app
