-- bench: GET / -> "Hello, World!" (scenarios hello, pipelined, reload)
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/", function(req)
  return "Hello, World!"
end)

return app
