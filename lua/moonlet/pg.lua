--- PostgreSQL from handlers: `moonlet.pg.connect(url [, opts])` lends a
-- connection from the worker's pool; `db:query(sql, ...)` yields only its
-- own coroutine.  Pools and queries are C's (lib_pg.c over libpq), and
-- so are results (lib_pg_rows.c); this module adds options, transactions
-- and LISTEN.
-- @module moonlet.pg

local core = require "moonlet.core"
local json = require "moonlet.json"

local type, error, pcall, setmetatable = type, error, pcall, setmetatable
local pack, unpack = table.pack, table.unpack
local pg_connect, pg_receive, pg_listening, pg_pin = core.pg_connect,
  core.pg_receive, core.pg_listening, core.pg_pin

core.pg_setup(json.encode, json.decode)

local M = {}

--- `moonlet.pg.connect(url [, {max = 10, timeout = 5, pipeline = false}])`
-- (yields): a connection from the pool for `url`
-- (`postgresql://user:pw@host:port/db` or libpq's `key=value` form), or
-- `nil, err`.  At most `max` per worker; when all are lent, waits up to
-- `timeout` seconds (`nil, "timeout"`).  With `pipeline = true`, once the
-- pool is full the handle shares the least used connection with other
-- pipelined handles: their queries go out together and come back in
-- order; a statement that needs a session of its own (BEGIN, SET,
-- LISTEN, ...) first moves the handle to a connection of its own.
function M.connect(url, opts)
  if type(url) ~= "string" then
    error("moonlet.pg.connect: a URL expected", 2)
  end
  opts = opts or {}
  local max, timeout = opts.max or 10, opts.timeout or 5
  if type(max) ~= "number" or type(timeout) ~= "number" then
    error("moonlet.pg.connect: max and timeout are numbers", 2)
  end
  return pg_connect(url, max // 1, timeout, opts.pipeline == true)
end

local Db = core.pg_db_mt.__index

--- `db:transaction(fn)` (yields): BEGIN, `fn(db)`, COMMIT; fn's results
-- (or true).  If fn raises: ROLLBACK, and the error goes on up.  If a
-- statement inside failed without raising, COMMIT rolls back and this
-- returns `nil, err, "25P02"`.
function Db:transaction(fn)
  if type(fn) ~= "function" then
    error("db:transaction: a function expected", 2)
  end
  local ok, err, code = self:query("BEGIN")
  if not ok then
    return nil, err, code
  end
  local res = pack(pcall(fn, self))
  if not res[1] then
    self:query("ROLLBACK")
    error(res[2], 0)
  end
  local done, cerr, ccode = self:query("COMMIT")
  if not done then
    return nil, cerr, ccode
  end
  if done.command == "ROLLBACK" then
    return nil, "ERROR: the transaction failed and was rolled back", "25P02"
  end
  if res.n == 1 then
    return true
  end
  return unpack(res, 2, res.n)
end

local Listener = { __name = "moonlet.pg.Listener" }
Listener.__index = Listener

--- `db:listen(channel)` (yields): LISTEN on this connection, which stays
-- out of the pool from now on; a listener `l` whose `l:receive([timeout])`
-- (yields) returns `channel, payload, pid`, or `nil, "timeout"` /
-- `nil, "closed"`.  `l:listen(other)` adds a channel; `l:close()` lets
-- the connection go (it is closed, not pooled).
function Db:listen(channel)
  local l = setmetatable({ db = self }, Listener)
  local ok, err, code = l:listen(channel)
  if not ok then
    return nil, err, code
  end
  return l
end

function Listener:listen(channel)
  if type(channel) ~= "string" then
    error("listen: a channel name expected", 2)
  end
  if not self.db:connected() then
    return nil, "closed"
  end
  local pinned, perr = pg_pin(self.db)
  if not pinned then
    return nil, perr
  end
  pg_listening(self.db)
  local ok, err, code = self.db:query("LISTEN "
    .. self.db:escape_identifier(channel))
  if not ok then
    return nil, err, code
  end
  return true
end

function Listener:receive(timeout)
  return pg_receive(self.db, timeout)
end

function Listener:close()
  self.db:close()
end

--- `moonlet.pg.stats(url)`: total, idle and waiting counts of the
-- worker's pool for `url` (for tests and dashboards).
function M.stats(url)
  return core.pg_stats(url)
end

return M
