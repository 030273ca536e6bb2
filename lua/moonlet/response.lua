--- Response values and errors a handler can return or raise.
-- @module moonlet.response

local setmetatable, getmetatable, error, type, tostring = setmetatable,
  getmetatable, error, type, tostring
local math_type = math.type

local M = {}

local Response = { __name = "moonlet.Response" }
local Abort = { __name = "moonlet.Abort" }
Abort.__tostring = function(e)
  local m = e.message
  if type(m) == "table" then
    m = require("moonlet.json").describe(m)
  end
  return ("abort %d%s"):format(e.status, m and (": " .. m) or "")
end

local function check_status(status, level)
  if math_type(status) ~= "integer" or status < 200 or status > 999 then
    error("status must be an integer from 200 to 999, got "
      .. (type(status) == "string" and ("the string %q"):format(status)
      or tostring(status)), level + 1)
  end
end

--- `moonlet.response{status=, headers=, body=}`: a response as given.
function M.response(t)
  if type(t) ~= "table" then
    error("moonlet.response expects a table {status=, headers=, body=}", 2)
  end
  local status = t.status or 200
  check_status(status, 2)
  if t.headers ~= nil and type(t.headers) ~= "table" then
    error("headers must be a table", 2)
  end
  -- Checked here, where the caller's line is known: the server could
  -- only fail later, far from the mistake.
  if t.body ~= nil and type(t.body) ~= "string" then
    error("body must be a string, got " .. type(t.body), 2)
  end
  return setmetatable({ status = status, headers = t.headers,
    body = t.body == nil and "" or t.body }, Response)
end

--- `moonlet.redirect(url [, status=302])`.
function M.redirect(url, status)
  if type(url) ~= "string" then
    error("moonlet.redirect expects a URL string", 2)
  end
  status = status or 302
  check_status(status, 2)
  return setmetatable({ status = status, headers = { Location = url },
    body = "" }, Response)
end

--- `moonlet.abort(status [, message [, headers]])`: ends the handler with
-- that status.  A table message is sent as JSON (`abort(422, {field =
-- "x"})`); headers (a table) go with the error page.
function M.abort(status, message, headers)
  check_status(status, 2)
  if message ~= nil and type(message) ~= "table" then
    message = tostring(message)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("moonlet.abort: headers must be a table", 2)
  end
  error(setmetatable({ status = status, message = message,
    headers = headers }, Abort), 2)
end

function M.is_response(v)
  return getmetatable(v) == Response
end

function M.is_abort(v)
  return getmetatable(v) == Abort
end

-- The watchdog raises abort(503) itself when a handler computes past
-- --cpu-budget: it needs the class.
require("moonlet.core").set_abort_class(Abort)

return M
