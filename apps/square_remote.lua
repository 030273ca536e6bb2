-- POST /square/submit with a form field x: asks another web service for a
-- page, and answers "<x> squared plus <y> is <x*x+y>", where y is the
-- length of that page.  The handler waits on the network without holding
-- up anyone else.  SQUARE_SERVICE_URL names the service; by default this
-- app asks itself, at GET /service.
local moonlet = require "moonlet"
local app = moonlet.app()

local service = os.getenv("SQUARE_SERVICE_URL")

app:get("/", function(req)
  return [[<!doctype html>
<form method="post" action="/square/submit">
  <input name="x" type="number" step="any" autofocus>
  <button>Square it, plus a remote length</button>
</form>]]
end)

app:get("/service", function(req)
  return "a page from the service"
end)

app:post("/square/submit", function(req)
  local x = tonumber(req.form.x)
  if not x then
    moonlet.abort(400, "x must be a number")
  end
  local url = service or ("http://" .. req.headers.host .. "/service")
  local res, err = moonlet.http.get(url, { timeout = 10 })
  if not res then
    moonlet.abort(502, "the service at " .. url .. " failed: " .. err)
  end
  local y = #res.body
  return ("%s squared plus %d is %s"):format(req.form.x, y, x * x + y)
end)

return app
