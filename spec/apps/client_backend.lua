-- A moonlet app as the backend of the client specs: slow answers, echoes,
-- a 404.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/slow/<float:s>", function(req, s)
  moonlet.sleep(s)
  return "slept " .. s
end)

app:route("/echo", { methods = { "GET", "POST", "PUT", "DELETE" } },
  function(req)
    return { method = req.method, body = req.body,
      ctype = req.headers["Content-Type"], agent = req.headers["User-Agent"],
      custom = req.headers["X-Custom"], host = req.headers["Host"],
      query = req.query_string }
  end)

app:get("/hello", function(req)
  return "hello from moonlet"
end)

return app
