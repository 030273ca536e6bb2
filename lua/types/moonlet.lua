---@meta moonlet
-- LuaLS (lua-language-server) definitions for moonlet's public Lua API.
-- Never executed and not compiled into the binary: point the editor's
-- `workspace.library` at lua/types (the repository's .luarc.json does).
-- `---@meta moonlet` makes `require "moonlet"` resolve to this file.
-- The interface it describes is documented in docs/reference.md; keep
-- this file in step with it, with lua/moonlet/*.lua and with
-- runtime/vm/lib_*.c.

--------------------------------------------------------------------------
-- Shared shapes
--------------------------------------------------------------------------

---A header value: a string or number, or a list of them (one header line
---each, e.g. several `Set-Cookie`).
---@alias moonlet.HeaderValue string|number|(string|number)[]

---Response or outbound request headers: name -> value or list of values.
---@alias moonlet.Headers table<string, moonlet.HeaderValue>

---A route handler: `req`, then the pattern's converted values in pattern
---order. It returns the response: `"text"`, a table (JSON),
---`body, status [, headers]`, a `moonlet.response{...}`, or nothing (204).
---@alias moonlet.Handler async fun(req: moonlet.Request, ...: any): ...

---A `before` hook: a non-nil return is the response and the handler is
---skipped.
---@alias moonlet.BeforeHook async fun(req: moonlet.Request): ...

---An `after` hook: may change `resp.status`, `resp.headers`, `resp.body`.
---@alias moonlet.AfterHook async fun(req: moonlet.Request, resp: moonlet.AfterResponse)

---An error handler: returns the error page like a handler; returning
---nothing keeps the default page. The status stays `err.status`.
---@alias moonlet.ErrorHandler async fun(req: moonlet.Request, err: moonlet.ErrorInfo): ...

---Log levels of `moonlet.log`.
---@alias moonlet.LogLevel "debug"|"info"|"warn"|"error"

---What `moonlet.shared` stores.
---@alias moonlet.SharedValue string|number|boolean

--------------------------------------------------------------------------
-- The module
--------------------------------------------------------------------------

---`local moonlet = require "moonlet"`: apps, responses, time, tasks,
---outbound HTTP, threads and the shared store.
---@class moonlet
---@field _VERSION string moonlet's version, e.g. `"0.1.0"`.
---@field worker moonlet.Worker which worker process is serving
---@field json moonlet.json JSON encode/decode (lua/types/moonlet/json.lua)
---@field null lightuserdata JSON null, and what moonlet.redis and moonlet.pg give for nil/NULL
---@field template moonlet.template HTML templates (lua/types/moonlet/template.lua)
---@field pg moonlet.pg PostgreSQL (lua/types/moonlet/stores.lua)
---@field redis moonlet.redis Redis (lua/types/moonlet/stores.lua)
---@field tcp moonlet.tcp TCP cosockets (lua/types/moonlet/stores.lua)
local moonlet = {}

---`v` as text safe inside HTML and its attributes (`& < > " '`); nil gives "".
---@param v any
---@return string
function moonlet.escape(v) end

---A `before` hook: a POST, PUT, PATCH or DELETE without the session's
---CSRF token (form field `csrf_token` or header `X-CSRF-Token`) gets 403.
---`app:before(moonlet.csrf_protect)`.
---@param req moonlet.Request
function moonlet.csrf_protect(req) end

---Signed sessions below `req.session`.
---@class moonlet.session
moonlet.session = {}

---The cookie value for `data`, signed with the app's first secret.
---@param data table
---@return string value
function moonlet.session.sign(data) end

---The data of a cookie value, or nil and why (`"bad signature"`,
---`"expired"`, `"malformed"`).
---@param value string
---@return table? data
---@return string? err
function moonlet.session.unsign(value) end

---Marks the session changed, after a change inside a nested table.
---@param req moonlet.Request
function moonlet.session.touch(req) end

---A new app.
---@param options? moonlet.AppOptions name (prefix of route names when mounted) and limits
---@return moonlet.App app
function moonlet.app(options) end

---A response as given: `moonlet.response{status=, headers=, body=}`.
---Raises if status is not an integer 200..999 or body is not a string.
---@param t moonlet.ResponseOptions
---@return moonlet.Response
function moonlet.response(t) end

---A redirect to `url` (302 by default), with an empty body.
---@param url string
---@param status? integer 301, 302 (default), 303, 307, 308
---@return moonlet.Response
function moonlet.redirect(url, status) end

---Ends the handler with that status from any depth (raises; never returns).
---The app's `errorhandler(status)` renders it, or a plain-text page; a
---table message is sent as JSON (`moonlet.abort(422, {field = "x"})`).
---@param status integer 200..999
---@param message? string|table the page (`err.message`); other values via tostring
function moonlet.abort(status, message) end

---Builds a `Set-Cookie` header value. Raises for a name that is not a
---token, a value with bytes a cookie cannot hold, or an unknown option.
---@param name string
---@param value string|number
---@param opts? moonlet.CookieOptions
---@return string set_cookie
function moonlet.cookie(name, value, opts) end

---Suspends the calling coroutine for `seconds` (yields); the worker goes on.
---@async
---@param seconds number 0 <= seconds < 1e9
function moonlet.sleep(seconds) end

---The loop's clock, in seconds (float, millisecond resolution).
---@return number seconds
function moonlet.now() end

---True once the server is stopping: during `--drain-delay` (when it still
---serves) and the drain after it. A readiness route answers 503 then.
---@return boolean
function moonlet.draining() end

---From a stock `lua5.4` (the Lua module only): runs the loop with `fn` as
---its first coroutine until `fn` returns, then closes what it opened
---(timers, tasks, pooled connections). Returns `fn`'s results.
---@param fn async fun(...: any): ...
---@param ... any
---@return any ...
function moonlet.run(fn, ...) end

---From a stock `lua5.4` (the Lua module only): serves `app` on 127.0.0.1
---and a free port while the loop runs; one app per Lua state, a second
---call replaces it on the same port.
---@param app moonlet.App
---@return integer port
function moonlet.serve(app) end

---Runs `fn` once after `seconds`, in a new coroutine. The timer belongs
---to the app, not to the request that made it.
---@param seconds number
---@param fn async fun()
---@param opts? moonlet.TimerOptions
---@return moonlet.Timer timer
function moonlet.after(seconds, fn, opts) end

---Runs `fn` every `seconds`, each firing in a new coroutine; an error is
---logged and the timer keeps going. `{single = true}`: with several
---workers, only one of them runs it.
---@param seconds number
---@param fn async fun()
---@param opts? moonlet.TimerOptions
---@return moonlet.Timer timer
function moonlet.every(seconds, fn, opts) end

---Runs `fn(...)` as a task, starting on the loop's next turn. The task
---belongs to the calling coroutine: it is cancelled with it.
---@param fn async fun(...: any): ...
---@param ... any arguments for fn
---@return moonlet.Task task
function moonlet.spawn(fn, ...) end

---A future: resolved once (`set`/`fail`), waited on by any number.
---@return moonlet.Future future
function moonlet.future() end

---A FIFO between coroutines; `maxsize` (a positive integer) bounds it.
---@param maxsize? integer
---@return moonlet.Queue queue
function moonlet.queue(maxsize) end

---Runs every function concurrently (yields) and returns each one's first
---result, in argument order. If any raised, raises the first error (in
---argument order) once all have settled.
---@async
---@param ... async fun(): any
---@return any ...
function moonlet.gather(...) end

---Runs every function concurrently (yields), returns the results of the
---first to finish (or raises its error) and cancels the others.
---@async
---@param ... async fun(): ...
---@return any ...
function moonlet.first(...) end

---Runs `fn(...)` (yields) and returns its results, or `nil, "timeout"`
---once `seconds` pass (fn and its pending I/O are then cancelled). An
---error in fn is raised here.
---@async
---@param seconds number
---@param fn async fun(...: any): ...
---@param ... any arguments for fn
---@return any ... fn's results, or nil and "timeout"
function moonlet.timeout(seconds, fn, ...) end

---Writes to the error log: the arguments, tostring'd and joined with " ".
---@param level moonlet.LogLevel
---@param ... any
function moonlet.log(level, ...) end

--------------------------------------------------------------------------
-- Options tables
--------------------------------------------------------------------------

---`moonlet.app{...}`. Each limit is also a command-line flag, which
---overrides it.
---@class moonlet.AppOptions
---@field name? string prefix of this app's route names when mounted (`name.ROUTE`)
---@field max_body? integer request body limit in bytes (1 MiB; 413)
---@field max_url? integer request line / URL limit in bytes (8 KiB; 414)
---@field max_headers? integer request headers limit in bytes, in all (16 KiB; 431)
---@field header_timeout? number seconds to send a request head, and between body pieces (10; 408)
---@field keepalive_timeout? number idle keep-alive, seconds (75)
---@field send_timeout? number seconds a client may take none of a response's bytes before it is closed (60)
---@field tls_cert? string HTTPS only: the PEM certificate chain, the server's first (`--tls-cert` overrides)
---@field tls_key? string its PEM private key (`--tls-key`); SIGHUP reads both again
---@field secret_key? string signs `req.session` (16 bytes or more); else `MOONLET_SECRET_KEY`
---@field secret_keys? string[] rotation: the first signs, every one verifies
---@field session_cookie? string the session cookie's name (`"session"`)
---@field session_max_age? integer seconds a session cookie lives (31 days)
---@field session_secure? boolean the `Secure` attribute (behind HTTPS)
---@field session_samesite? "Lax"|"Strict"|"None" (`"Lax"`)
---@field shared_size? integer bytes of `moonlet.shared` (16 MiB, at least 65536), taken when the store is first used (`--shared-size`)

---Options of a route. `app:route` uses `methods` and `name`; `app:get`
---and the other method functions use `name` only.
---@class moonlet.RouteOptions
---@field methods? string[] e.g. `{"GET", "POST"}` (default `{"GET"}`), any case
---@field name? string names the route for `app:url_for`

---`app:static(prefix, directory, opts)`.
---@class moonlet.StaticOptions
---@field name? string names the file route; its parameter is `filename`

---`moonlet.response{...}`.
---@class moonlet.ResponseOptions
---@field status? integer 200..999 (default 200)
---@field headers? moonlet.Headers
---@field body? string default `""`

---`moonlet.after`/`moonlet.every` options.
---@class moonlet.TimerOptions
---@field single? boolean with several workers, only one worker runs it

---`moonlet.cookie(name, value, opts)`. An unknown key raises.
---@class moonlet.CookieOptions
---@field path? string
---@field domain? string
---@field max_age? integer seconds; also sets Expires (<= 0 deletes the cookie)
---@field expires? number|string epoch seconds, or a ready-made date string
---@field secure? boolean
---@field httponly? boolean
---@field samesite? "Strict"|"Lax"|"None"|string|false any case

---`req:sse(opts)`.
---@class moonlet.SSEOptions
---@field keepalive? number seconds of silence before a comment line is sent (15)
---@field headers? moonlet.Headers extra response headers

--------------------------------------------------------------------------
-- Apps
--------------------------------------------------------------------------

---An app: routes, hooks, error handlers, mounts. Every declaring method
---returns the app, so calls chain. A bad pattern or a route declared
---twice raises at the declaring line.
---@class moonlet.App
---@field name string? the `name` option (route-name prefix when mounted)
local App = {}

---Declares a GET route (HEAD is answered by it, without a body).
---@param pattern string Werkzeug-style: `/user/<name>`, `<int:n>`, `<float:x>`, `<path:rest>`
---@param handler moonlet.Handler
---@param opts? moonlet.RouteOptions `name` for url_for
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, opts: moonlet.RouteOptions, handler: moonlet.Handler): moonlet.App
function App:get(pattern, handler, opts) end

---Declares a POST route.
---@param pattern string
---@param handler moonlet.Handler
---@param opts? moonlet.RouteOptions
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, opts: moonlet.RouteOptions, handler: moonlet.Handler): moonlet.App
function App:post(pattern, handler, opts) end

---Declares a PUT route.
---@param pattern string
---@param handler moonlet.Handler
---@param opts? moonlet.RouteOptions
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, opts: moonlet.RouteOptions, handler: moonlet.Handler): moonlet.App
function App:put(pattern, handler, opts) end

---Declares a PATCH route.
---@param pattern string
---@param handler moonlet.Handler
---@param opts? moonlet.RouteOptions
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, opts: moonlet.RouteOptions, handler: moonlet.Handler): moonlet.App
function App:patch(pattern, handler, opts) end

---Declares a DELETE route.
---@param pattern string
---@param handler moonlet.Handler
---@param opts? moonlet.RouteOptions
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, opts: moonlet.RouteOptions, handler: moonlet.Handler): moonlet.App
function App:delete(pattern, handler, opts) end

---Declares an OPTIONS route (without one, OPTIONS is answered with `Allow`).
---@param pattern string
---@param handler moonlet.Handler
---@param opts? moonlet.RouteOptions
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, opts: moonlet.RouteOptions, handler: moonlet.Handler): moonlet.App
function App:options(pattern, handler, opts) end

---Declares a route for `opts.methods` (default GET), named `opts.name`.
---@param pattern string
---@param opts moonlet.RouteOptions|nil
---@param handler moonlet.Handler
---@return moonlet.App self
---@overload fun(self: moonlet.App, pattern: string, handler: moonlet.Handler): moonlet.App
function App:route(pattern, opts, handler) end

---Runs `fn(req)` before every handler of this app (and its mounts); a
---non-nil return is the response and the handler is skipped.
---@param fn moonlet.BeforeHook
---@return moonlet.App self
function App:before(fn) end

---Runs `fn(req, resp)` after every handler; `resp` (`{status=, headers=,
---body=}`) may be changed.
---@param fn moonlet.AfterHook
---@return moonlet.App self
function App:after(fn) end

---Renders errors of that status (404, 405, 500, an abort's status...);
---`app:errorhandler(fn)` renders every status without a handler of its own.
---@param status integer
---@param fn moonlet.ErrorHandler
---@return moonlet.App self
---@overload fun(self: moonlet.App, fn: moonlet.ErrorHandler): moonlet.App
function App:errorhandler(status, fn) end

---Serves another app's routes under `prefix` (blueprints). Its hooks and
---error handlers apply to its own routes; a named app's route names become
---`name.ROUTE`.
---@param prefix string starts with "/"
---@param other moonlet.App made by moonlet.app()
---@return moonlet.App self
function App:mount(prefix, other) end

---Serves the files under `directory` at `prefix/...` (sendfile, ETag,
---Last-Modified, Range, index.html); nothing outside it. A relative
---directory is relative to the declaring file.
---@param prefix string starts with "/"
---@param directory string
---@param opts? moonlet.StaticOptions
---@return moonlet.App self
function App:static(prefix, directory, opts) end

---The path of a named route, values percent-encoded; params the pattern
---does not use, and `query`, go to the query string. Raises for an
---unknown name or a missing parameter.
---@param name string
---@param params? table<string, string|number>
---@param query? table<string, string|number|boolean|(string|number)[]>
---@return string path
function App:url_for(name, params, query) end

--------------------------------------------------------------------------
-- Requests
--------------------------------------------------------------------------

---An uploaded file of a `multipart/form-data` body (`req.files[name]`).
---@class moonlet.File
---@field filename string as sent (may be `""` for an empty file input)
---@field content_type string default `"application/octet-stream"`
---@field body string the file's bytes

---What a request's TLS session negotiated (`req.tls`).
---@class moonlet.RequestTLS
---@field version string `"TLSv1.3"` or `"TLSv1.2"`
---@field cipher string OpenSSL's name, such as `"TLS_AES_256_GCM_SHA384"`
---@field sni string? the server name the client sent
---@field alpn string? the protocol ALPN chose (`"http/1.1"`)

---The request a handler receives. Fields are read on first use
---and cached; once the response is sent (or the client left) reading an
---uncached one raises. Keep the app's own per-request data in `req.ctx`.
---@class moonlet.Request
---@field method string `"GET"`, `"POST"`, ...
---@field path string percent-decoded, without the query
---@field raw_path string the path as received
---@field query_string string after `?`, `""` when none
---@field version "1.0"|"1.1"
---@field remote_addr string the client's address: the socket's peer, a PROXY header's client, or (`--proxy-headers`, trusted peer) what Forwarded / X-Forwarded-For name
---@field scheme "http"|"https" the client's scheme: `"https"` on a TLS listener, else a trusted proxy's Forwarded proto / X-Forwarded-Proto, or a PROXY v2 SSL TLV
---@field tls moonlet.RequestTLS? what TLS negotiated on this connection; nil on plain HTTP
---@field headers table<string, string> any case; repeated headers joined with ", "
---@field query table<string, string> first value of each query parameter
---@field form table<string, string> fields of urlencoded and multipart bodies (a malformed body aborts with 400)
---@field files table<string, moonlet.File> files of a multipart body
---@field cookies table<string, string> the Cookie header, parsed (values not decoded)
---@field params table<string, string|integer|number> the route's converted values
---@field ctx table a fresh table per request, shared by hooks and the handler (Flask's `g`)
---@field body string the whole body, `""` when none
---@field session table<string, any> the signed-cookie session (needs the app's `secret_key`)
---@field id string the request id the error and access logs show (16 hex digits)
local Request = {}

---The session's CSRF token, made on first use; forms send it back as the
---field `csrf_token`, scripts as the header `X-CSRF-Token`.
---@return string token
function Request:csrf_token() end

---Keeps a message in the session for the next page.
---@param message string
---@param category? string `"message"` by default
function Request:flash(message, category) end

---The messages flashed so far (`{category, message}` each), removed from
---the session.
---@return {[1]: string, [2]: string}[]
function Request:flashes() end

---Empties the session (at login and logout).
function Request:clear_session() end

---A request header, any case; repeats joined with ", ".
---@param name string
---@return string? value
function Request:header(name) end

---Every value of a query parameter, in order (`{}` when absent).
---@param name string
---@return string[] values
function Request:query_all(name) end

---The decoded JSON body; a body that is not JSON aborts with 400.
---@return any value
function Request:json() end

---Starts a streamed response now (status 200 by default; chunked on
---HTTP/1.1). The stream ends when the handler returns.
---@param status integer
---@param headers? moonlet.Headers
---@return moonlet.Stream? out
---@return "closed"? err the client has gone
---@overload fun(self: moonlet.Request, headers?: moonlet.Headers): moonlet.Stream?, "closed"?
function Request:stream(status, headers) end

---Starts a server-sent event stream (`text/event-stream`); an idle one
---gets a comment every `opts.keepalive` seconds (15).
---@param opts? moonlet.SSEOptions
---@return moonlet.SSE? ev
---@return "closed"? err the client has gone
function Request:sse(opts) end

--------------------------------------------------------------------------
-- Responses and errors
--------------------------------------------------------------------------

---What `moonlet.response{...}` and `moonlet.redirect(...)` return; a
---handler returns it as its response.
---@class moonlet.Response
---@field status integer
---@field headers moonlet.Headers?
---@field body string

---The response an `after` hook sees, and may change.
---@class moonlet.AfterResponse
---@field status integer 200..999
---@field headers moonlet.Headers
---@field body string

---The `err` of an error handler.
---@class moonlet.ErrorInfo
---@field status integer
---@field message string|table|nil the abort's message, or an uncaught error's without its file:line
---@field detail string? an uncaught error's whole message, with its file:line
---@field traceback string? for 500 from an uncaught error only

--------------------------------------------------------------------------
-- Streams
--------------------------------------------------------------------------

---A streamed response body (`req:stream()`).
---@class moonlet.Stream
local Stream = {}

---Writes a piece of the body (yields while the client lags: back-pressure).
---@async
---@param data string|number
---@return true? ok
---@return "closed"? err the client has gone
function Stream:write(data) end

---One server-sent event. Multi-line data becomes several `data:` lines;
---a table is sent as JSON. At least one field is needed.
---@class moonlet.SSEEvent
---@field data? string|number|table
---@field event? string one line
---@field id? string|number one line
---@field retry? integer milliseconds

---A server-sent event stream (`req:sse()`).
---@class moonlet.SSE
local SSE = {}

---Sends an event (yields under back-pressure); a string or number is the
---event's data.
---@async
---@param ev moonlet.SSEEvent|string|number
---@return true? ok
---@return "closed"? err the client has gone
function SSE:send(ev) end

---Sends a comment line, which clients ignore (yields under back-pressure).
---@async
---@param text? string one line
---@return true? ok
---@return "closed"? err the client has gone
function SSE:comment(text) end

--------------------------------------------------------------------------
-- Timers, tasks, futures, queues
--------------------------------------------------------------------------

---A timer made by `moonlet.after` or `moonlet.every`.
---@class moonlet.Timer
local Timer = {}

---Stops the timer (no more firings); stopping a stopped one does nothing.
function Timer:stop() end

---Whether the timer will still fire.
---@return boolean
function Timer:active() end

---A task made by `moonlet.spawn`.
---@class moonlet.Task
local Task = {}

---Waits for the task (yields): returns fn's results, re-raises its error,
---or returns `nil, "timeout"` (after `timeout` seconds) or
---`nil, "cancelled"` (the task was cancelled).
---@async
---@param timeout? number seconds
---@return any ... fn's results, or nil and "timeout" / "cancelled"
function Task:wait(timeout) end

---Cancels the task, its I/O and its own tasks.
---@return boolean was_running
function Task:cancel() end

---Whether the task has ended (returned, raised or been cancelled).
---@return boolean
function Task:done() end

---A future made by `moonlet.future()`.
---@class moonlet.Future
local Future = {}

---Resolves the future with the values; waiters wake on the loop's next
---turn. Raises `"future already resolved"` if it was set or failed.
---@param ... any
function Future:set(...) end

---Fails the future with `err`, which `get` raises in every waiter.
---Raises `"future already resolved"` if it was set or failed.
---@param err any
function Future:fail(err) end

---Waits for the future (yields): returns its values, raises its failure,
---or returns `nil, "timeout"` after `timeout` seconds.
---@async
---@param timeout? number seconds
---@return any ... the values, or nil and "timeout"
function Future:get(timeout) end

---Whether the future is resolved (set or failed).
---@return boolean
function Future:done() end

---A queue made by `moonlet.queue([maxsize])`.
---@class moonlet.Queue
---@field maxsize integer? the bound, nil when unbounded
local Queue = {}

---Adds `v` at the end; yields while the queue is full. Raises for nil.
---@async
---@param v any not nil
---@return true
function Queue:put(v) end

---Takes the first item; yields until there is one, or `timeout` seconds.
---@async
---@param timeout? number seconds
---@return any v the item, or nil
---@return "timeout"? err
function Queue:get(timeout) end

---How many items are waiting.
---@return integer
function Queue:size() end

---Whether a `put` would wait.
---@return boolean
function Queue:full() end

--------------------------------------------------------------------------
-- Outbound HTTP
--------------------------------------------------------------------------

---`moonlet.http`: outbound HTTP from handlers. Every call yields only its
---own coroutine. Errors are `nil` and a short string: `"timeout"`,
---`"connection refused"`, `"dns: <reason>"`, `"connect: <reason>"`,
---`"closed"`, `"too large"`, `"bad response"`, `"too many redirects"`,
---`"https not supported"`.
---@class moonlet.http
moonlet.http = {}

---Options of `moonlet.http.get` / `moonlet.http.post`.
---@class moonlet.http.CallOptions
---@field headers? moonlet.Headers
---@field timeout? number seconds for the whole exchange, redirects included (30)
---@field follow_redirects? boolean default true, 5 hops at most

---`moonlet.http.request{...}`.
---@class moonlet.http.Options: moonlet.http.CallOptions
---@field method? string default `"GET"`
---@field url string an `http://` URL
---@field body? string|table a table is sent as JSON (with `Content-Type: application/json` unless set)

---A response of `moonlet.http`.
---@class moonlet.http.Response
---@field status integer
---@field headers table<string, string> any case; repeats joined with ", "
---@field body string
---@field url string where the last redirect led
local HttpResponse = {}

---The decoded JSON body; raises if the body is not JSON.
---@return any value
function HttpResponse:json() end

---Sends a request (yields) and returns the response, or nil and a short
---reason. Raises for bad options or a URL that is not http(s)://.
---@async
---@param opts moonlet.http.Options
---@return moonlet.http.Response? res
---@return string? err
function moonlet.http.request(opts) end

---`GET url` (yields).
---@async
---@param url string
---@param opts? moonlet.http.CallOptions
---@return moonlet.http.Response? res
---@return string? err
function moonlet.http.get(url, opts) end

---`POST url` with `body` (yields); a table body is sent as JSON.
---@async
---@param url string
---@param body string|table|nil
---@param opts? moonlet.http.CallOptions
---@return moonlet.http.Response? res
---@return string? err
function moonlet.http.post(url, body, opts) end

--------------------------------------------------------------------------
-- Threads, shared store, worker
--------------------------------------------------------------------------

---`moonlet.thread`: work that cannot yield, on libuv's thread pool.
---@class moonlet.thread
moonlet.thread = {}

---Runs `fn(...)` on a pool thread in a separate Lua state (yields) and
---returns its results; fn's error is raised here. `fn` may use no upvalue
---but `_ENV`; arguments and results are copied (nil, booleans, numbers,
---strings, tables of these). Returns nil and a reason if the job could not
---be queued.
---@async
---@param fn fun(...: any): ...
---@param ... nil|boolean|number|string|table
---@return any ...
function moonlet.thread.run(fn, ...) end

---`moonlet.shared`: a string/number/boolean store in shared memory, one
---for the whole server: every worker sees the same keys, and it survives
---reloads and worker restarts. Each function also works in the method
---form, `moonlet.shared:get(key)`. Keys are non-empty strings (at most
---65535 bytes); a `ttl` is in seconds, 0 or none for no expiry.
---@class moonlet.shared
moonlet.shared = {}

---The value, or nil when absent or expired.
---@param key string
---@return moonlet.SharedValue? value
---@overload fun(self: moonlet.shared, key: string): moonlet.SharedValue?
function moonlet.shared.get(key) end

---Stores the value; when the store is full, evicts the least recently
---used keys to make room (nil, "no memory" if that found none).
---@param key string
---@param value moonlet.SharedValue
---@param ttl? number seconds
---@return true? ok
---@return "no memory"? err
---@overload fun(self: moonlet.shared, key: string, value: moonlet.SharedValue, ttl?: number): true?, "no memory"?
function moonlet.shared.set(key, value, ttl) end

---Stores the value only if the key is absent, atomically across workers;
---never evicts.
---@param key string
---@param value moonlet.SharedValue
---@param ttl? number seconds
---@return true? ok
---@return "exists"|"no memory"|nil err
---@overload fun(self: moonlet.shared, key: string, value: moonlet.SharedValue, ttl?: number): true?, "exists"|"no memory"|nil
function moonlet.shared.add(key, value, ttl) end

---Adds `n` to a number and returns the new value, atomically across
---workers; an absent key starts from `init` when given, else it is an
---error. Never evicts.
---@param key string
---@param n number
---@param init? number
---@return number? value
---@return "not found"|"not a number"|"no memory"|nil err
---@overload fun(self: moonlet.shared, key: string, n: number, init?: number): number?, "not found"|"not a number"|"no memory"|nil
function moonlet.shared.incr(key, n, init) end

---Removes the key.
---@param key string
---@return true
---@overload fun(self: moonlet.shared, key: string): true
function moonlet.shared.delete(key) end

---At most `max` live keys (1024 when not given; 0: all of them, which
---holds the store's lock while it copies them), sorted.
---@param max? integer
---@return string[]
---@overload fun(self: moonlet.shared, max?: integer): string[]
function moonlet.shared.keys(max) end

---What the store holds.
---@class moonlet.SharedStats
---@field size integer bytes of the store
---@field capacity integer of which entries may use
---@field used integer bytes entries use now
---@field count integer entries (expired ones not yet dropped included)
---@field evictions integer keys `set` has evicted
---@field recoveries integer rebuilds after a process died holding the lock

---Sizes and counts of the store.
---@return moonlet.SharedStats
---@overload fun(self: moonlet.shared): moonlet.SharedStats
function moonlet.shared.stats() end

---`moonlet.worker`.
---@class moonlet.Worker
---@field id integer 1..N under `--workers N`; 1 with a single process
---@field pid integer the worker's process id

return moonlet
