-- bench: GET /fanin fetches the backend's GET /backend (it answers after
-- 20 ms), then answers with its body.  BENCH_BACKEND_PORT names the port;
-- BENCH_BACKEND_CA (the CA to verify it with) makes it https, to
-- localhost.
local moonlet = require "moonlet"
local app = moonlet.app()

local port = os.getenv("BENCH_BACKEND_PORT") or "8081"
local ca = os.getenv("BENCH_BACKEND_CA")
local url = ("http://127.0.0.1:%s/backend"):format(port)
local opts = nil
if ca then
  url = ("https://localhost:%s/backend"):format(port)
  opts = { tls = { ca_file = ca } }
end

app:get("/fanin", function(req)
  if not moonlet.http then
    return "no moonlet.http yet", 501   -- the harness reports n/a
  end
  local res, err = moonlet.http.get(url, opts)
  if not res then
    return err, 502
  end
  return res.body
end)

return app
