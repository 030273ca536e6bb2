-- bench: GET /sleep answers after one second of moonlet.sleep
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/sleep", function(req)
  moonlet.sleep(1)
  return "Hello, World!"
end)

return app
