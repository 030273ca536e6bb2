-- A form that squares a number: GET / shows it, POST /square/submit
-- answers "<x> squared is <x*x>".
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/", function(req)
  return [[<!doctype html>
<form method="post" action="/square/submit">
  <input name="x" type="number" step="any" autofocus>
  <button>Square it</button>
</form>]]
end)

app:post("/square/submit", function(req)
  local x = tonumber(req.form.x)
  if not x then
    moonlet.abort(400, "x must be a number")
  end
  return ("%s squared is %s"):format(req.form.x, x * x)
end)

return app
