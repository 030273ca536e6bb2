-- app:static over a directory the spec makes (STATIC_DIR), some of whose
-- files sit on a "slow disk" (spec/support/slow_disk.c); and a route that
-- touches no file.
local moonlet = require "moonlet"
local app = moonlet.app()

app:static("/files", assert(os.getenv("STATIC_DIR")))
app:get("/hello", function() return "hello" end)

return app
