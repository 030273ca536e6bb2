-- The wire_spec app: small answers whose order and framing can be checked.
local moonlet = require "moonlet"
local app = moonlet.app()

app:route("/", { methods = { "GET", "POST" } }, function(req)
  return "ok"
end)

app:get("/n/<int:n>", function(req, n)
  return "r" .. n
end)

app:get("/slow/<int:n>", function(req, n)
  moonlet.sleep(0.1)
  return "r" .. n
end)

app:get("/version", function(req)
  return req.version
end)

app:get("/json", function(req)
  return { ok = true }
end)

app:get("/text", function(req)
  return "hello text"
end)

app:route("/body", { methods = { "POST", "PUT" } }, function(req)
  return req.body, 200, { ["X-Body-Length"] = tostring(#req.body) }
end)

app:get("/boom", function(req)
  error("boom on purpose")
end)

-- the request's headers "x-h1..x-hN" joined, to check every one arrived
app:get("/hdrs", function(req)
  local out, i = {}, 1
  while req.headers["x-h" .. i] do
    out[i] = req.headers["x-h" .. i]
    i = i + 1
  end
  return table.concat(out, ",")
end)

-- reads the request only after a wait, when other connections' bytes
-- have passed through the server's read buffer meanwhile
app:get("/later/<word>", function(req, word)
  moonlet.sleep(0.2)
  return table.concat({ word, req.path, req.query_string,
    req.headers["x-tag"] or "-", req.headers["x-other"] or "-" }, "|")
end)

return app
