-- For spec/c/test_watchdog.c: its host registers host_stop(), which calls
-- moonlet_close; this handler then never waits.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/stop-and-spin", function()
  host_stop()
  while true do end
end)

return app
