-- The smallest moonlet app: `make run`, then open http://127.0.0.1:8080/
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/", function(req)
  return "Hello, World!"
end)

return app
