---@meta moonlet.testing
-- LuaLS definitions for moonlet.testing (`require "moonlet.testing"`),
-- the busted helpers of docs/testing.md. Never executed.

---@class moonlet.testing
local testing = {}

---@class moonlet.testing.Options
---@field timeout? number seconds a request may take (10)
---@field virtual_time? boolean timers, sleeps and wait timeouts follow `client.clock`
---@field tls? boolean serve over TLS with a throwaway certificate the client trusts
---@field log? "stderr" keep the server's log on stderr rather than in `client.log`

---`client:request{...}`: a path on the app, and moonlet.http's options.
---@class moonlet.testing.Request
---@field method? string `"GET"`
---@field path? string `"/"` and the query
---@field headers? table<string, string|string[]>
---@field body? string|table a table goes as JSON
---@field timeout? number
---@field follow_redirects? boolean false

---A response as moonlet.http gives it; `tostring` shows status and body.
---@class moonlet.testing.Response: moonlet.http.Response

---A test client: the app served in this Lua state on 127.0.0.1.
---@class moonlet.testing.Client
---@field port integer the app's loopback port
---@field url string `"http://127.0.0.1:PORT"` (`"https://..."` with `{tls = true}`)
---@field scheme "http"|"https"
---@field timeout number seconds a request may take
---@field clock moonlet.testing.Clock? with `{virtual_time = true}`
---@field cookies table<string, string> set by responses, sent back with every request
---@field log string the server's log while the client lives
local Client = {}

---Sends the request, turns the loop until the response has arrived and
---returns it. Raises when no response came (`"timeout"`, `"closed"`).
---@param o moonlet.testing.Request
---@return moonlet.testing.Response
function Client:request(o) end

---@param path string
---@param opts? moonlet.testing.Request
---@return moonlet.testing.Response
function Client:get(path, opts) end

---@param path string
---@param body string|table a table goes as JSON
---@param opts? moonlet.testing.Request
---@return moonlet.testing.Response
function Client:post(path, body, opts) end

---What `client:start` returns.
---@class moonlet.testing.Pending
---@field wait fun(): moonlet.testing.Response turns the loop until the response came
---@field done fun(): boolean whether the response has come

---Sends the request and returns once it is inside a handler.
---@param o moonlet.testing.Request
---@return moonlet.testing.Pending
function Client:start(o) end

---Runs `fn(...)` in a coroutine with the loop turning, until it returns.
---@param fn async fun(...: any): ...
---@param ... any
---@return any ...
function Client:run(fn, ...) end

---What `client:stub_http` returns.
---@class moonlet.testing.Stub
---@field prefix string
---@field calls integer the calls it answered

---The app's moonlet.http calls to URLs starting with `prefix` get `answer`
---(a table `{status=, headers=, body=}`, or a function of the request
---returning one, or nil and an error); nil removes the stub.
---@param prefix string
---@param answer table|fun(req: table): table?, string?|nil
---@return moonlet.testing.Stub?
function Client:stub_http(prefix, answer) end

---A response read as it arrives (`client:stream`). Calling it gives the
---next piece, so `for piece in client:stream(path) do ... end` works.
---@class moonlet.testing.Stream
---@field status integer
---@field headers table<string, string> any case
---@overload fun(): string|moonlet.testing.Event|nil
local Stream = {}

---A server-sent event as `Stream:read` gives it.
---@class moonlet.testing.Event
---@field data string? the data lines, joined with "\n"
---@field event string?
---@field id string?
---@field retry integer?

---The next piece of the body (a chunk; for `text/event-stream`, the next
---event), or nil once the body has ended; raises past `timeout` seconds.
---@param timeout? number the client's by default
---@return string|moonlet.testing.Event|nil
function Stream:read(timeout) end

---Leaves, as a client that goes away.
function Stream:close() end

---A GET whose response is read as it arrives; returns once its head came.
---@param path string
---@param opts? {headers: table<string, string>?}
---@return moonlet.testing.Stream
function Client:stream(path, opts) end

---Stops the app's timers and tasks, closes its connections and streams,
---and forgets the modules its file loaded.
function Client:close() end

---The virtual clock of a client made with `{virtual_time = true}`.
---@class moonlet.testing.Clock
local Clock = {}

---Moves time forward, firing what comes due in order, each at its own
---time, turning the loop after each.
---@param seconds number
function Clock:advance(seconds) end

---The virtual time, as `moonlet.now()` says.
---@return number
function Clock:now() end

---A client for an app (from `moonlet.app()`) or an app file's path.
---@param app_or_path moonlet.App|string
---@param opts? moonlet.testing.Options
---@return moonlet.testing.Client
function testing.client(app_or_path, opts) end

return testing
