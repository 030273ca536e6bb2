-- The app stopping_spec.lua stops: a fast route for keep-alive load.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/", function() return "ok" end)

return app
