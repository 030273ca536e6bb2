-- The app host_spec.lua asks: what a handler sees of Host, trailers and
-- the request target.
local moonlet = require "moonlet"
local app = moonlet.app()

app:route("/p", { methods = { "GET", "POST" } }, function(req)
  local all = {}
  for k, v in pairs(req.headers) do all[k] = v end
  return { host = req.headers.host or "none", headers = all,
    path = req.path, raw_path = req.raw_path, q = req.query.q or "none",
    body = req.body }
end)

return app
