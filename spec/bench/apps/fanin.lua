-- bench: GET /fanin fetches the backend's GET /backend (it answers after
-- 20 ms), then answers with its body.  BENCH_BACKEND_PORT names the port.
local moonlet = require "moonlet"
local app = moonlet.app()

local url = ("http://127.0.0.1:%s/backend"):format(
  os.getenv("BENCH_BACKEND_PORT") or "8081")

app:get("/fanin", function(req)
  if not moonlet.http then
    return "no moonlet.http yet", 501   -- the harness reports n/a
  end
  local res, err = moonlet.http.get(url)
  if not res then
    return err, 502
  end
  return res.body
end)

return app
