-- Loading must fail: the same pattern and method declared twice.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/a", function() return "first" end)
app:get("/a", function() return "second" end)  -- the duplicate

return app
