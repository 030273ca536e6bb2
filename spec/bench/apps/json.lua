-- bench: GET /json -> {"message":"Hello, World!"}
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/json", function(req)
  return { message = "Hello, World!" }
end)

return app
