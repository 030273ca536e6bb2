-- The app apps/embed/host.c serves: host.count() is a C function the host
-- registers in every Lua state, reading a counter its own timer advances.
local moonlet = require "moonlet"

local app = moonlet.app()

app:get("/", function()
  return { count = host.count() }
end)

return app
