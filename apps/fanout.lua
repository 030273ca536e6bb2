-- GET /fanout?n=K fetches K URLs at once with moonlet.gather and answers
-- a JSON list of {url=, status=}: K slow calls take as long as one.
-- FANOUT_URL is the URL to fetch (default: this app's own /item/<i>,
-- which answers after 0.1 s).
local moonlet = require "moonlet"
local app = moonlet.app()

local base = os.getenv("FANOUT_URL")

app:get("/item/<int:i>", function(req, i)
  moonlet.sleep(0.1)
  return { item = i }
end)

app:get("/fanout", function(req)
  local n = math.tointeger(tonumber(req.query.n or "3"))
  if not n or n < 1 or n > 100 then
    moonlet.abort(400, "n must be an integer from 1 to 100")
  end
  local jobs = {}
  for i = 1, n do
    local url = base or ("http://" .. req.headers.host .. "/item/" .. i)
    jobs[i] = function()
      local res, err = moonlet.http.get(url)
      return { url = url, status = res and res.status or err }
    end
  end
  return { moonlet.gather(table.unpack(jobs)) }
end)

return app
