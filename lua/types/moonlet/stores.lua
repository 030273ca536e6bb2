---@meta moonlet.stores
-- LuaLS definitions for moonlet.pg, moonlet.redis and moonlet.tcp
-- (docs/stores.md). Never executed.

---PostgreSQL: connections lent from the worker's pool per URL.
---@class moonlet.pg
local pg = {}

---@class moonlet.pg.ConnectOptions
---@field max? integer connections per worker for this URL (10)
---@field timeout? number seconds to wait for one, and to open one (5)

---(yields) A connection from the pool for `url`, or nil and why.
---@param url string `postgresql://user:pw@host:port/db` or libpq's `key=value`
---@param opts? moonlet.pg.ConnectOptions
---@return moonlet.pg.Db? db
---@return string? err
function pg.connect(url, opts) end

---Total, idle and waiting counts of the worker's pool for `url`.
---@param url string
---@return integer total, integer idle, integer waiting
function pg.stats(url) end

---Rows: a list of tables keyed by column name.
---@class moonlet.pg.Rows
---@field columns string[] the column names in order
---@field affected? integer rows inserted, updated, deleted (or selected)
---@field command string the command tag, e.g. `"INSERT 0 1"`

---@class moonlet.pg.Db
local Db = {}

---(yields) One statement; parameters `$1..$n` travel apart from the SQL.
---@param sql string
---@param ... any nil/moonlet.null, booleans, numbers, strings, tables (JSON)
---@return moonlet.pg.Rows? rows
---@return string? err `"ERROR: <message>"`, or a connection error
---@return string? sqlstate
function Db:query(sql, ...) end

---(yields) BEGIN, fn(db), COMMIT; ROLLBACK and re-raise if fn raises.
---@param fn fun(tx: moonlet.pg.Db): ...
---@return any ...
function Db:transaction(fn) end

---(yields) LISTEN on this connection.
---@param channel string
---@return moonlet.pg.Listener? l
---@return string? err
function Db:listen(channel) end

---Back to the pool (also when the coroutine that took it ends).
function Db:close() end

---Whether it still holds a connection.
---@return boolean
function Db:connected() end

---@param s string
---@return string quoted as an SQL identifier
function Db:escape_identifier(s) end

---@class moonlet.pg.Listener
local Listener = {}

---(yields) The next notification, or nil, "timeout" | "closed".
---@param timeout? number seconds
---@return string? channel
---@return string? payload
---@return integer? pid
function Listener:receive(timeout) end

---(yields) LISTEN on another channel too.
---@param channel string
---@return boolean? ok
---@return string? err
function Listener:listen(channel) end

function Listener:close() end

---Redis: commands pipelined on the worker's connection per URL.
---@class moonlet.redis
local redis = {}

---(yields) A client, or nil and why ("connection refused", "auth: ...").
---@param url string `redis://[[user]:password@]host[:port][/db]`
---@param opts? { timeout?: number } seconds each call may take (5)
---@return moonlet.redis.Client? r
---@return string? err
function redis.connect(url, opts) end

---(yields) A subscriber, subscribed when it returns.
---@param url string
---@param ... string channels
---@return moonlet.redis.Subscriber? sub
---@return string? err
function redis.subscribe(url, ...) end

---(yields) The same with patterns.
---@param url string
---@param ... string patterns
---@return moonlet.redis.Subscriber? sub
---@return string? err
function redis.psubscribe(url, ...) end

---Every Redis command is a method too: `r:get(k)`, `r:set(k, v, "EX", 60)`.
---@class moonlet.redis.Client
---@field [string] fun(self: moonlet.redis.Client, ...): any, string?
local Client = {}

---(yields) The command by name: its reply, or nil and the server's message.
---@param name string
---@param ... string|number
---@return any reply
---@return string? err
function Client:call(name, ...) end

---(yields) fn(p) queues commands; one round trip; the replies in order
---(an error reply's slot is `{false, message}`).
---@param fn fun(p: table)
---@return any[]? replies
---@return string? err
function Client:pipeline(fn) end

---(yields) fn(tx) on a connection of its own (WATCH, MULTI, EXEC).
---@param fn fun(tx: moonlet.redis.Client): ...
---@return any ...
function Client:transaction(fn) end

function Client:close() end

---@class moonlet.redis.Subscriber
local Subscriber = {}

---(yields) channel, message (and the pattern), or nil, "timeout" | "closed".
---@param timeout? number seconds
---@return string? channel
---@return string? message
---@return string? pattern
function Subscriber:receive(timeout) end

---@param ... string
function Subscriber:subscribe(...) end
---@param ... string
function Subscriber:psubscribe(...) end
---@param ... string
function Subscriber:unsubscribe(...) end
---@param ... string
function Subscriber:punsubscribe(...) end
function Subscriber:close() end

---TCP cosockets in OpenResty's shape.
---@class moonlet.tcp
local tcp = {}

---(yields) A socket (from the keep-alive pool for host:port if one is
---idle), or nil and why.
---@param host string
---@param port integer
---@param opts? { timeout?: number }
---@return moonlet.tcp.Socket? sock
---@return string? err
function tcp.connect(host, port, opts) end

---@class moonlet.tcp.Socket
local Socket = {}

---(yields) Bytes sent once the kernel has them all, or nil, err.
---@param data string|number|table a string, or a nested array of them
---@return integer? bytes
---@return string? err
function Socket:send(data) end

---(yields) "*l" (default): a line without CR LF; n: exactly n bytes;
---"*a": everything to the end. Or nil, "timeout" | "closed", partial.
---@param pattern? "*l"|"*a"|integer
---@return string? data
---@return string? err
---@return string? partial
function Socket:receive(pattern) end

---Seconds for each later call (0: none).
---@param seconds number
function Socket:settimeout(seconds) end

---Into the worker's pool for host:port.
---@param timeout? number seconds idle (60)
---@param size? integer kept per host:port (30)
---@return integer? ok
---@return string? err
function Socket:setkeepalive(timeout, size) end

---@return integer? times taken from the pool
function Socket:getreusedtimes() end

---@return integer? ok
---@return string? err
function Socket:close() end

return { pg = pg, redis = redis, tcp = tcp }
