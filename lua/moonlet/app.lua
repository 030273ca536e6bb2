--- Apps: routes, hooks, error handlers, mounting, and the dispatch
-- function the server calls for every request.
-- Routes are matched in C (core.router); this module declares them,
-- turns what handlers return into responses and renders errors.
-- @module moonlet.app

local core = require "moonlet.core"
local url = require "moonlet.url"
local response = require "moonlet.response"
local json = require "moonlet.json"
local session = require "moonlet.session"

local type, pairs, ipairs, error, xpcall, pcall, setmetatable,
  getmetatable, tostring, select = type, pairs, ipairs, error, xpcall,
  pcall, setmetatable, getmetatable, tostring, select
local concat, sort = table.concat, table.sort
local upper, format, gsub, byte = string.upper, string.format,
  string.gsub, string.byte
local traceback, getinfo = debug.traceback, debug.getinfo
local math_type = math.type
local is_response, is_abort = response.is_response, response.is_abort
local redirect, abort = response.redirect, response.abort
local send, log, static_send = core.send, core.log, core.static_send
local encode_json, describe = json.encode, json.describe

local M = {}

local App = { __name = "moonlet.App" }
App.__index = App

local HTML = "text/html; charset=utf-8"
local TEXT = "text/plain; charset=utf-8"
local JSON = "application/json"

-- What a handler returns when it has sent its response itself (a file of
-- app:static): dispatch sends nothing more, and after hooks do not run.
local SENT = setmetatable({}, { __name = "moonlet.Sent" })

--- `moonlet.app([options])`: a new app.
-- options: name (prefix of route names when mounted), the limits
-- max_body, max_url, max_headers, header_timeout, keepalive_timeout,
-- send_timeout, tls_cert and tls_key (HTTPS with that pair), and
-- shared_size (bytes of moonlet.shared, taken when the store is first
-- used: --shared-size wins).
function M.new(options)
  if options ~= nil and type(options) ~= "table" then
    error("moonlet.app expects an options table", 2)
  end
  if options and options.shared_size ~= nil then
    local n = options.shared_size
    if math.type(n) ~= "integer" or n < 65536 then
      error("moonlet.app: shared_size must be a number of bytes, at least "
        .. "65536", 2)
    end
    core.shared_size(n)
  end
  local settings = {}    -- not 'options': that is app:options(pattern, fn)
  for k, v in pairs(options or {}) do
    settings[k] = v
  end
  return setmetatable({
    settings = settings,
    name = options and options.name,
    routes = {},          -- declarations, in order
    names = {},           -- route name -> declaration
    befores = {},
    afters = {},
    errorhandlers = {},   -- status -> fn(req, err)
    mounts = {},          -- {prefix=, app=}
    mounted_on = nil,     -- {app=, prefix=} once mounted (for url_for)
    check = core.router(),  -- catches bad and duplicate routes early
  }, App)
end

function M.is_app(v)
  return getmetatable(v) == App
end

--- Declaring routes
-- @section routes

-- Level 3 blames the user: check_methods <- App:route <- user.
local function check_methods(methods)
  if type(methods) ~= "table" or #methods == 0 then
    error("opts.methods must be a list such as {\"GET\", \"POST\"}", 3)
  end
  local list = {}
  for i, m in ipairs(methods) do
    if type(m) ~= "string" then
      error("opts.methods must hold method names", 3)
    end
    list[i] = upper(m)
  end
  return list
end

local function add_route(self, pattern, methods, name, handler)
  if type(pattern) ~= "string" then
    error("route pattern must be a string", 3)
  end
  if type(handler) ~= "function" then
    error("route handler must be a function", 3)
  end
  if name ~= nil and self.names[name] then
    error("route name '" .. tostring(name) .. "' is already used", 3)
  end
  local ok, parts = pcall(url.compile_pattern, pattern)
  if not ok then
    error(parts, 3)
  end
  local r = { pattern = pattern, methods = methods, name = name,
    handler = handler, parts = parts }
  local added, err = self.check:add(pattern, methods, #self.routes + 1)
  if not added then
    error(err, 3)
  end
  self.routes[#self.routes + 1] = r
  if name ~= nil then
    self.names[name] = r
  end
  return r
end

--- `app:route(pattern, opts, handler)`; opts.methods, opts.name.
function App:route(pattern, opts, handler)
  if type(opts) == "function" and handler == nil then
    opts, handler = nil, opts
  end
  opts = opts or {}
  local methods = opts.methods and check_methods(opts.methods) or { "GET" }
  add_route(self, pattern, methods, opts.name, handler)
  return self
end

for _, m in ipairs { "get", "post", "put", "patch", "delete", "options" } do
  local method = upper(m)
  --- `app:get(pattern, handler [, opts])` and the other methods.
  App[m] = function(self, pattern, handler, opts)
    if type(handler) == "table" and type(opts) == "function" then
      handler, opts = opts, handler       -- app:get(pattern, opts, fn)
    end
    add_route(self, pattern, { method }, opts and opts.name, handler)
    return self
  end
end

--- `app:static(prefix, directory [, opts])`: serves the files under
-- directory at prefix/..., with an index.html for a directory.  A
-- relative directory is relative to the file that declares it (the app
-- file, usually).  opts.name names the file route, whose parameter is
-- 'filename'.  The file is sent by core.static_send; a missing one is
-- this app's 404.
function App:static(prefix, directory, opts)
  if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" then
    error("static prefix must be a path starting with '/'", 2)
  end
  if type(directory) ~= "string" or directory == "" then
    error("app:static expects a directory name", 2)
  end
  if opts ~= nil and type(opts) ~= "table" then
    error("app:static options must be a table", 2)
  end
  local root = directory
  if root:sub(1, 1) ~= "/" then
    local dir = getinfo(2, "S").source:match("^@(.*)/[^/]*$")
    if dir then
      root = dir .. "/" .. root
    end
  end
  local function serve(req, path, slash)
    local ok, why = static_send(req, root, path, slash)
    if ok or why == "closed" then
      return SENT
    elseif why == "redirect" then         -- a directory: to its slash
      local qs = req.query_string
      return redirect(req.raw_path .. "/" .. (qs ~= "" and "?" .. qs or ""),
        308)
    end
    abort(404)
  end
  prefix = prefix:gsub("/+$", "")
  add_route(self, prefix .. "/", { "GET" }, nil, function(req)
    return serve(req, "", true)
  end)
  add_route(self, prefix .. "/<path:filename>", { "GET" }, opts and opts.name,
    function(req, path) return serve(req, path, false) end)
  add_route(self, prefix .. "/<path:filename>/", { "GET" }, nil,
    function(req, path) return serve(req, path, true) end)
  return self
end

--- `app:before(fn(req))`: a non-nil return is the response.
function App:before(fn)
  if type(fn) ~= "function" then
    error("app:before expects a function", 2)
  end
  self.befores[#self.befores + 1] = fn
  return self
end

--- `app:after(fn(req, resp))`: may change resp.status/headers/body.
function App:after(fn)
  if type(fn) ~= "function" then
    error("app:after expects a function", 2)
  end
  self.afters[#self.afters + 1] = fn
  return self
end

--- `app:errorhandler(status, fn(req, err))`; `app:errorhandler(fn)`
-- handles every status that has no handler of its own.
function App:errorhandler(status, fn)
  if type(status) == "function" and fn == nil then
    status, fn = "*", status
  elseif math_type(status) ~= "integer" or type(fn) ~= "function" then
    error("app:errorhandler expects a status and a function, or a "
      .. "function for every status", 2)
  end
  self.errorhandlers[status] = fn
  return self
end

--- `app:mount(prefix, other_app)`: serves other_app's routes under prefix.
function App:mount(prefix, other)
  if type(prefix) ~= "string" or prefix:sub(1, 1) ~= "/" then
    error("mount prefix must be a path starting with '/'", 2)
  end
  if not M.is_app(other) then
    error("app:mount expects an app made by moonlet.app()", 2)
  end
  if other == self then
    error("an app cannot be mounted on itself", 2)
  end
  prefix = prefix:gsub("/+$", "")
  for _, r in ipairs(other.routes) do   -- conflicts show up here, early
    local ok, err = self.check:add(prefix .. r.pattern, r.methods, 0)
    if not ok then
      error(err, 2)
    end
  end
  self.mounts[#self.mounts + 1] = { prefix = prefix, app = other }
  -- other:url_for must give its paths as served, under this prefix; an
  -- app mounted in several places answers for the first one.
  if other.mounted_on == nil then
    other.mounted_on = { app = self, prefix = prefix }
  end
  return self
end

--- URLs
-- @section urls

-- The declaration named 'name' in app or its mounts, and its prefix.
local function find_named(app, name, prefix)
  local r = app.names[name]
  if r then
    return r, prefix
  end
  for _, m in ipairs(app.mounts) do
    local sub = name
    if m.app.name then
      local p = m.app.name .. "."
      if name:sub(1, #p) ~= p then
        goto continue
      end
      sub = name:sub(#p + 1)
    end
    do
      local found, pre = find_named(m.app, sub, prefix .. m.prefix)
      if found then
        return found, pre
      end
    end
    ::continue::
  end
end

-- The prefix app is served under: its mount prefixes up to the root app.
local function served_prefix(app)
  local p, seen = "", {}
  while app.mounted_on and not seen[app] do
    seen[app] = true
    p = app.mounted_on.prefix .. p
    app = app.mounted_on.app
  end
  return p
end

--- `app:url_for(name, params [, query])`: the path of a named route.
-- Parameters the pattern does not use go to the query string.
function App:url_for(name, params, query)
  if type(name) ~= "string" then
    error("url_for expects a route name", 2)
  end
  local r, prefix = find_named(self, name, "")
  if not r then
    error("no route named '" .. name .. "'", 2)
  end
  params = params or {}
  local ok, path = pcall(url.build_path, r.parts, params, r.pattern)
  if not ok then
    error(path, 2)
  end
  local q = {}
  for k, v in pairs(params) do
    q[k] = v
  end
  for _, part in ipairs(r.parts) do
    if type(part) == "table" then
      q[part.name] = nil
    end
  end
  for k, v in pairs(query or {}) do
    q[k] = v
  end
  local qs = url.build_query(q)
  return served_prefix(self) .. prefix .. path .. (qs ~= "" and "?" .. qs
    or "")
end

--- Responses
-- @section responses

-- The body of a default error page and its type: an abort's table
-- message (moonlet.abort(422, {field = "x"})) is sent as JSON.
local function default_error_body(status, message)
  if type(message) == "table" then
    local ok, text = pcall(encode_json, message)
    if ok then
      return text, JSON
    end
    message = nil
  end
  return message or format("%d %s", status, M.reason(status)), TEXT
end

-- Reason phrases for default error pages.
local reasons = {
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden",
  [404] = "Not Found", [405] = "Method Not Allowed", [409] = "Conflict",
  [410] = "Gone", [413] = "Content Too Large", [415] = "Unsupported Media Type",
  [422] = "Unprocessable Content", [429] = "Too Many Requests",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

function M.reason(status)
  return reasons[status] or "Error"
end

-- "the string \"201\"" rather than "201": a status that is a string
-- looks like a number in a message.
local function shown(v)
  if type(v) == "string" then
    return format("the string %q", v)
  end
  return tostring(v)
end

-- Where the route's handler was defined, for messages about what it
-- returned (the error is raised here, far from the handler).
local function handler_at(e)
  local info = e and e.handler and getinfo(e.handler, "S")
  if info and info.short_src then
    return format("the handler at %s:%d", info.short_src, info.linedefined)
  end
  return "the handler"
end

-- Turns a handler's return values into status, body, headers, type.
-- Raises for values that are not a response.
local function to_response(a, b, c, default_status, e)
  local status, body, headers, ctype = default_status or 200, a, c, HTML
  if a == nil then
    return 204, "", c, HTML
  end
  local ta = type(a)
  if ta == "string" then
    -- body [, status [, headers]]
  elseif is_response(a) then
    return a.status, a.body, a.headers, HTML
  elseif ta == "table" then
    local ok, text = pcall(encode_json, a)
    if not ok then
      error(handler_at(e) .. " returned a table that cannot be sent as "
        .. "JSON: " .. gsub(tostring(text), "^json%.encode: ", ""), 0)
    end
    body, ctype = text, JSON
  else
    error(handler_at(e) .. " must return a string, a table, a response "
      .. "or nothing; it returned a " .. ta .. (ta == "number"
      and " (the body comes first: return body, status)" or ""), 0)
  end
  if b ~= nil then
    if math_type(b) ~= "integer" or b < 200 or b > 999 then
      error("the status " .. handler_at(e) .. " returns must be an integer "
        .. "from 200 to 999, got " .. shown(b), 0)
    end
    status = b
  end
  if c ~= nil and type(c) ~= "table" then
    error("the headers a handler returns must be a table", 0)
  end
  return status, body, headers, ctype
end

-- Runs the after hooks on {status=, headers=, body=}.  The headers are a
-- copy: the handler's table may be one it keeps for every request.
local function run_afters(req, afters, status, body, headers, ctype)
  local h = {}
  for k, v in pairs(headers or {}) do
    h[k] = v
  end
  local resp = { status = status, headers = h, body = body }
  if ctype ~= HTML and resp.headers["Content-Type"] == nil then
    resp.headers["Content-Type"] = ctype
  end
  for i = 1, #afters do
    afters[i](req, resp)
  end
  -- Checked here, inside the error handling, so that a bad value is a
  -- logged 500 with the request line rather than a failure in core.send.
  local s = resp.status
  if math_type(s) ~= "integer" or s < 200 or s > 999 then
    error("after hook left a status that is not an integer from 200 to "
      .. "999: " .. tostring(s), 0)
  end
  if type(resp.body) ~= "string" then
    error("after hook left a response body that is not a string", 0)
  end
  if type(resp.headers) ~= "table" then
    error("after hook left response headers that are not a table", 0)
  end
  return s, resp.body, resp.headers, ctype
end

-- The message handler of xpcall: aborts pass as they are; other errors
-- get a traceback from where they were raised.
local function on_error(err)
  if is_abort(err) then
    return err
  end
  local msg = type(err) == "string" and err or describe(err)
  return { internal = true, message = msg, traceback = traceback(msg, 2) }
end

-- The request as the error log names it: the request line as received,
-- the client and the request id (the access log's too).
local function request_line(req)
  local qs = req.query_string
  return format("%s %s%s HTTP/%s (from %s, request %s)", req.method,
    req.raw_path, qs ~= "" and "?" .. qs or "", req.version,
    req.remote_addr, req.id)
end

-- Control bytes as \xHH.  Explicit ranges, not %c, so that the C locale
-- does not matter.
local function escape_controls(s)
  return (gsub(s, "[\0-\31\127]", function(c)
    return format("\\x%02X", byte(c))
  end))
end

-- Sends; a response the wire refuses (bad header) becomes a logged 500.
local function finish(req, status, body, headers, ctype)
  local ok, err = send(req, status, body, headers, ctype)
  if not ok and err ~= "closed" then
    -- err may quote the handler's header name, CR/LF and all: escaped, it
    -- cannot forge lines in the log.
    log("error", request_line(req) .. ": cannot send the response: "
      .. escape_controls(err))
    send(req, 500, "500 Internal Server Error", nil, TEXT)
  end
end

local render_error

local session_changed, session_header = session.changed, session.header

-- headers (a handler's table, which may be reused) with one more
-- Set-Cookie value, in a new table.
local function add_cookie(headers, value)
  local h, key = {}, "Set-Cookie"
  for k, v in pairs(headers or {}) do
    h[k] = v
    if type(k) == "string" and k:lower() == "set-cookie" then
      key = k
    end
  end
  local old = h[key]
  if old == nil then
    h[key] = value
  elseif type(old) == "table" then
    local list = { table.unpack(old) }
    list[#list + 1] = value
    h[key] = list
  else
    h[key] = { old, value }
  end
  return h
end

-- Converts, runs after hooks and sends, inside the error handling.
local function respond(req, e, default_status, a, b, c)
  local status, body, headers, ctype = to_response(a, b, c, default_status,
    e)
  if session_changed[req] then       -- the session cookie, if it changed
    local cookie = session_header(req)
    if cookie then
      headers = add_cookie(headers, cookie)
    end
  end
  if #e.afters > 0 then
    status, body, headers, ctype = run_afters(req, e.afters, status, body,
      headers, ctype)
  end
  return status, body, headers, ctype
end

-- The page --debug shows for an uncaught error: the message, the
-- traceback, and the source lines around each frame in a file it can
-- read (the app's own; moonlet's built-in modules are skipped).
local function debug_page(status, detail, tb)
  local esc = require("moonlet.template").escape
  local parts = { format("<!doctype html>\n<html><head><meta charset=\"utf-8\">"
    .. "<title>%d %s</title><style>body{font-family:sans-serif;margin:2em}"
    .. "pre{background:#f4f4f4;padding:.6em;overflow:auto}"
    .. ".hit{background:#fdd;font-weight:bold}</style></head><body>\n"
    .. "<h1>%d %s</h1>\n<pre>%s</pre>\n<h2>Traceback</h2>\n<pre>%s</pre>\n",
    status, M.reason(status), status, M.reason(status), esc(detail),
    esc(tb)) }
  local seen = {}
  for file, line in tb:gmatch("\n%s*([^\n:%[]+%.lua):(%d+):") do
    line = tonumber(line)
    local key = file .. ":" .. line
    local f = not seen[key] and file:sub(1, 12) ~= "lua/moonlet/"
      and io.open(file, "r")
    if f then
      seen[key] = true
      local rows, n = {}, 0
      for text in f:lines() do
        n = n + 1
        if n >= line - 3 and n <= line + 3 then
          rows[#rows + 1] = format("<span%s>%5d  %s</span>",
            n == line and ' class="hit"' or "", n, esc(text))
        elseif n > line + 3 then
          break
        end
      end
      f:close()
      parts[#parts + 1] = format("<h3>%s</h3>\n<pre>%s</pre>\n", esc(key),
        concat(rows, "\n"))
    end
  end
  parts[#parts + 1] = "</body></html>\n"
  return concat(parts)
end

-- An error page: the app's errorhandler for the status, or plain text.
-- 'detail' is the raw message of an uncaught error, with its file:line:
-- the errorhandler's err.message has it without (safe to show), its
-- err.detail as it is; the default page never shows it but under --debug.
function render_error(req, e, status, message, tb, extra, detail)
  local handler = e.errorhandler(status)
  local ok, s, b, h, ct
  local fallback = false
  if handler then
    local err = { status = status, message = message or (detail and
      gsub(detail, "^[^\n]-:%d+: ", "")), detail = detail, traceback = tb }
    ok, s, b, h, ct = xpcall(function()
      local a1, a2, a3 = handler(req, err)
      -- A handler that renders nothing (one that only logs) must not
      -- turn the error into a 204: the status stays, with the default page.
      if a1 == nil and a2 == nil then
        fallback = true
        a1, fallback = default_error_body(status, message)
      end
      return respond(req, e, status, a1, a2, a3)
    end, on_error)
    if ok and fallback then
      ct = fallback
    end
    if not ok then
      log("error", request_line(req) .. ": the errorhandler for "
        .. status .. " failed: " .. (s.traceback or tostring(s.message)))
      s, b, h, ct = 500, "500 Internal Server Error", nil, TEXT
    end
  else
    local btype
    b, btype = default_error_body(status, message)
    if tb and core.debug() then
      b, btype = debug_page(status, detail or b, tb), HTML
    end
    ok, s, b, h, ct = pcall(respond, req, e, status, b, status, nil)
    if not ok then
      s, b, h = status, default_error_body(status, message), nil
    end
    ct = btype
  end
  if extra then
    h = h or {}
    for k, v in pairs(extra) do
      h[k] = v
    end
  end
  return finish(req, s, b, h, ct)
end

-- A handler or hook raised: abort renders its status; anything else is
-- logged with its traceback and becomes a 500.
local function failed(req, e, err)
  if is_abort(err) then
    return render_error(req, e, err.status, err.message, nil, err.headers)
  end
  if type(err) ~= "table" then  -- xpcall skips the message handler for
    err = { message = tostring(err),   -- memory errors (--lua-memory)
      traceback = tostring(err) .. " (no traceback: out of memory)" }
  end
  log("error", request_line(req) .. ": " .. err.traceback)
  return render_error(req, e, 500, nil, err.traceback, nil, err.message)
end

--- Serving
-- @section serving

-- Joins hook lists and error handler lookups along a chain of mounts.
-- A mounted app's own handler for the status, then its catch-all, then
-- its parent's (as Flask looks in a blueprint before its app).
local function chain_errorhandler(parent, app)
  return function(status)
    return app.errorhandlers[status] or app.errorhandlers["*"]
      or (parent and parent(status))
  end
end

local function append(a, b)
  local r = {}
  for i = 1, #a do r[#r + 1] = a[i] end
  for i = 1, #b do r[#r + 1] = b[i] end
  return r
end

-- A route's handler with the before hooks in front of it.
local function with_befores(befores, handler)
  if #befores == 0 then
    return handler
  end
  return function(req, ...)
    for i = 1, #befores do
      local a, b, c = befores[i](req)
      if a ~= nil then
        return a, b, c
      end
    end
    return handler(req, ...)
  end
end

-- Every route of app and its mounts, with hooks and names resolved.
local function flatten(app, prefix, befores, afters, errh, name_prefix, out)
  befores = append(befores, app.befores)
  afters = append(app.afters, afters)
  errh = chain_errorhandler(errh, app)
  if prefix ~= "" then          -- a mount: its 404s and 405s are its own
    out.mounts = out.mounts or {}
    out.mounts[#out.mounts + 1] = { prefix = prefix, afters = afters,
      errorhandler = errh }
  end
  for _, r in ipairs(app.routes) do
    out[#out + 1] = {
      pattern = prefix .. r.pattern, methods = r.methods,
      name = r.name and name_prefix .. r.name,
      run = with_befores(befores, r.handler), afters = afters,
      handler = r.handler,
      plain = #afters == 0,
      errorhandler = errh,
    }
  end
  for _, m in ipairs(app.mounts) do
    local np = m.app.name and (name_prefix .. m.app.name .. ".") or name_prefix
    flatten(m.app, prefix .. m.prefix, befores, afters, errh, np, out)
  end
  return out
end

-- What the server runs for a request: a C function of the core over
-- dispatch and its stages that calls the route's handler with no Lua
-- frame below it (a frame less for each waiting request).
local request_body = core.request_body

--- Compiles app into a router and returns it with the dispatch function:
-- `dispatch(req, id, ...)`, where id is a route with its converted values,
-- or 0 with a status (404, 405, 308, 200 for OPTIONS) and a header value.
function M.serve(app)
  local entries = flatten(app, "", {}, {}, nil, "", {})
  local router = core.router()
  local stages, plain = {}, {}
  for id, e in ipairs(entries) do
    local ok, err = router:add(e.pattern, e.methods, id)
    if not ok then
      error(err, 0)
    end
    stages[id] = e.run
    plain[id] = e.plain or nil
  end
  app.router = router
  session.configure(app.settings)
  local root = { afters = app.afters,
    errorhandler = chain_errorhandler(nil, app) }

  -- The mount a path falls under (the longest prefix), for its error
  -- pages; the root app otherwise.
  local mounts = entries.mounts or {}
  sort(mounts, function(a, b) return #a.prefix > #b.prefix end)
  local function owner(path)
    for i = 1, #mounts do
      local p = mounts[i].prefix
      if path == p or (path:sub(1, #p) == p and path:byte(#p + 1) == 47) then
        return mounts[i]
      end
    end
    return root
  end

  local function no_route(req, status, extra)
    local e = #mounts > 0 and owner(req.path) or root
    if status == 405 then
      return render_error(req, e, 405, nil, nil, { Allow = extra })
    elseif status == 200 then        -- automatic OPTIONS
      return finish(req, 200, "", { Allow = extra }, TEXT)
    elseif status == 308 then
      return finish(req, 308, "", { Location = extra }, TEXT)
    end
    return render_error(req, e, status)
  end

  -- Route id's handler has returned a, b, c (ok) or raised (not ok: a is
  -- what on_error made of the error): the response, after hooks and error
  -- pages.  The arguments come in the order core.request_body has them.
  local function handled(a, b, c, ok, req, id)
    local e = entries[id]
    if ok and a == SENT then
      return
    end
    if ok and b == nil and e.plain and session_changed[req] == nil then
      -- the common case, without a second xpcall: a string, or a plain
      -- table as JSON, and no after hooks to run
      local ta = type(a)
      if ta == "string" then
        return finish(req, 200, a, nil, HTML)
      elseif ta == "table" and getmetatable(a) == nil then
        local encoded, json = pcall(encode_json, a)
        if encoded then
          return finish(req, 200, json, nil, JSON)
        end
      end
    end
    if ok then
      local d
      ok, a, b, c, d = xpcall(respond, on_error, req, e, nil, a, b, c)
      if ok then
        return finish(req, a, b, c, d)
      end
    end
    return failed(req, e, a)
  end

  local function dispatch(req, id, ...)
    if id == 0 then
      return no_route(req, ...)
    end
    local ok, a, b, c = xpcall(entries[id].run, on_error, req, ...)
    return handled(a, b, c, ok, req, id)
  end

  stages[0] = handled
  stages[-1] = on_error
  -- The C side answers what handled's first branch would, itself: a
  -- string or plain table (with a status and headers) from a route
  -- without after hooks, when the session did not change.
  return router, request_body(dispatch, stages,
    { sent = SENT, changed = session_changed, plain = plain })
end

--- The lines `moonlet routes` prints: METHODS PATTERN NAME.
function M.route_lines(app)
  local entries = flatten(app, "", {}, {}, nil, "", {})
  local w1, w2 = 7, 7
  for _, e in ipairs(entries) do
    local m = concat(e.methods, ",")
    if #m > w1 then w1 = #m end
    if #e.pattern > w2 then w2 = #e.pattern end
  end
  local lines = {}
  local function pad(s, w)      -- format's widths stop at 99
    return s .. (" "):rep(w - #s)
  end
  for _, e in ipairs(entries) do
    local m = concat(e.methods, ",")
    lines[#lines + 1] = (pad(m, w1) .. "  " .. pad(e.pattern, w2) .. "  "
      .. (e.name or "-")):gsub("%s+$", "")
  end
  return concat(lines, "\n") .. (#lines > 0 and "\n" or "")
end

return M
