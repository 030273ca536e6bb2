--- Percent-encoding, query strings and URL building from route patterns.
--
-- Everything here works on bytes: no charset is assumed, so decoding may
-- produce any bytes (usually UTF-8) and encoding escapes every byte that is
-- not unreserved (RFC 3986 section 2.3).
-- @module moonlet.url

local byte, char, find, format, gsub, match, sub =
  string.byte, string.char, string.find, string.format, string.gsub,
  string.match, string.sub
local concat, sort = table.concat, table.sort
local math_type, tointeger = math.type, math.tointeger
local error, pairs, tonumber, tostring, type =
  error, pairs, tonumber, tostring, type

local M = {}

-- Lookup tables, built once, so that gsub can replace from a table instead
-- of calling a Lua function for every escape.
local HEX_TO_CHAR = {}   -- "2f", "2F" -> "/"
local CHAR_TO_HEX = {}   -- "/" -> "%2F"
do
  local digits = "0123456789abcdefABCDEF"
  for i = 1, #digits do
    for j = 1, #digits do
      local pair = sub(digits, i, i) .. sub(digits, j, j)
      HEX_TO_CHAR[pair] = char(tonumber(pair, 16))
    end
  end
  for c = 0, 255 do
    CHAR_TO_HEX[char(c)] = format("%%%02X", c)
  end
end

-- Explicit ranges rather than %w: %w follows the C locale, and a host
-- program calling setlocale() could make it accept bytes >= 0x80.
local NOT_UNRESERVED = "[^A-Za-z0-9%-._~]"
local NOT_UNRESERVED_OR_SLASH = "[^A-Za-z0-9%-._~/]"

local function check_string(s, fname)
  if type(s) ~= "string" then
    -- level 3: blame the caller of the public function
    error(format("bad argument #1 to '%s' (string expected, got %s)",
                 fname, type(s)), 3)
  end
end

--- Percent-decodes `s`, strictly: '+' is left alone.
-- @tparam string s
-- @treturn[1] string the decoded bytes
-- @treturn[2] nil when a '%' is not followed by two hex digits
-- @treturn[2] string "invalid percent-encoding"
function M.decode(s)
  check_string(s, "decode")
  local pct = find(s, "%", 1, true)
  if not pct then return s end   -- the common case: nothing to do
  -- Every '%' must start an escape.  Checking before decoding matters:
  -- after decoding, a '%' in the output may come from a valid "%25".
  repeat
    if not find(s, "^%x%x", pct + 1) then
      return nil, "invalid percent-encoding"
    end
    pct = find(s, "%", pct + 3, true)
  until not pct
  return (gsub(s, "%%(%x%x)", HEX_TO_CHAR))
end

--- Decodes a query-string or urlencoded-form component: '+' means a space,
-- and invalid escapes are kept as they are (lenient, like browsers and
-- Werkzeug), so this never fails.
-- @tparam string s
-- @treturn string
function M.decode_form(s)
  check_string(s, "decode_form")
  if find(s, "+", 1, true) then s = gsub(s, "%+", " ") end
  if not find(s, "%", 1, true) then return s end
  return (gsub(s, "%%(%x%x)", HEX_TO_CHAR))
end

--- Percent-encodes every byte but the unreserved `A-Za-z0-9-._~`, with
-- uppercase hex digits.  Numbers are accepted and converted with tostring.
-- @tparam string|number s
-- @treturn string
function M.encode(s)
  if type(s) == "number" then s = tostring(s) end
  check_string(s, "encode")
  if not find(s, NOT_UNRESERVED) then return s end
  return (gsub(s, NOT_UNRESERVED, CHAR_TO_HEX))
end

--- Like `encode`, but keeps '/' so that a path keeps its segments.
-- @tparam string|number s
-- @treturn string
function M.encode_path(s)
  if type(s) == "number" then s = tostring(s) end
  check_string(s, "encode_path")
  if not find(s, NOT_UNRESERVED_OR_SLASH) then return s end
  return (gsub(s, NOT_UNRESERVED_OR_SLASH, CHAR_TO_HEX))
end

--- Parses a query string (or an urlencoded form body).
--
-- `a=1&a=2&b&c=` gives `first = {a="1", b="", c=""}` and
-- `all = {a={"1","2"}, b={""}, c={""}}`.  Empty pairs (`&&`) are skipped;
-- names and values are decoded with `decode_form`.  Only '&' separates
-- pairs (';' does not, as in current Werkzeug).
-- @tparam ?string qs without the leading '?'
-- @treturn table first value of each name
-- @treturn table list of all values of each name, in order
function M.parse_query(qs)
  local first, all = {}, {}
  if qs == nil then return first, all end
  check_string(qs, "parse_query")
  local decode_form = M.decode_form
  local pos, n = 1, #qs
  while pos <= n do
    -- Anchored at pos, so each byte is looked at a bounded number of
    -- times: the whole loop is linear in #qs.
    local _, e, key, val = find(qs, "^([^&=]*)=?([^&]*)", pos)
    if e >= pos then   -- an empty match is an empty pair: skip it
      key, val = decode_form(key), decode_form(val)
      local list = all[key]
      if list then
        list[#list + 1] = val
      else
        first[key] = val
        all[key] = { val }
      end
    end
    pos = e + 2   -- past the '&'
  end
  return first, all
end

local function query_value(v, key)
  local t = type(v)
  if t == "string" then return M.encode(v) end
  if t == "number" or t == "boolean" then return M.encode(tostring(v)) end
  -- level 3: query_value <- build_query <- the user's code
  error(format("bad value for query parameter '%s': %s", key, t), 3)
end

--- Builds a query string (without the '?') from a table.
--
-- Values are strings, numbers or booleans, or lists of them (a list gives
-- the name once per value; an empty list gives nothing).  Names are sorted
-- so that the output does not depend on table order.
-- @tparam table t
-- @treturn string "" for an empty table
function M.build_query(t)
  if type(t) ~= "table" then
    error("bad argument #1 to 'build_query' (table expected, got "
          .. type(t) .. ")", 2)
  end
  local keys = {}
  for k in pairs(t) do
    if type(k) ~= "string" then
      error("bad query parameter name: string expected, got " .. type(k), 2)
    end
    keys[#keys + 1] = k
  end
  sort(keys)
  local buf = {}
  for i = 1, #keys do
    local k = keys[i]
    local v, ek = t[k], M.encode(k)
    if type(v) == "table" then
      for j = 1, #v do
        buf[#buf + 1] = ek .. "=" .. query_value(v[j], k)
      end
    else
      buf[#buf + 1] = ek .. "=" .. query_value(v, k)
    end
  end
  return concat(buf, "&")
end

local CONVERTERS = { string = true, int = true, float = true, path = true }

local function bad_pattern(pattern, reason)
  -- level 3: bad_pattern <- compile_pattern <- the user's code
  error(format("bad route pattern '%s': %s", pattern, reason), 3)
end

--- Splits a Werkzeug-style route pattern into parts for `build_path`.
--
-- `"/user/<int:id>/posts"` gives `{"/user/", {name="id", conv="int"},
-- "/posts"}`.  Converters are `string` (the default), `int`, `float` and
-- `path`; converter arguments such as `<string(length=2):x>` are not
-- supported.  Raises on a pattern that does not start with '/', an
-- unclosed '<' or stray '>', an unknown converter, a parameter name that
-- is not an identifier, or a repeated name.
-- @tparam string pattern
-- @treturn table list of parts: strings and `{name=, conv=}` tables
function M.compile_pattern(pattern)
  if type(pattern) ~= "string" then
    error("bad route pattern: string expected, got " .. type(pattern), 2)
  end
  if byte(pattern, 1) ~= 47 then   -- '/'
    bad_pattern(pattern, "must start with '/'")
  end
  local parts, seen = {}, {}
  local pos = 1
  while true do
    local lt = find(pattern, "<", pos, true)
    local static = sub(pattern, pos, (lt or 0) - 1)
    if find(static, ">", 1, true) then
      bad_pattern(pattern, "'>' without '<'")
    end
    if static ~= "" then parts[#parts + 1] = static end
    if not lt then break end

    local gt = find(pattern, ">", lt + 1, true)
    if not gt then bad_pattern(pattern, "unclosed '<'") end
    local spec = sub(pattern, lt + 1, gt - 1)
    if find(spec, "<", 1, true) then bad_pattern(pattern, "unclosed '<'") end
    local conv, name = match(spec, "^([^:]*):(.*)$")
    if not conv then conv, name = "string", spec end
    if find(conv, "(", 1, true) then
      bad_pattern(pattern, "converter arguments are not supported")
    end
    if not CONVERTERS[conv] then
      bad_pattern(pattern, "unknown converter '" .. conv .. "'")
    end
    if not find(name, "^[A-Za-z_][A-Za-z0-9_]*$") then
      bad_pattern(pattern, "invalid parameter name '" .. name .. "'")
    end
    if seen[name] then
      bad_pattern(pattern, "duplicate parameter '" .. name .. "'")
    end
    seen[name] = true
    parts[#parts + 1] = { name = name, conv = conv }
    pos = gt + 1
  end
  return parts
end

-- Shortest text that reads back as the same float, always with a '.' or an
-- exponent ("3.0", not "3") like Werkzeug's str(float).  %.14g (what
-- tostring uses) can round, so fall back to %.17g when it does.
local function format_float(v)
  local s = format("%.14g", v)
  if tonumber(s) ~= v then s = format("%.17g", v) end
  if not find(s, "[.eE]") then s = s .. ".0" end
  return s
end

-- Returns the URL text for value `v` under converter `conv`, or nil and
-- what is wrong with it.
local function to_url(conv, v)
  local t = type(v)
  if conv == "int" then
    local i = t == "number" and tointeger(v)
    if not i then
      return nil, "must be an integer, got " .. (t == "number" and tostring(v) or t)
    end
    return format("%d", i)
  elseif conv == "float" then
    if t ~= "number" then return nil, "must be a number, got " .. t end
    if v ~= v or v == 1 / 0 or v == -1 / 0 then
      return nil, "must be a finite number, got " .. tostring(v)
    end
    return format_float(math_type(v) == "float" and v or v + 0.0)
  elseif t == "string" or t == "number" then
    if conv == "path" then return M.encode_path(v) end
    return M.encode(v)   -- a '/' in a string parameter becomes %2F
  end
  return nil, "must be a string or a number, got " .. t
end

-- " for '<pattern>'" in error messages, when the caller gave the pattern.
local function where(pattern)
  return pattern and format(" for '%s'", pattern) or ""
end

--- Builds a path from parts made by `compile_pattern`.
--
-- Static parts are copied as they are.  Each parameter must be in `params`:
-- `int` takes an integer (or a float with an integral value), `float` a
-- finite number, `string` and `path` a string or number, percent-encoded
-- with `encode` (so '/' becomes %2F) and `encode_path` respectively.
-- Entries of `params` that the pattern does not name are ignored.
-- @tparam table parts
-- @tparam ?table params
-- @tparam ?string pattern the original pattern, only used in error messages
-- @treturn string
function M.build_path(parts, params, pattern)
  if params == nil then params = {} end
  local buf = {}
  for i = 1, #parts do
    local part = parts[i]
    if type(part) == "string" then
      buf[i] = part
    else
      local name = part.name
      local v = params[name]
      if v == nil then
        error(format("missing parameter '%s'%s", name, where(pattern)), 2)
      end
      local s, why = to_url(part.conv, v)
      if not s then
        error(format("parameter '%s'%s %s", name, where(pattern), why), 2)
      end
      buf[i] = s
    end
  end
  return concat(buf)
end

return M
