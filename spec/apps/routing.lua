-- The app spec/routing_spec.lua serves: one route per routing rule of API §3.
-- Handlers echo what they received (values and their Lua types) as JSON, so
-- the spec can check conversions through a real server.
local moonlet = require "moonlet"
local app = moonlet.app()

-- {args = {...}, types = {...}, params = {...}, ptypes = {...}}: the extra
-- handler arguments in order, and req.params, each with its Lua type
-- (math.type for numbers, so that 5 and 5.0 differ).
local function kind(v)
  return math.type(v) or type(v)
end

local function echo(req, ...)
  local n = select("#", ...)
  local out = { n = n, args = {}, types = {}, params = {}, ptypes = {} }
  for i = 1, n do
    local v = select(i, ...)
    out.args[i] = v
    out.types[i] = kind(v)
  end
  for k, v in pairs(req.params) do
    out.params[k] = v
    out.ptypes[k] = kind(v)
  end
  out.path, out.raw_path = req.path, req.raw_path
  return out
end

app:get("/", function() return "index" end)
app:get("/hello", function() return "Hello, HEAD!" end)

-- converters
app:get("/user/<name>", echo, { name = "user" })
app:get("/str/<string:x>", echo)
app:get("/sleep/<int:n>", echo, { name = "sleep" })
app:get("/price/<float:x>", echo)
app:get("/files/<path:p>", echo, { name = "files" })
app:get("/multi/<a>/<int:b>/<path:c>", echo)
app:get("/raw/<path:p>", echo)

-- static beats param, whatever the order of declaration
app:get("/order1/<name>", function(_, name) return "param:" .. name end)
app:get("/order1/me", function() return "static" end)
app:get("/order2/me", function() return "static" end)
app:get("/order2/<name>", function(_, name) return "param:" .. name end)

-- several methods, named
app:route("/form", { methods = { "GET", "POST" }, name = "form" },
  function(req) return "form:" .. req.method end)

-- one route per method helper
app:get("/m", function(req) return "get:" .. req.method end)
app:post("/m", function(req) return "post:" .. req.method end)
app:put("/m", function(req) return "put:" .. req.method end)
app:patch("/m", function(req) return "patch:" .. req.method end)
app:delete("/m", function(req) return "delete:" .. req.method end)
app:options("/m", function(req) return "options:" .. req.method end)

-- strict slashes
app:get("/docs/", function() return "docs" end)
app:get("/dir/<name>/", function(_, name) return "dir:" .. name end)
app:get("/nodir", function() return "nodir" end)

-- url_for, each case in a pcall: the value or "ERR:" and the message.
-- The calls are not tail calls, so that an error raised at level 2 has
-- this file's line in it.
local function url_for(...)
  local u = app:url_for(...)
  return u
end
local urlfor_cases = {
  user = function() return url_for("user", { name = "a b/c" }) end,
  sleep = function() return url_for("sleep", { n = 5 }) end,
  files = function() return url_for("files", { p = "a b/c.txt" }) end,
  query = function()
    return url_for("user", { name = "x" }, { q = "1 2", z = "&" })
  end,
  extra = function() return url_for("user", { name = "x", page = 2 }) end,
  tricky = function() return url_for("user", { name = "50%2F50/x" }) end,
  spaced = function() return url_for("user", { name = "a b" }) end,
  form = function() return url_for("form") end,
  mounted = function() return url_for("api.item", { id = 7 }) end,
  unknown = function() return url_for("nope", {}) end,
  missing = function() return url_for("user", {}) end,
}
app:get("/urlfor/<case>", function(_, case)
  local ok, v = pcall(urlfor_cases[case])
  return ok and v or "ERR:" .. tostring(v)
end)

-- hooks of the main app apply to its own routes and to mounted ones
app:before(function(req) req.ctx.main_before = true end)
app:get("/ctxcheck", function(req)
  return { main = req.ctx.main_before == true,
           sub = req.ctx.sub_before == true }
end)

-- a blueprint
local sub = moonlet.app { name = "api" }
sub:before(function(req) req.ctx.sub_before = true end)
sub:get("/items/<int:id>", function(req, id)
  return { id = id, type = kind(id), main = req.ctx.main_before == true,
           sub = req.ctx.sub_before == true, path = req.path }
end, { name = "item" })
sub:get("/where", function()
  return app:url_for("api.item", { id = 42 })
end, { name = "where" })
sub:get("/self", function()
  local u = sub:url_for("item", { id = 3 })
  return u
end)
app:mount("/api", sub)

return app
