-- Loading must fail: an unknown converter in a pattern.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/ok", function() return "ok" end)
app:get("/x/<bogus:y>", function() return "never" end)  -- the bad pattern

return app
