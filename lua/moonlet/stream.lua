--- Responses written piece by piece: `req:stream()` and `req:sse()`.
-- The head goes out at once; each write is a chunk (HTTP/1.1) or raw
-- bytes until the connection closes (HTTP/1.0).  A write waits while the
-- client lags too far behind, and returns nil, "closed" once it has gone.
-- The stream ends when the handler returns.
-- @module moonlet.stream

local core = require "moonlet.core"
local json = require "moonlet.json"

local type, error, tostring, setmetatable, pairs = type, error, tostring,
  setmetatable, pairs
local concat = table.concat
local find, gsub, gmatch = string.find, string.gsub, string.gmatch
local math_type = math.type
local stream_start, stream_write = core.stream_start, core.stream_write

local M = {}

local Stream = { __name = "moonlet.Stream" }
Stream.__index = Stream

--- `out:write(data)` (yields under back-pressure) -> true, or nil, "closed".
function Stream:write(data)
  if type(data) ~= "string" then
    if type(data) ~= "number" then
      error("out:write expects a string", 2)
    end
    data = tostring(data)
  end
  return stream_write(self.req, data)
end

--- `req:stream([status,] headers)`: starts the response; status 200.
function M.stream(req, status, headers)
  if type(status) == "table" and headers == nil then
    status, headers = 200, status
  end
  status = status or 200
  if math_type(status) ~= "integer" then
    error("req:stream: status must be an integer", 2)
  end
  if headers ~= nil and type(headers) ~= "table" then
    error("req:stream: headers must be a table", 2)
  end
  local ok, err = stream_start(req, status, headers)
  if not ok then
    return nil, err
  end
  return setmetatable({ req = req }, Stream)
end

local SSE = { __name = "moonlet.SSE" }
SSE.__index = SSE

local function single_line(name, v)
  v = tostring(v)
  if find(v, "[\r\n%z]") then
    error("an event's " .. name .. " must be one line", 3)
  end
  return v
end

--- `ev:send{data=, event=, id=, retry=}` (or `ev:send("data")`).
-- Multi-line data becomes several `data:` lines; a table is sent as JSON.
function SSE:send(ev)
  if type(ev) ~= "table" then
    ev = { data = ev }
  end
  local parts = {}
  if ev.event ~= nil then
    parts[#parts + 1] = "event: " .. single_line("event", ev.event) .. "\n"
  end
  if ev.id ~= nil then
    parts[#parts + 1] = "id: " .. single_line("id", ev.id) .. "\n"
  end
  if ev.retry ~= nil then
    if math_type(ev.retry) ~= "integer" or ev.retry < 0 then
      error("an event's retry must be milliseconds, an integer", 2)
    end
    parts[#parts + 1] = "retry: " .. ev.retry .. "\n"
  end
  local data = ev.data
  if data ~= nil then
    if type(data) == "table" then
      data = json.encode(data)
    end
    data = gsub(gsub(tostring(data), "\r\n", "\n"), "\r", "\n")
    for line in gmatch(data .. "\n", "(.-)\n") do
      parts[#parts + 1] = "data: " .. line .. "\n"
    end
  end
  if #parts == 0 then
    error("an event needs data, event, id or retry", 2)
  end
  parts[#parts + 1] = "\n"
  return stream_write(self.req, concat(parts))
end

--- `ev:comment(text)`: a comment line, which clients ignore.
function SSE:comment(text)
  return stream_write(self.req, ": " .. single_line("comment", text or "")
    .. "\n\n")
end

--- `req:sse([opts])`: an event stream; opts.keepalive (15 s) is how long
-- it may stay silent before a comment is sent, opts.headers adds headers.
function M.sse(req, opts)
  opts = opts or {}
  local headers = { ["Content-Type"] = "text/event-stream",
    ["Cache-Control"] = "no-cache", ["X-Accel-Buffering"] = "no" }
  for k, v in pairs(opts.headers or {}) do
    headers[k] = v
  end
  local ok, err = stream_start(req, 200, headers, nil, opts.keepalive or 15)
  if not ok then
    return nil, err
  end
  return setmetatable({ req = req }, SSE)
end

return M
