--- moonlet.session: signed-cookie sessions, CSRF tokens and flash
-- messages, as Flask has them.  `req.session` is a table kept in a
-- cookie: its JSON, the time it was written, and an HMAC-SHA256 of both
-- (libcrypto, lib_crypto.c) with the app's secret.  The client can read
-- it but not change it; a cookie whose MAC does not check, or older than
-- the session's max age, is an empty session.
-- @module moonlet.session

-- One instance per Lua state: busted empties package.loaded between spec
-- files, and the request class keeps the methods of the first load, so a
-- second load of this file must give the same module (its proxies' keys,
-- its configuration).
local registry = debug.getregistry()
if registry["moonlet.session"] then
  return registry["moonlet.session"]
end

local core = require "moonlet.core"
local json = require "moonlet.json"
local cookie = require "moonlet.cookie"

local type, error, tostring, setmetatable, next, pairs, ipairs, os_time,
  getenv = type, error, tostring, setmetatable, next, pairs, ipairs,
  os.time, os.getenv
local format, match, gmatch = string.format, string.match, string.gmatch
local hmac, random_bytes, equal = core.hmac_sha256, core.random_bytes,
  core.equal
local b64e, b64d = core.b64url_encode, core.b64url_decode

local M = {}

local MIN_SECRET = 16          -- bytes: shorter is too easy to guess
local MAX_COOKIE = 4000        -- browsers keep cookies up to about 4 KiB
local DEFAULT_MAX_AGE = 31 * 24 * 3600

-- The state's session configuration: the served app's settings (one app
-- per state), and its secrets once read.
local state = { settings = {}, changed = setmetatable({}, { __mode = "k" }) }

--- Called by app.serve with the served app's settings.
function M.configure(s)
  state.settings, state.secrets = s or {}, nil
end

local function load_secrets()
  local settings = state.settings
  local list = settings.secret_keys or settings.secret_key
  if type(list) == "string" then
    list = { list }
  end
  if list == nil then
    local env = getenv("MOONLET_SECRET_KEY")
    if env and env ~= "" then
      list = {}
      for k in gmatch(env, "[^,%s]+") do
        list[#list + 1] = k
      end
    end
  end
  if type(list) ~= "table" or list[1] == nil then
    error("sessions need a secret: moonlet.app{secret_key = ...} (or "
      .. "secret_keys = {new, old, ...}), or MOONLET_SECRET_KEY in the "
      .. "environment", 0)
  end
  for i, k in ipairs(list) do
    if type(k) ~= "string" or #k < MIN_SECRET then
      error(format("session secret #%d must be a string of at least %d "
        .. "bytes", i, MIN_SECRET), 0)
    end
  end
  state.secrets = list
  return list
end

local function cookie_name()
  return state.settings.session_cookie or "session"
end

local function max_age()
  return state.settings.session_max_age or DEFAULT_MAX_AGE
end

local function mac(secret, payload)
  return b64e(hmac(secret, "moonlet.session\0" .. payload))
end

--- `session.sign(data)` -> the cookie value for the table data.
function M.sign(data, now)
  local keys = state.secrets or load_secrets()
  local payload = b64e(json.encode(data)) .. "." .. (now or os_time())
  return payload .. "." .. mac(keys[1], payload)
end

--- `session.unsign(value)` -> the table, or nil and why ("bad signature",
-- "expired", "malformed").  Any of the secrets may have signed it.
function M.unsign(value, now)
  local keys = state.secrets or load_secrets()
  if type(value) ~= "string" then
    return nil, "malformed"
  end
  local body, stamp, sig = match(value, "^([%w_-]*)%.(%d+)%.([%w_-]+)$")
  if not body then
    return nil, "malformed"
  end
  local payload, good = body .. "." .. stamp, false
  for _, k in ipairs(keys) do
    good = equal(mac(k, payload), sig) or good   -- every key, every time
  end
  if not good then
    return nil, "bad signature"
  end
  if (now or os_time()) - tonumber(stamp) > max_age() then
    return nil, "expired"
  end
  local text = b64d(body)
  local data = text and json.decode(text)
  if type(data) ~= "table" then
    return nil, "malformed"
  end
  return data
end

--- The session table
-- @section table

-- A session is a proxy: reads and writes go to its data, and a write
-- marks it modified, so that only a changed session is sent back.
local DATA, MODIFIED = {}, {}

local Session = { __name = "moonlet.Session" }
Session.__index = function(s, k)
  return s[DATA][k]
end
Session.__newindex = function(s, k, v)
  if type(k) ~= "string" then
    error("session keys must be strings", 2)
  end
  s[DATA][k] = v
  s[MODIFIED] = true
end
Session.__pairs = function(s)
  return next, s[DATA], nil
end
Session.__len = function(s)
  return #s[DATA]
end

local function new_session(data)
  return setmetatable({ [DATA] = data or {}, [MODIFIED] = false }, Session)
end

-- Requests whose session changed, until their response is sent.
local changed = state.changed
M.changed = changed

--- `req.session` (a lazy field of the request): read from the cookie.
function M.load(req)
  local value = req.cookies[cookie_name()]
  local data
  if value then
    data = M.unsign(value)         -- a bad or old cookie: a new session
  else
    local _ = state.secrets or load_secrets()   -- no secret: say so now
  end
  local s = new_session(data)
  changed[req] = s                 -- checked when the response is made
  return s
end

--- Marks the session modified: for a change inside a nested table,
-- which the session cannot see (`req.session.cart[1] = x`).
function M.touch(req)
  req.session[MODIFIED] = true
end

--- `req:clear_session()`: empties the session (at login and logout, so
-- that a session made before cannot be taken over).
function M.clear(req)
  local s = req.session
  s[DATA] = {}
  s[MODIFIED] = true
end

--- The Set-Cookie value for req's session if it changed, else nil.
-- Raises when it does not fit in a cookie.
function M.header(req)
  local s = changed[req]
  changed[req] = nil
  if s == nil or not s[MODIFIED] then
    return nil
  end
  local opts = { path = "/", httponly = true,
    samesite = state.settings.session_samesite or "Lax",
    secure = state.settings.session_secure == true }
  if next(s[DATA]) == nil then
    opts.max_age = 0               -- empty: the browser forgets it
    return cookie.build(cookie_name(), "", opts)
  end
  opts.max_age = max_age()
  local value = M.sign(s[DATA])
  if #value > MAX_COOKIE then
    error(format("the session is %d bytes signed, more than a cookie "
      .. "holds (%d): keep large data elsewhere and its key in the session",
      #value, MAX_COOKIE), 0)
  end
  return cookie.build(cookie_name(), value, opts)
end

--- CSRF and flash messages
-- @section extras

--- `req:csrf_token()`: the token forms send back (a field `csrf_token`,
-- or the header X-CSRF-Token); made once per session.
function M.csrf_token(req)
  local s = req.session
  local t = s._csrf
  if type(t) ~= "string" then
    t = b64e(random_bytes(32))
    s._csrf = t
  end
  return t
end

local SAFE = { GET = true, HEAD = true, OPTIONS = true, TRACE = true }

--- `moonlet.csrf_protect`: a before hook; a POST, PUT, PATCH or DELETE
-- without the session's token (form field csrf_token, or the header
-- X-CSRF-Token) gets 403.
function M.protect(req)
  if SAFE[req.method] then
    return nil
  end
  local want = req.session._csrf
  local got = req:header("x-csrf-token")
  if got == nil then
    local ctype = req:header("content-type") or ""
    if match(ctype, "^application/x%-www%-form%-urlencoded")
        or match(ctype, "^multipart/form%-data") then
      got = req.form.csrf_token
    end
  end
  if type(want) ~= "string" or type(got) ~= "string"
      or not equal(want, got) then
    require("moonlet.response").abort(403, "CSRF token missing or wrong")
  end
end

--- `req:flash(message [, category])`: a message for the next page.
function M.flash(req, message, category)
  local s = req.session
  local list = s._flashes or {}
  list[#list + 1] = { category or "message", tostring(message) }
  s._flashes = list
end

--- `req:flashes()`: the messages flashed so far, each
-- `{category, message}`, removed from the session.
function M.flashes(req)
  local s = req.session
  local list = s._flashes
  if list == nil then
    return {}
  end
  s._flashes = nil
  return list
end

registry["moonlet.session"] = M
return M
