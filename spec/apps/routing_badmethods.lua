-- Loading must fail: opts.methods is not a list.
local moonlet = require "moonlet"
local app = moonlet.app()

app:route("/x", { methods = "GET" }, function() return "x" end)  -- the bad opts

return app
