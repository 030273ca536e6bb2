-- Loading must fail: opts.methods names a method llhttp does not know.
local moonlet = require "moonlet"
local app = moonlet.app()

app:route("/x", { methods = { "GET", "QUERY" } }, print)  -- the unknown method
app:get("/y", function() return "y" end)

return app
