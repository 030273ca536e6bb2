-- bench: GET /user/<int:id> -> the id, as text
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/user/<int:id>", function(req, id)
  return tostring(id)
end)

return app
