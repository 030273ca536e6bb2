--- What a request object offers beyond the fields read from C.
-- Methods (`req:json()`, `req:query_all()`, `req:header()`) and lazy
-- fields (`req.query`, `req.form`, `req.files`, `req.cookies`), computed
-- on first use and cached on the request.
-- @module moonlet.request

local core = require "moonlet.core"
local url = require "moonlet.url"
local form = require "moonlet.form"
local cookie = require "moonlet.cookie"
local response = require "moonlet.response"
local stream = require "moonlet.stream"
local session = require "moonlet.session"
local websocket = require "moonlet.websocket"

local type, pcall, rawget = type, pcall, rawget
local lower = string.lower

local json = require "moonlet.json"

local methods, lazy = {}, {}

methods.header = core.req_header
methods.stream = stream.stream
methods.sse = stream.sse
methods.csrf_token = session.csrf_token
methods.flash = session.flash
methods.flashes = session.flashes
methods.clear_session = session.clear
lazy.session = session.load
methods.websocket = websocket.upgrade

--- `req:json()`: the decoded body; a body that is not JSON (or not
-- UTF-8, or with NaN) aborts with 400.  Decoded once per request.
function methods.json(req)
  local v = req.__json
  if v ~= nil then
    return v
  end
  local err
  v, err = json.decode(req.body)
  if v == nil then
    response.abort(400, "the request body is not valid JSON ("
      .. err:gsub("^invalid JSON: ", "") .. ")")
  end
  req.__json = v
  return v
end

--- `req:query_all(name)`: every value of a query parameter, as a list.
function methods.query_all(req, name)
  local _ = req.query
  return req.__query_all[name] or {}
end

function lazy.query(req)
  local first, all = url.parse_query(req.query_string)
  req.__query_all = all
  return first
end

function lazy.form(req)
  local fields, files, all = form.parse(req:header("content-type"), req.body)
  if fields == nil then
    response.abort(400, files)   -- files holds the reason here
  end
  req.__files = files
  req.__form_all = all
  return fields
end

function lazy.files(req)
  local _ = req.form
  return req.__files
end

function lazy.cookies(req)
  return cookie.parse(req:header("cookie"))
end

--- Headers tables answer any spelling of a name.
local headers_mt = {
  __index = function(t, k)
    if type(k) == "string" then
      return rawget(t, lower(k))
    end
  end,
}

core.set_request_class(methods, lazy, headers_mt)

return { methods = methods, lazy = lazy }
