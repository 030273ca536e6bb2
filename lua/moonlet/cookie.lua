--- Cookie header parsing and Set-Cookie header building (RFC 6265).
--
-- Values are bytes as they travel: `parse` does not percent-decode them
-- and `build` does not encode them, like Flask/Werkzeug for ordinary
-- values.  To store arbitrary text in a cookie, encode it first (for
-- instance with `moonlet.url.encode`) and decode it after parsing.
-- @module moonlet.cookie

local byte, find, format, lower, match, sub =
  string.byte, string.find, string.format, string.lower, string.match,
  string.sub
local concat = table.concat
local os_date, os_time = os.date, os.time
local floor, tointeger = math.floor, math.tointeger
local error, pairs, tostring, type = error, pairs, tostring, type

local M = {}

-- Trims spaces and tabs; linear even on long runs of blanks.
local function trim(s)
  local from = match(s, "^[ \t]*()")
  if from > #s then return "" end
  return match(s, "^.*[^ \t]", from)
end

--- Parses a Cookie request header into a table name -> value.
--
-- `a=1; b="2"` gives `{a="1", b="2"}`: blanks around names and values
-- are trimmed, one pair of double quotes around a value is removed, the
-- first occurrence of a name wins (browsers send the most specific cookie
-- first), and pairs without '=' or with an empty name are skipped.
-- Values are not percent-decoded.
-- @tparam ?string header
-- @treturn table
function M.parse(header)
  local cookies = {}
  if header == nil then return cookies end
  if type(header) ~= "string" then
    error("bad argument #1 to 'parse' (string expected, got "
          .. type(header) .. ")", 2)
  end
  local pos, n = 1, #header
  while pos <= n do
    local semi = find(header, ";", pos, true) or n + 1
    local pair = sub(header, pos, semi - 1)
    local eq = find(pair, "=", 1, true)
    if eq then
      local name = trim(sub(pair, 1, eq - 1))
      if name ~= "" and cookies[name] == nil then
        local value = trim(sub(pair, eq + 1))
        if #value >= 2 and byte(value, 1) == 34 and byte(value, -1) == 34 then
          value = sub(value, 2, -2)
        end
        cookies[name] = value
      end
    end
    pos = semi + 1
  end
  return cookies
end

-- RFC 6265 section 4.1.1: a name is an RFC 2616 token; a value is made of
-- cookie-octets, which exclude controls, whitespace, DQUOTE, ',', ';',
-- '\' and every byte >= 0x80.  Explicit ranges, not %w or %c, so that the
-- C locale does not matter.
local NOT_TOKEN = "[^A-Za-z0-9!#$%%&'*+%-.%^_`|~]"
local NOT_COOKIE_OCTET = "[\0-\32\"%,;\\\127-\255]"
local BAD_ATTRIBUTE = "[\0-\31;\127]"   -- would end or corrupt the header

local SAMESITE = { strict = "Strict", lax = "Lax", none = "None" }

local OPTIONS = {
  path = true, domain = true, max_age = true, expires = true,
  secure = true, httponly = true, samesite = true,
}

local DAYS = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" }
local MONTHS = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                 "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" }

-- Formats epoch seconds as an IMF-fixdate ("Thu, 01 Jan 1970 00:00:00
-- GMT").  Same result as os.date("!%a, %d %b %Y %H:%M:%S GMT", t) in the C
-- locale, but English whatever locale the host program has set.
local function http_date(t)
  local d = os_date("!*t", floor(t))
  return format("%s, %02d %s %04d %02d:%02d:%02d GMT", DAYS[d.wday], d.day,
                MONTHS[d.month], d.year, d.hour, d.min, d.sec)
end

-- Checks a Path or Domain value; returns an error message or nil.
local function check_attribute(key, v)
  if type(v) ~= "string" then
    return format("cookie option '%s' must be a string, got %s", key, type(v))
  end
  if find(v, BAD_ATTRIBUTE) then
    return format("cookie option '%s' must not contain ';' or control "
                  .. "characters: %q", key, v)
  end
end

--- Builds the value of a Set-Cookie header.
--
-- `build("sid", "abc", {path="/", httponly=true, max_age=3600})` gives
-- `sid=abc; Path=/; Max-Age=3600; Expires=<now + 1 hour>; HttpOnly`.
--
-- Options (all optional; an unknown key raises, so that a typo such as
-- `httpOnly` cannot silently drop a security flag):
--
-- * `path`, `domain`: strings without ';' or control characters.
-- * `max_age`: integer seconds; also sets Expires to now + max_age, or to
--   the epoch when max_age <= 0 (which deletes the cookie).
-- * `expires`: epoch seconds (a number) or a ready-made date string; it
--   takes the place of the Expires derived from `max_age`.
-- * `secure`, `httponly`: booleans.
-- * `samesite`: "Strict", "Lax" or "None", in any case.
--
-- Raises when the name is not a token or the value has bytes a cookie
-- cannot hold: encode such values first.
-- @tparam string name
-- @tparam string|number value
-- @tparam ?table opts
-- @treturn string
function M.build(name, value, opts)
  if type(name) ~= "string" or name == "" or find(name, NOT_TOKEN) then
    error(format("invalid cookie name %s: it must be a non-empty token "
                 .. "(letters, digits and !#$%%&'*+-.^_`|~)",
                 type(name) == "string" and format("%q", name) or type(name)),
          2)
  end
  if type(value) == "number" then value = tostring(value) end
  if type(value) ~= "string" then
    error(format("invalid value for cookie '%s': string expected, got %s",
                 name, type(value)), 2)
  end
  if find(value, NOT_COOKIE_OCTET) then
    error(format("invalid value for cookie '%s': it contains whitespace, "
                 .. "'\"', ',', ';', '\\', control or non-ASCII bytes; "
                 .. "encode it first (e.g. with moonlet.url.encode)", name), 2)
  end

  local buf = { name, "=", value }
  if opts == nil then return concat(buf) end
  if type(opts) ~= "table" then
    error("bad argument #3 to 'build' (table expected, got "
          .. type(opts) .. ")", 2)
  end
  for k in pairs(opts) do
    if not OPTIONS[k] then
      error(format("unknown cookie option '%s'", tostring(k)), 2)
    end
  end

  local path, domain = opts.path, opts.domain
  if path ~= nil then
    local msg = check_attribute("path", path)
    if msg then error(msg, 2) end
    buf[#buf + 1] = "; Path=" .. path
  end
  if domain ~= nil then
    local msg = check_attribute("domain", domain)
    if msg then error(msg, 2) end
    buf[#buf + 1] = "; Domain=" .. domain
  end

  local max_age, expires = opts.max_age, opts.expires
  local expires_text
  if max_age ~= nil then
    local n = type(max_age) == "number" and tointeger(max_age)
    if not n then
      error(format("cookie option 'max_age' must be an integer, got %s",
                   tostring(max_age)), 2)
    end
    buf[#buf + 1] = format("; Max-Age=%d", n)
    expires_text = http_date(n > 0 and os_time() + n or 0)
  end
  if expires ~= nil then
    if type(expires) == "number" then
      if expires ~= expires or expires == 1 / 0 or expires == -1 / 0 then
        error("cookie option 'expires' must be a finite number", 2)
      end
      expires_text = http_date(expires)
    elseif type(expires) == "string" then
      local msg = check_attribute("expires", expires)
      if msg then error(msg, 2) end
      expires_text = expires
    else
      error(format("cookie option 'expires' must be a number or a string, "
                   .. "got %s", type(expires)), 2)
    end
  end
  if expires_text then buf[#buf + 1] = "; Expires=" .. expires_text end

  if opts.secure then buf[#buf + 1] = "; Secure" end
  if opts.httponly then buf[#buf + 1] = "; HttpOnly" end

  local samesite = opts.samesite
  if samesite ~= nil and samesite ~= false then
    local norm = type(samesite) == "string" and SAMESITE[lower(samesite)]
    if not norm then
      error(format("cookie option 'samesite' must be 'Strict', 'Lax' or "
                   .. "'None', got %s", tostring(samesite)), 2)
    end
    buf[#buf + 1] = "; SameSite=" .. norm
  end
  return concat(buf)
end

return M
