---@meta moonlet.json
-- LuaLS definitions for moonlet.json (`moonlet.json`, or
-- `require "moonlet.json"`). Never executed.

---JSON, as responses, `req:json()`, `res:json()` and moonlet.http use it.
---@class moonlet.json
---@field null lightuserdata JSON null: `moonlet.null`, lua-cjson's `cjson.null`
---@field empty_array table an empty array, read-only: encodes as `[]`
local json = {}

---The JSON text for `value`. Integers are exact, floats read back the
---same, `/` is not escaped. Raises for what JSON cannot hold (a
---function, NaN, a string that is not UTF-8, a list with more holes than
---items), naming where: `cannot encode a function at .a[2]`. A table is
---an array when its keys are 1..n, an object otherwise; `{}` is an
---object unless made by `json.array()` (or its metatable has
---`__jsontype = "array"`).
---@param value any
---@return string text
function json.encode(value) end

---The value of a JSON text, or nil and the reason (`"invalid JSON:
---..."`). Whole numbers are integers (up to 2^53), null is `json.null`;
---text that is not UTF-8, NaN and Infinity are refused.
---@param text string
---@return any value
---@return string? err
function json.decode(text) end

---`t` (or a new table) marked as an array: `json.array()` encodes as `[]`.
---@generic T: table
---@param t? T
---@return T
function json.array(t) end

---What a log shows for an error value: a table as its JSON, anything
---else as tostring.
---@param v any
---@return string
function json.describe(v) end

return json
