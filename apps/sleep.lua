-- GET /sleep/<n> answers after n seconds without holding anyone up:
-- a thousand sleepers cost one worker nothing but memory.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/sleep/<int:n>", function(req, n)
  if n > 3600 then
    moonlet.abort(400, "an hour is enough")
  end
  moonlet.sleep(n)
  return ("Slept for %d seconds"):format(n)
end)

app:get("/", function(req)
  return "Try /sleep/2 in several tabs at once."
end)

return app
