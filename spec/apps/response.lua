-- The app spec/response_spec.lua serves: one route per return form and
-- error path of API §5.  Lines the spec looks for carry a "-- MARK:" comment.
local moonlet = require "moonlet"
local app = moonlet.app()

-- return forms
app:get("/string", function() return "hello" end)
app:get("/table", function()
  return { a = 1, s = "x", list = { 1, 2, 3 }, nested = { ok = true } }
end)
app:get("/empty-table", function() return {} end)
app:get("/status", function() return "created", 201 end)
app:get("/headers", function()
  return "with headers", 202, {
    ["X-One"] = "1",
    ["X-Num"] = 42,
    ["X-Multi"] = { "a", "b" },
    ["Content-Type"] = "text/plain",
  }
end)
app:get("/json-status", function() return { made = true }, 201 end)
-- One headers table for every request, as apps keep constants; this
-- app's after hook sees a copy of it.
local KEPT = { ["X-Kept"] = "yes" }
app:get("/json-kept", function() return { made = true }, 201, KEPT end)
app:get("/kept", function()
  local n = 0
  for _ in pairs(KEPT) do n = n + 1 end
  return tostring(n)
end)
app:get("/nothing", function() end)
app:get("/response", function()
  return moonlet.response { status = 418, headers = { ["X-R"] = "y" },
                            body = "teapot" }
end)
app:get("/response-default", function() return moonlet.response {} end)
app:get("/redirect", function() return moonlet.redirect("/string") end)
app:get("/redirect301", function()
  return moonlet.redirect("/string", 301)
end)

-- abort from a nested function
local function deep(status, message)
  local function deeper()
    moonlet.abort(status, message)
  end
  deeper()
  return "not reached"
end
app:get("/abort403", function() return deep(403) end)
app:get("/abort404", function()
  local v = deep(404, "no such thing")
  return v
end)
app:get("/abort409", function() deep(409, "conflict here") end)

-- errors
app:errorhandler(404, function(req, err)
  return "custom 404: " .. (err.message or "none") .. " for " .. req.path, 404
end)
app:get("/boom", function()
  error("kaboom")  -- MARK: boom
end)
app:get("/boom-deep", function()
  local function inner() local t = nil; return t.field end  -- MARK: deep
  inner()
end)
app:get("/number", function() return 42 end)
app:get("/boolean", function() return true end)
app:get("/badstatus", function() return "x", 99 end)
app:get("/badstatus-big", function() return "x", 1000 end)
app:get("/badheaders", function() return "x", 200, "X-Not: a table" end)
app:get("/badbody", function()
  -- not a tail call, so that the error can name this line
  local r = moonlet.response { body = { "not", "a", "string" } }  -- MARK: badbody
  return r
end)

-- an errorhandler that renders nothing (it only logs) keeps the status
app:errorhandler(401, function(req, err)
  moonlet.log("info", "unauthorized: " .. req.path)
end)
app:get("/abort401", function() moonlet.abort(401) end)

-- header injection: CR/LF/NUL in names and values set by handlers
app:get("/inject-value", function()
  return "x", 200, { ["X-Evil"] = "a\r\nInjected: yes" }
end)
app:get("/inject-lf", function()
  return "x", 200, { ["X-Evil"] = "a\nInjected: yes" }
end)
app:get("/inject-nul", function()
  return "x", 200, { ["X-Evil"] = "a\0b" }
end)
app:get("/inject-name", function()
  return "x", 200, { ["Injected: yes\r\nX-Evil"] = "v" }
end)
app:get("/inject-forge", function()
  return "x", 200, { ["X-A\r\n2001-01-01T00:00:00Z [error] forged"] = "v" }
end)
app:get("/inject-list", function()
  return "x", 200, { ["X-Evil"] = { "fine", "b\r\nInjected: yes" } }
end)
app:get("/inject-redirect", function()
  return moonlet.redirect("/x\r\nInjected: yes")
end)
app:get("/inject-response", function()
  return moonlet.response { headers = { ["X-Evil"] = "\r\nInjected: yes" } }
end)

-- cookies
app:get("/cookie", function()
  return "c", 200, { ["Set-Cookie"] = moonlet.cookie("sid", "abc",
    { path = "/", httponly = true, samesite = "lax" }) }
end)
app:get("/cookies", function()
  return "cc", 200, { ["Set-Cookie"] = {
    moonlet.cookie("a", "1"),
    moonlet.cookie("b", "2", { max_age = 60, secure = true }),
  } }
end)

-- hooks: a before hook that answers when X-Short is sent; an after hook
-- that rewrites /after; a counter shows whether the handler ran
local hits = 0
app:before(function(req)
  if req.headers["x-short"] then
    return "short-circuited", 203, { ["X-Before"] = "yes" }
  end
end)
app:get("/counted", function()
  hits = hits + 1
  return tostring(hits)
end)
app:get("/after", function() return "body", 200, { ["X-Orig"] = "1" } end)
app:get("/after-json", function() return { v = 1 } end)
app:after(function(req, resp)
  if req.path == "/after" then
    resp.status = 201
    resp.headers["X-After"] = "yes"
    resp.headers["X-Orig"] = nil
    resp.body = resp.body .. " (after)"
  elseif req.path == "/after-json" then
    resp.headers["X-After"] = "json"
  elseif req.path == "/after-inject" then
    resp.headers["X-Evil"] = "a\r\nInjected: yes"
  elseif req.path == "/after-badstatus" then
    resp.status = "201"
  elseif req.path == "/after-badheaders" then
    resp.headers = "X-Not: a table"
  end
end)
app:get("/after-inject", function() return "x" end)
app:get("/after-badstatus", function() return "x" end)
app:get("/after-badheaders", function() return "x" end)

-- a blueprint with its own 500 and 409 handlers
local sub = moonlet.app { name = "eh" }
sub:errorhandler(500, function(req, err)
  return { status = err.status, message = err.message,
           traceback = err.traceback,
           has_line = err.traceback ~= nil
             and err.traceback:find("response%.lua:%d+") ~= nil }, 500
end)
sub:errorhandler(409, function(req, err)
  return "sub 409: " .. tostring(err.message), 409
end)
sub:get("/boom", function()
  error("sub kaboom")  -- MARK: sub boom
end)
sub:get("/abort409", function() deep(409, "in sub") end)
sub:get("/abort404", function() deep(404, "from sub") end)
app:mount("/eh", sub)

return app
