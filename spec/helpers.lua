--- Test helpers: start `moonlet run APP --port 0`, read its port from the
-- listening line, talk HTTP to it over real sockets, stop it by PID.
local socket = require "socket"

local H = {}

H.bin = os.getenv("MOONLET_BIN") or "build/moonlet"
H.wrap = os.getenv("MOONLET_WRAP") or ""   -- e.g. valgrind, for check-leaks

local function slurp(path)
  local f = io.open(path, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
H.slurp = slurp

function H.pause(s)
  socket.sleep(s)
end

function H.now()
  return socket.gettime()
end

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p
end

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end
H.quote = quote

--- Starts the app; returns a server object {port, pid, ...}.
-- opts.args: extra command-line words; opts.env: "NAME=value ..." prefix;
-- opts.command: "run" (default) or "" for the `moonlet APP.lua` form;
-- opts.port: false to leave out "--port 0".
function H.start(app, opts)
  opts = opts or {}
  local base = tmpname()
  local srv = { out = base .. ".out", err = base .. ".err",
    status_file = base .. ".status", pid_file = base .. ".pid", app = app }
  local args = {}
  for i, a in ipairs(opts.args or {}) do args[i] = quote(a) end
  local cmd = ("%s %s %s %s %s %s %s"):format(opts.env or "", H.wrap,
    H.bin, opts.command or "run", quote(app),
    opts.port == false and "" or "--port 0", table.concat(args, " "))
  -- a subshell that records the server's exit status when it ends
  os.execute(("( %s >%s 2>%s & echo $! >%s; wait $!; echo $? >%s ) &")
    :format(cmd, srv.out, srv.err, srv.pid_file, srv.status_file))
  local deadline = H.now() + (opts.timeout or 10)
  while H.now() < deadline do
    local scheme, line = slurp(srv.out)
      :match("moonlet listening on (https?)://[^\n]*:(%d+)\n")
    if line then
      srv.port = tonumber(line)
      srv.scheme = scheme
      srv.pid = tonumber(slurp(srv.pid_file))
      return setmetatable(srv, { __index = H.server })
    end
    if slurp(srv.status_file) ~= "" then break end
    H.pause(0.02)
  end
  error("server did not start: " .. slurp(srv.err) .. slurp(srv.out))
end

H.server = {}

--- The server's error log so far.
function H.server:log()
  return slurp(self.err)
end

--- The exit status, or nil while it runs.
function H.server:status()
  local s = slurp(self.status_file)
  return tonumber(s)
end

--- Sends a signal; waits (up to 'wait' s) for the exit; returns status.
function H.server:kill(sig, wait)
  if self.pid and not self:status() then
    os.execute(("kill -%s %d 2>/dev/null"):format(sig or "TERM", self.pid))
  end
  local deadline = H.now() + (wait or 15)
  while H.now() < deadline do
    local st = self:status()
    if st then return st end
    H.pause(0.02)
  end
  return nil
end

function H.server:stop()
  local st = self:kill("TERM", 15)
  if not st and self.pid then
    os.execute(("kill -KILL %d 2>/dev/null"):format(self.pid))
  end
  for _, f in ipairs { self.out, self.err, self.status_file, self.pid_file } do
    os.remove(f)
  end
  return st
end

--- Starts a backend command that prints its port on its first line, in
-- the background; returns {port, pid, out, stop = function}.  Stopped by
-- its PID.
function H.spawn(cmd, what)
  local base = tmpname()
  local b = { out = base .. ".out", pid_file = base .. ".pid" }
  os.execute(("%s >%s 2>&1 & echo $! >%s"):format(cmd, b.out, b.pid_file))
  function b.stop()
    if b.pid then os.execute(("kill %d 2>/dev/null"):format(b.pid)) end
    os.remove(b.out)
    os.remove(b.pid_file)
  end
  local deadline = H.now() + 10
  while H.now() < deadline do
    local port = slurp(b.out):match("^(%d+)\n")
    if port then
      b.port = tonumber(port)
      b.pid = tonumber(slurp(b.pid_file))
      return b
    end
    H.pause(0.02)
  end
  error((what or cmd) .. " did not start: " .. slurp(b.out))
end

--- Waits until the error log matches pattern; returns the match or nil.
function H.wait_for_log(srv, pattern, timeout)
  local deadline = H.now() + (timeout or 2)
  repeat
    local m = srv:log():match(pattern)
    if m then return m end
    H.pause(0.02)
  until H.now() > deadline
  return nil
end

--- A TLS connection (LuaSec) to 127.0.0.1:port, the handshake done:
-- opts.cafile (the CA to trust; none: no verification), opts.sni (the
-- name sent), opts.protocol ("any", "tlsv1_2", "tlsv1_3"), opts.alpn,
-- opts.timeout.  Returns the connection (luasocket's receive and send),
-- or nil and the handshake's error.
function H.tls(port, opts)
  opts = opts or {}
  local ssl = require "ssl"
  local c = H.raw(port, opts.timeout)
  local conn = assert(ssl.wrap(c, { mode = "client",
    protocol = opts.protocol or "any", options = { "all" },
    verify = opts.cafile and "peer" or "none", cafile = opts.cafile,
    alpn = opts.alpn }))
  if opts.sni ~= false then conn:sni(opts.sni or "localhost") end
  local ok, err = conn:dohandshake()
  if not ok then
    conn:close()
    return nil, err
  end
  return conn
end

--- A raw TCP connection to 127.0.0.1:port with a timeout.
function H.raw(port, timeout)
  local c = assert(socket.tcp())
  c:settimeout(timeout or 5)
  assert(c:connect("127.0.0.1", port))
  return c
end

--- Sends 'text' as is on a new connection and reads until the server
-- closes it: the whole raw response, for checks the parser would hide.
function H.exchange(port, text)
  local c = H.raw(port, 5)
  c:send(text)
  local data, err, partial = c:receive("*a")
  c:close()
  return data or partial, err
end

--- The values of every header line of res named 'name' (any case), in
-- order.
function H.header_values(res, name)
  local out = {}
  for _, kv in ipairs(res.header_list) do
    if kv[1]:lower() == name:lower() then out[#out + 1] = kv[2] end
  end
  return out
end

-- Reads a chunked body.
local function read_chunked(c)
  local parts = {}
  while true do
    local line, err = c:receive("*l")
    if not line then return nil, err end
    local n = tonumber(line:match("^%x+"), 16)
    if not n then return nil, "bad chunk size: " .. line end
    if n == 0 then
      repeat line = c:receive("*l") until line == "" or line == nil
      return table.concat(parts)
    end
    parts[#parts + 1] = c:receive(n)
    c:receive("*l")
  end
end

--- Reads one response from a raw socket: {status, headers, body, raw}.
-- headers keys are lower case; opts.head: no body expected (HEAD).
function H.read_response(c, opts)
  opts = opts or {}
  local line, err = c:receive("*l")
  if not line then return nil, err end
  local res = { status_line = line, headers = {}, header_list = {} }
  res.status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  while true do
    local h = c:receive("*l")
    if h == nil then return nil, "eof in head" end
    if h == "" then break end
    local k, v = h:match("^([^:]+):%s*(.-)%s*$")
    res.header_list[#res.header_list + 1] = { k, v }
    k = k:lower()
    res.headers[k] = res.headers[k] and (res.headers[k] .. ", " .. v) or v
  end
  local bodyless = opts.head or res.status == 204 or res.status == 304
    or (res.status >= 100 and res.status < 200)
  if bodyless then
    res.body = ""
  elseif res.headers["transfer-encoding"] == "chunked" then
    res.body = read_chunked(c)
  elseif res.headers["content-length"] then
    local n = tonumber(res.headers["content-length"])
    res.body = n > 0 and c:receive(n) or ""
  else
    res.body = c:receive("*a")
  end
  return res
end

--- Starts GET path on a connection of its own, not read yet (a request
-- that waits for something the test does next); finish_json reads it.
function H.start_get(srv, path, timeout)
  local c = H.raw(srv.port, timeout)
  c:send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"):format(path))
  return c
end

--- The JSON answer, a 200, of a request made with start_get.
function H.finish_json(c)
  local res, err = H.read_response(c)
  c:close()
  if not res or res.status ~= 200 then
    error(res and ("status %d: %s"):format(res.status, res.body)
      or ("no response: " .. tostring(err)), 2)
  end
  return require("cjson").decode(res.body)
end

--- One request on a new connection; returns the response table.
-- opts: headers (table), body (string), head (bool).
function H.request(srv, method, path, opts)
  opts = opts or {}
  local port = type(srv) == "table" and srv.port or srv
  local c = H.raw(port, opts.timeout)
  local lines = { ("%s %s HTTP/1.1"):format(method, path),
    "Host: 127.0.0.1:" .. port }
  local headers = opts.headers or {}
  if opts.body and not headers["Content-Length"] then
    lines[#lines + 1] = "Content-Length: " .. #opts.body
  end
  for k, v in pairs(headers) do
    lines[#lines + 1] = k .. ": " .. v
  end
  lines[#lines + 1] = "Connection: close"
  c:send(table.concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.body or ""))
  local res, err = H.read_response(c, { head = method == "HEAD" })
  c:close()
  return res or error("no response: " .. tostring(err))
end

function H.get(srv, path, opts)
  return H.request(srv, "GET", path, opts)
end

function H.post(srv, path, body, opts)
  opts = opts or {}
  opts.body = body
  return H.request(srv, "POST", path, opts)
end

--- n requests at once, each on its own connection; returns the list of
-- responses (in order) and the seconds it took for all of them.
function H.concurrent(srv, n, path, timeout)
  local t0 = H.now()
  local conns, results = {}, {}
  for i = 1, n do
    local c = H.raw(srv.port, timeout or 10)
    c:send(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
      :format(type(path) == "function" and path(i) or path))
    conns[i] = c
  end
  for i = 1, n do
    results[i] = H.read_response(conns[i])
    conns[i]:close()
  end
  return results, H.now() - t0
end

--- Runs the moonlet binary with args; returns exit code, stdout, stderr.
function H.cli(args, env)
  local base = tmpname()
  local words = {}
  for i, a in ipairs(args) do words[i] = quote(a) end
  local cmd = ("%s timeout 20 %s %s >%s.out 2>%s.err; echo $? >%s.st")
    :format(env or "", H.bin, table.concat(words, " "), base, base, base)
  os.execute(cmd)
  local code = tonumber(slurp(base .. ".st"))
  local out, err = slurp(base .. ".out"), slurp(base .. ".err")
  os.remove(base .. ".out"); os.remove(base .. ".err"); os.remove(base .. ".st")
  return code, out, err
end

--- Writes a temporary app file with the given source; returns its path.
function H.write_app(source, name)
  local dir = tmpname()
  os.execute("mkdir -p " .. quote(dir))
  local path = dir .. "/" .. (name or "app.lua")
  local f = assert(io.open(path, "w"))
  f:write(source)
  f:close()
  return path, dir
end

return H
