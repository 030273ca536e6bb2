-- app:static over a directory the spec makes (STATIC_DIR), some of whose
-- files sit on a "slow disk" (spec/support/slow_disk.c); and a route that
-- touches no file; and one that holds the loop (CPU), so that events
-- meant for different turns arrive in one.
local moonlet = require "moonlet"
local app = moonlet.app()

app:static("/files", assert(os.getenv("STATIC_DIR")))
app:get("/hello", function() return "hello" end)
app:get("/hold/<int:ms>", function(req)
  local t0 = os.clock()
  while os.clock() - t0 < req.params.ms / 1000 do end
  return "held"
end)

return app
