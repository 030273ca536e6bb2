--- Redis from handlers: `moonlet.redis.connect(url [, opts])`, every
-- command as a method (yields only its coroutine), pipelines,
-- transactions and pub/sub.  Commands of all the coroutines of a worker
-- share one connection per server, written together each loop turn;
-- blocking commands, transactions and subscribers get connections of
-- their own from a pool.  The wire and the pools are C's (lib_redis.c
-- over hiredis's reader).
-- @module moonlet.redis

local core = require "moonlet.core"

local type, error, pcall, setmetatable, tonumber, select, rawget,
  tostring = type, error, pcall, setmetatable, tonumber, select, rawget,
  tostring
local max = math.max
local upper, lower, match, gsub, char = string.upper, string.lower,
  string.match, string.gsub, string.char
local concat, pack, unpack = table.concat, table.pack, table.unpack
local redis_pool, redis_call, redis_format, redis_take, redis_send,
  redis_receive, redis_ready, now = core.redis_pool, core.redis_call,
  core.redis_format, core.redis_take, core.redis_send, core.redis_receive,
  core.redis_ready, core.now

local M = {}

local DEFAULT_TIMEOUT = 5

-- Commands that change the connection's state: never on the shared one.
local STATEFUL = { MULTI = "r:transaction", EXEC = "r:transaction",
  DISCARD = "r:transaction", WATCH = "r:transaction",
  UNWATCH = "r:transaction", SUBSCRIBE = "moonlet.redis.subscribe",
  PSUBSCRIBE = "moonlet.redis.psubscribe", SSUBSCRIBE = "a subscriber",
  UNSUBSCRIBE = "a subscriber", PUNSUBSCRIBE = "a subscriber",
  MONITOR = "redis-cli", SELECT = "the URL's /db", AUTH = "the URL",
  QUIT = "r:close", RESET = "r:close", HELLO = "the URL" }

-- Blocking commands and where their block time is: a dedicated
-- connection each, and the call's deadline grows by that time.
local BLOCKING = { BLPOP = -1, BRPOP = -1, BLMOVE = -1, BRPOPLPUSH = -1,
  BZPOPMIN = -1, BZPOPMAX = -1, BLMPOP = 1, BZMPOP = 1, WAIT = -1,
  WAITAOF = -1 }

local function unescape(s)
  return s and (gsub(s, "%%(%x%x)", function(h)
    return char(tonumber(h, 16))
  end))
end

-- redis://[[user]:password@]host[:port][/db] -> its parts, or nil, err.
local function parse_url(url)
  local scheme, rest = match(url, "^(%a+)://(.*)$")
  scheme = scheme and lower(scheme)
  if scheme ~= "redis" and scheme ~= "rediss" then
    return nil, "bad url: redis://host[:port][/db] expected"
  end
  local auth, hostport, path = match(rest, "^([^@/]*)@([^/?#]*)([^?#]*)")
  if not auth then
    hostport, path = match(rest, "^([^/?#]*)([^?#]*)")
  end
  local user, password
  if auth then
    user, password = match(auth, "^([^:]*):(.*)$")
    if not user then password = auth end
    user = user ~= "" and unescape(user) or nil
    password = unescape(password)
  end
  local host, port = match(hostport, "^%[([%x:.]+)%]:?(%d*)$")
  if not host then host, port = match(hostport, "^([^:]+):?(%d*)$") end
  local db = match(path, "^/(%d+)/?$")
  if not host or (path ~= "" and path ~= "/" and not db) then
    return nil, "bad url: redis://host[:port][/db] expected"
  end
  port = tonumber(port) or 6379
  return { host = host, port = port, user = user, password = password,
    db = tonumber(db) or 0, tls = scheme == "rediss",
    key = ("%s %q %d %q %q %s"):format(scheme, host, port, user or "",
      password or "", db or "0") }
end

-- The worker's pool for url (made on first use), or nil, err.  'tls'
-- (§7's options: verify, ca_file, cert, key) matters for rediss:// only.
local function pool_for(url, tls)
  local u, err = parse_url(url)
  if not u then return nil, err end
  local key = u.key
  if u.tls and type(tls) == "table" then
    key = ("%s %s %q %q %q"):format(key, tostring(tls.verify ~= false),
      tls.ca_file or "", tls.cert or "", tls.key or "")
  end
  return redis_pool(key, u.host, u.port, u.user, u.password, u.db,
    u.tls and (type(tls) == "table" and tls or true) or nil)
end

-- How long a blocking command may block (seconds), nil for forever.
local function block_time(name, n, ...)
  local at = BLOCKING[name]
  local v
  if at then
    v = tonumber((select(at < 0 and n or at, ...)))
    if name == "WAIT" or name == "WAITAOF" then v = v and v / 1000 end
  elseif name == "XREAD" or name == "XREADGROUP" then
    for i = 1, n - 1 do
      local a = select(i, ...)
      if type(a) == "string" and upper(a) == "BLOCK" then
        v = tonumber((select(i + 1, ...)))
        v = v and v / 1000
        break
      end
    end
    if v == nil then return false end
  else
    return false
  end
  if v == nil or v <= 0 then return nil end
  return v
end

local R = {}       -- the methods of r; other names are commands

--- `r:call(name, ...)` (yields): the command by name; its reply, or
-- `nil, err` (the server's message for an error reply).
function R:call(name, ...)
  if type(name) ~= "string" then
    error("r:call: a command name expected", 2)
  end
  local uname = upper(name)
  local where = STATEFUL[uname]
  if where then
    error(("%s changes the connection: use %s"):format(uname, where), 2)
  end
  local n = select("#", ...)
  local block = block_time(uname, n, ...)
  if block ~= false then         -- a connection of its own, then back
    local conn, err = redis_take(self.pool, self.timeout)
    if not conn then return nil, err end
    local res, rerr = redis_send(conn, block and block + self.timeout or 0,
      redis_format(name, ...))
    conn:close()
    return res, rerr
  end
  return redis_call(self.pool, self.timeout, redis_format(name, ...))
end

--- `r:pipeline(fn)` (yields): `fn(p)` queues commands (`p:incr("a")`,
-- `p:call(name, ...)`); they go in one write and their replies come back
-- as a list in order; an error reply's slot holds `{false, message}`.
function R:pipeline(fn)
  local cmds = {}
  local p = setmetatable({}, { __index = function(_, k)
    return function(_, ...)
      if k == "call" then
        cmds[#cmds + 1] = redis_format(...)
      else
        cmds[#cmds + 1] = redis_format(k, ...)
      end
    end
  end })
  fn(p)
  if #cmds == 0 then return {} end
  local res, err = redis_call(self.pool, self.timeout, concat(cmds), #cmds)
  if res == nil then return nil, err end
  return res
end

local TX = {}

--- `r:transaction(fn)` (yields): `fn(tx)` on a connection of its own, for
-- WATCH, MULTI, EXEC and DISCARD (`tx:watch(k)`, `tx:multi()`, commands,
-- `tx:exec()` -> the list of replies, or moonlet.null when a watched key
-- changed).  A MULTI or WATCH left open is discarded when fn ends; if fn
-- raises, the error goes on up.  fn's results.
function R:transaction(fn)
  if type(fn) ~= "function" then
    error("r:transaction: a function expected", 2)
  end
  local conn, err = redis_take(self.pool, self.timeout)
  if not conn then return nil, err end
  local tx = setmetatable({ conn = conn, timeout = self.timeout }, TX)
  local res = pack(pcall(fn, tx))
  if tx.multi_open then tx:call("DISCARD") end
  if tx.watching then tx:call("UNWATCH") end
  conn:close()
  if not res[1] then error(res[2], 0) end
  return unpack(res, 2, res.n)
end

function TX:call(name, ...)
  local uname = upper(name)
  if uname == "MULTI" then
    self.multi_open = true
  elseif uname == "WATCH" then
    self.watching = true
  end
  self.conn:dirty(self.multi_open or self.watching or false)
  local res, err = redis_send(self.conn, self.timeout,
    redis_format(name, ...))
  if uname == "EXEC" or uname == "DISCARD" then
    self.multi_open, self.watching = false, false
  elseif uname == "UNWATCH" then
    self.watching = false
  end
  self.conn:dirty(self.multi_open or self.watching or false)
  return res, err
end

TX.__index = function(_, k)
  local f = rawget(TX, k)
  if f then return f end
  f = function(self, ...) return self:call(k, ...) end
  TX[k] = f
  return f
end

--- `r:close()`: the commands' connection is the worker's, shared: there
-- is nothing to give back (a connection of its own goes back by itself).
function R:close()
end

R.__index = function(_, k)
  local f = rawget(R, k)
  if f then return f end
  if type(k) ~= "string" then return nil end
  f = function(self, ...) return self:call(k, ...) end
  R[k] = f
  return f
end
R.__name = "moonlet.redis.Client"

--- `moonlet.redis.connect(url [, {timeout = 5}])` (yields): a client for
-- `redis://[[user]:password@]host[:port][/db]`, or `nil, err` when the
-- server cannot be reached ("connection refused", "timeout", "auth: ...").
function M.connect(url, opts)
  if type(url) ~= "string" then
    error("moonlet.redis.connect: a URL expected", 2)
  end
  opts = opts or {}
  local timeout = opts.timeout or DEFAULT_TIMEOUT
  if type(timeout) ~= "number" or timeout <= 0 then
    error("moonlet.redis.connect: timeout must be a positive number", 2)
  end
  local pool, err = pool_for(url, opts.tls)
  if not pool then return nil, err end
  local r = setmetatable({ pool = pool, timeout = timeout }, R)
  if not redis_ready(pool) then
    local ok, perr = redis_call(pool, timeout, redis_format("PING"))
    if not ok then return nil, perr end
  end
  return r
end

local Sub = { __name = "moonlet.redis.Subscriber" }
Sub.__index = Sub

-- Sends a (P)(UN)SUBSCRIBE and, for a subscribe, waits for each
-- confirmation.
local function sub_send(self, cmd, ...)
  local ok, err = redis_send(self.conn, 0, redis_format(cmd, ...), 0)
  if not ok then return nil, err end
  local want = lower(cmd)
  if want ~= "subscribe" and want ~= "psubscribe" then return true end
  local deadline = now() + self.timeout
  for _ = 1, select("#", ...) do
    repeat
      local msg, rerr = redis_receive(self.conn,
        max(0, deadline - now()))
      if not msg then return nil, rerr end
      if msg[1] == "message" or msg[1] == "pmessage" then
        self.early[#self.early + 1] = msg
      elseif type(msg[1]) == "table" then
        return nil, msg[1][2]      -- an error reply
      end
    until msg[1] == want
  end
  return true
end

local function subscribe(cmd, url, ...)
  local opts
  if type(url) == "table" then   -- ({url =, tls =}, channel, ...)
    opts = url
    url = opts.url
  end
  if type(url) ~= "string" then
    error("moonlet.redis." .. lower(cmd) .. ": a URL expected", 3)
  end
  if select("#", ...) == 0 then
    error("moonlet.redis." .. lower(cmd) .. ": a channel expected", 3)
  end
  local pool, err = pool_for(url, opts and opts.tls)
  if not pool then return nil, err end
  local conn, cerr = redis_take(pool, DEFAULT_TIMEOUT, true)
  if not conn then return nil, cerr end
  local sub = setmetatable({ conn = conn, timeout = DEFAULT_TIMEOUT,
    early = {} }, Sub)
  local ok, serr = sub_send(sub, cmd, ...)
  if not ok then
    conn:close()
    return nil, serr
  end
  return sub
end

--- `moonlet.redis.subscribe(url, channel, ...)` (yields): a subscriber on
-- a connection of its own, subscribed when it returns.
function M.subscribe(url, ...)
  return subscribe("SUBSCRIBE", url, ...)
end

--- `moonlet.redis.psubscribe(url, pattern, ...)` (yields): the same with
-- patterns; `receive` then gives the pattern third.
function M.psubscribe(url, ...)
  return subscribe("PSUBSCRIBE", url, ...)
end

--- `sub:receive([timeout])` (yields): `channel, message` (and the
-- pattern for a pattern subscription), or `nil, "timeout"` /
-- `nil, "closed"`.
function Sub:receive(timeout)
  local msg, err
  if #self.early > 0 then
    msg = table.remove(self.early, 1)
  end
  local deadline = timeout and now() + timeout
  while not msg do
    msg, err = redis_receive(self.conn,
      deadline and max(0, deadline - now()) or nil)
    if not msg then return nil, err end
    if msg[1] ~= "message" and msg[1] ~= "pmessage" then msg = nil end
  end
  if msg[1] == "pmessage" then
    return msg[3], msg[4], msg[2]
  end
  return msg[2], msg[3]
end

function Sub:subscribe(...) return sub_send(self, "SUBSCRIBE", ...) end
function Sub:psubscribe(...) return sub_send(self, "PSUBSCRIBE", ...) end
function Sub:unsubscribe(...) return sub_send(self, "UNSUBSCRIBE", ...) end
function Sub:punsubscribe(...) return sub_send(self, "PUNSUBSCRIBE", ...) end

--- `sub:close()`: the subscriber's connection is closed.
function Sub:close()
  self.conn:close()
end

return M
