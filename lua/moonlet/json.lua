--- moonlet.json: the one JSON module of moonlet.
-- Responses, `req:json()`, `res:json()`, moonlet.http bodies, SSE data
-- and moonlet.testing all go through it.  Encoding is C (lib_json.c):
-- integers stay exact, floats read back the same, `/` is not escaped,
-- strings must be UTF-8 and a failure names the path of the bad value.
-- Decoding is lua-cjson's, checked for UTF-8 and without NaN or
-- Infinity, and gives integers for whole numbers.
-- @module moonlet.json

local core = require "moonlet.core"
local cjson = require("cjson").new()   -- our own settings, not the app's

local type, pcall, error, setmetatable, getmetatable, tostring =
  type, pcall, error, setmetatable, getmetatable, tostring
local match = string.match

cjson.decode_invalid_numbers(false)    -- no NaN, Infinity or hex
cjson.decode_max_depth(1000)

local M = {}

--- JSON null: the light userdata NULL, lua-cjson's `cjson.null`, and
-- what moonlet.redis and moonlet.pg give for a nil reply or NULL.
M.null = cjson.null

local array_mt = { __jsontype = "array", __name = "moonlet.json.array" }

--- `json.array([t])`: t (or a new table) marked as a JSON array, so that
-- an empty one is sent as `[]`, not `{}`.
function M.array(t)
  if t == nil then
    t = {}
  elseif type(t) ~= "table" then
    error("json.array expects a table", 2)
  elseif getmetatable(t) ~= nil and getmetatable(t) ~= array_mt then
    error("json.array: the table already has a metatable (give it "
      .. "__jsontype = \"array\")", 2)
  end
  return setmetatable(t, array_mt)
end

--- `json.empty_array`: an empty array, read-only.
M.empty_array = setmetatable({}, { __jsontype = "array",
  __name = "moonlet.json.empty_array",
  __newindex = function()
    error("json.empty_array is read-only: use json.array{} for a list "
      .. "to fill", 2)
  end })

--- `json.encode(value)` -> the JSON text.  Raises for what JSON cannot
-- hold (a function, NaN, a string that is not UTF-8, a list with more
-- holes than items), naming where: `cannot encode a function at .a[2]`.
M.encode = core.json_encode

local json_integers, json_utf8 = core.json_integers, core.json_utf8
local decode = cjson.decode

--- `json.decode(text)` -> the value, or nil and the reason.  JSON null
-- is `json.null`; whole numbers are integers (up to 2^53; beyond, floats
-- as in JavaScript).  Text that is not UTF-8 is refused.
function M.decode(text)
  if type(text) ~= "string" then
    error("json.decode expects a string, got " .. type(text), 2)
  end
  if not json_utf8(text) then
    return nil, "invalid JSON: not UTF-8"
  end
  local ok, v = pcall(decode, text)
  if not ok then
    return nil, "invalid JSON: " .. (match(tostring(v), "^.-:%d+: (.*)$")
      or tostring(v))
  end
  return json_integers(v)
end

--- `json.describe(v)`: what a log shows for an error value: a table as
-- its JSON (its contents), anything else as tostring.
M.describe = core.describe

return M
