-- bench: GET /headers -> "Hello, World!" with a headers table, the way
-- real handlers answer: return body, status, headers
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/headers", function(req)
  return "Hello, World!", 200, { ["Content-Type"] = "text/plain" }
end)

return app
