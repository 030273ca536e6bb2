-- The request_spec app: each route answers JSON of what the handler sees.
local moonlet = require "moonlet"
local app = moonlet.app()

local function hex(s)
  return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end))
end

-- Fields read from C, common to every echo.
local function basics(req)
  return {
    method = req.method, path = req.path, raw_path = req.raw_path,
    query_string = req.query_string, version = req.version,
    remote_addr = req.remote_addr, params = req.params, body = req.body,
    body_type = type(req.body),
  }
end

app:before(function(req)
  if req.path:sub(1, 5) == "/ctx/" then
    req.ctx.from_before = "yes"
  end
end)

app:route("/echo", { methods = { "GET", "POST", "PUT", "DELETE", "PATCH" } },
  function(req)
    return basics(req)
  end)

-- The body as sent, bytes JSON cannot carry included.
app:post("/echo-raw", function(req)
  return moonlet.response{ body = req.body,
    headers = { ["Content-Type"] = "application/octet-stream" } }
end)

app:get("/echo/<name>/<int:n>", function(req, name, n)
  local t = basics(req)
  t.args = { name = name, n = n, n_type = math.type(n) }
  return t
end)

app:get("/headers", function(req)
  local all = {}
  for k, v in pairs(req.headers) do all[k] = v end
  return {
    all = all,
    upper = req.headers["X-CUSTOM"], lower = req.headers["x-custom"],
    mixed = req.headers["x-CuStOm"], fn = req:header("X-Custom"),
    fn_lower = req:header("x-custom"),
    multi = req.headers["X-Multi"], multi_fn = req:header("x-multi"),
    missing = req.headers["X-Missing"] == nil and "nil" or "set",
    missing_fn = req:header("X-Missing") == nil and "nil" or "set",
  }
end)

-- One header, named in the query, both ways.
app:get("/header_named", function(req)
  local name = req.query.name
  return { table = req.headers[name] or "nil", fn = req:header(name) or "nil" }
end)

app:get("/query", function(req)
  return {
    query = req.query, all_a = req:query_all("a"),
    all_none = req:query_all("nope"), first_a = req.query.a,
  }
end)

app:post("/form", function(req)
  local files = {}
  for name, f in pairs(req.files) do
    files[name] = { filename = f.filename, content_type = f.content_type,
      hex = hex(f.body), len = #f.body }
  end
  return { form = req.form, files = files }
end)

app:get("/cookies", function(req)
  return { cookies = req.cookies }
end)

app:post("/json", function(req)
  return { got = req:json() }
end)

-- req.ctx: set here, must be absent in the next request.
app:get("/ctx/set", function(req)
  local before = req.ctx.mark
  req.ctx.mark = "set"
  return { before = before or "nil", from_before = req.ctx.from_before,
    same = req.ctx == req.ctx }
end)

app:get("/ctx/get", function(req)
  return { mark = req.ctx.mark or "nil", from_before = req.ctx.from_before }
end)

-- A request object kept past its response.
app:get("/stash", function(req)
  stashed = req
  stashed_body = req.body
  return "stashed"
end)

app:get("/stale", function(req)
  local out = {}
  local ok, err = pcall(function() return stashed.method end)
  out.method_ok, out.method_err = ok, tostring(err)
  ok, err = pcall(function() return stashed:header("host") end)
  out.header_ok, out.header_err = ok, tostring(err)
  ok, err = pcall(function() return stashed.query end)
  out.query_ok, out.query_err = ok, tostring(err)
  ok, err = pcall(tostring, stashed)
  out.tostring_ok, out.tostring = ok, tostring(err)
  out.current = req.method
  return out
end)

return app
