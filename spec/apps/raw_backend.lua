--- A raw-socket HTTP backend for the client specs: canned responses,
-- broken ones included, chosen by path.  Run as a standalone script:
--
--   lua5.4 spec/apps/raw_backend.lua [LIFETIME_SECONDS]
--
-- It binds 127.0.0.1:0, prints "PORT\n" on stdout, serves every client
-- from one socket.select loop, and exits by itself after LIFETIME seconds
-- (120 by default) or on GET /quit.  GET /stats answers JSON: accepted
-- (connections, not counting those that asked for /stats), closed (peer
-- closes), hang_closed (peer closes while a /hang was pending), dropped
-- (requests answered by closing, see /drop), requests (path -> count).
-- Paths: /ok /conn /echo /json /notjson /headers /chunked /close
-- /badstatus /garbage /continue /head /204 /304 /redirect/N /absredirect
-- /rel/a/start /to?URL /loop /see-other /temporary /big /huge /drop /bye
-- /hang /nolocation /early.
local socket = require "socket"
local cjson = require "cjson"

local LIFETIME = tonumber(arg[1]) or 120
local BODY = "hello from raw"

local server = assert(socket.bind("127.0.0.1", 0))
server:settimeout(0)
local _, port = server:getsockname()
io.stdout:write(port, "\n")
io.stdout:flush()

local stats = { accepted = 0, closed = 0, hang_closed = 0, dropped = 0,
  stats_conns = 0, requests = {} }
local clients = {}     -- socket -> state
local order = {}       -- sockets, for select
local next_id = 0
local started = socket.gettime()

local function header_block(list)
  local out = {}
  for _, h in ipairs(list) do out[#out + 1] = h .. "\r\n" end
  return table.concat(out) .. "\r\n"
end

local function response(status, reason, headers, body)
  headers = headers or {}
  return ("HTTP/1.1 %d %s\r\n"):format(status, reason) .. header_block(headers)
    .. (body or "")
end

local function ok(body, extra, status, reason)
  local h = { "Content-Length: " .. #body }
  local typed = false
  for _, x in ipairs(extra or {}) do
    h[#h + 1] = x
    typed = typed or x:lower():match("^content%-type:") ~= nil
  end
  if not typed then h[#h + 1] = "Content-Type: text/plain" end
  return response(status or 200, reason or "OK", h, body)
end

local function remove_client(c)
  clients[c] = nil
  for i, s in ipairs(order) do
    if s == c then table.remove(order, i) break end
  end
  c:close()
end

-- Peer went away (EOF or error) or we close it.
local function drop(c, by_peer)
  local st = clients[c]
  if not st then return end
  if by_peer and not st.stats then
    stats.closed = stats.closed + 1
    if st.hanging then stats.hang_closed = stats.hang_closed + 1 end
  end
  remove_client(c)
end

local function send(st, data)
  st.out = st.out .. data
end

-- The answer to one parsed request; st.close_after makes it close.
local function answer(st, req)
  local path, query = req.target:match("^([^?]*)%??(.*)$")
  local count_path = path:match("^/redirect/") and "/redirect" or path
  stats.requests[count_path] = (stats.requests[count_path] or 0) + 1
  local host = "127.0.0.1:" .. port
  if st.doomed then              -- answered /drop: close without a word
    stats.dropped = stats.dropped + 1
    st.close_now = true
    return
  end
  if req.headers.connection and req.headers.connection:lower() == "close" then
    st.close_after = true
  end
  local m = req.method
  if path == "/ok" or path == "/" then
    if m == "HEAD" then
      send(st, response(200, "OK", { "Content-Length: " .. #BODY,
        "Content-Type: text/plain" }))
    else
      send(st, ok(BODY, { "X-Conn: " .. st.id }))
    end
  elseif path == "/conn" then            -- which connection served it
    send(st, ok(tostring(st.id)))
  elseif path == "/echo" then
    send(st, ok(cjson.encode { method = m, path = path, query = query,
      headers = req.headers, body = req.body, conn = st.id },
      { "Content-Type: application/json" }))
  elseif path == "/json" then
    send(st, ok('{"a":1,"list":[1,2,3],"s":"x"}',
      { "Content-Type: application/json" }))
  elseif path == "/notjson" then
    send(st, ok("this is <b>not</b> json"))
  elseif path == "/headers" then
    send(st, response(200, "OK", { "Content-Length: 2",
      "X-Mixed-Case: Yes", "Set-Cookie: a=1", "Set-Cookie: b=2",
      "content-type: text/x-lower" }, "hi"))
  elseif path == "/chunked" then
    send(st, response(200, "OK", { "Transfer-Encoding: chunked",
      "Content-Type: text/plain" },
      "5\r\nhello\r\n1\r\n \r\na\r\nfrom chunk\r\n0\r\nX-Trailer: t\r\n\r\n"))
  elseif path == "/close" then           -- close-delimited body
    send(st, response(200, "OK", { "Content-Type: text/plain",
      "Connection: close" }, "until the end"))
    st.close_after = true
  elseif path == "/badstatus" then
    send(st, "HTTP/1.1 2x0 Nope\r\nContent-Length: 0\r\n\r\n")
    st.close_after = true
  elseif path == "/garbage" then
    send(st, "\1\2\3 this is not http at all\r\n\r\n")
    st.close_after = true
  elseif path == "/continue" then        -- 1xx, then the real answer
    send(st, "HTTP/1.1 100 Continue\r\n\r\n"
      .. "HTTP/1.1 103 Early Hints\r\nLink: </x.css>\r\n\r\n"
      .. ok("final", { "X-Final: 1" }))
  elseif path == "/head" then
    send(st, response(200, "OK", { "Content-Length: 1234",
      "Content-Type: text/plain" }, m == "HEAD" and "" or ("x"):rep(1234)))
  elseif path == "/204" then
    send(st, response(204, "No Content", { "X-Empty: yes" }))
  elseif path == "/304" then               -- a length, but no body
    send(st, response(304, "Not Modified", { "Content-Length: 100",
      "ETag: \"v1\"" }))
  elseif path:match("^/redirect/%d+$") then
    local n = tonumber(path:match("%d+$"))
    if n == 0 then
      send(st, ok("arrived"))
    else
      send(st, response(302, "Found", { "Location: /redirect/" .. (n - 1),
        "Content-Length: 0" }))
    end
  elseif path == "/absredirect" then
    send(st, response(301, "Moved", { "Location: http://" .. host .. "/ok",
      "Content-Length: 3" }, "bye"))
  elseif path == "/rel/a/start" then         -- relative to /rel/a/
    send(st, response(302, "Found", { "Location: target?x=1",
      "Content-Length: 0" }))
  elseif path == "/rel/a/target" then
    send(st, ok("relative " .. query))
  elseif path == "/to" then                  -- ?URL, percent-encoded
    local to = query:gsub("%%(%x%x)", function(h)
      return string.char(tonumber(h, 16))
    end)
    send(st, response(302, "Found", { "Location: " .. to,
      "Content-Length: 0" }))
  elseif path == "/big" then                 -- many reads on the client
    local chunk = ("0123456789abcdef"):rep(64)
    send(st, ok(chunk:rep(300)))
  elseif path == "/nolocation" then          -- a 302 with nowhere to go
    send(st, response(302, "Found", { "X-Why: none", "Content-Length: 4" },
      "stay"))
  elseif path == "/loop" then
    send(st, response(302, "Found", { "Location: /loop", "Content-Length: 0" }))
  elseif path == "/see-other" then
    send(st, response(303, "See Other", { "Location: /echo",
      "Content-Length: 0" }))
  elseif path == "/temporary" then
    send(st, response(307, "Temporary Redirect", { "Location: /echo",
      "Content-Length: 0" }))
  elseif path == "/huge" then
    send(st, response(200, "OK", { "Content-Length: 70000000" },
      ("z"):rep(1000)))
    st.close_after = true
  elseif path == "/drop" then
    -- answers with keep-alive, then closes at the next request on this
    -- connection without answering: a kept-alive connection the server
    -- gave up on while the client thought it idle
    send(st, ok("dropping"))
    st.doomed = true
  elseif path == "/bye" then             -- keep-alive, then closes at once
    send(st, ok("bye"))
    st.close_after = true
  elseif path == "/hang" then
    st.hanging = true                       -- never answered
  elseif path == "/stats" then
    if not st.stats then
      st.stats = true
      stats.stats_conns = stats.stats_conns + 1
    end
    local s = { accepted = stats.accepted - stats.stats_conns,
      closed = stats.closed, hang_closed = stats.hang_closed,
      dropped = stats.dropped, requests = stats.requests,
      open = #order }
    send(st, ok(cjson.encode(s), { "Content-Type: application/json" }))
  elseif path == "/quit" then
    send(st, ok("bye"))
    st.close_after = true
    st.quit = true
  else
    send(st, ok("no such path: " .. path, nil, 404, "Not Found"))
  end
end

-- Parses whole requests out of st.buf; answers each.
local function process(st)
  while not st.hanging and not st.close_now do
    local head_end = st.buf:find("\r\n\r\n", 1, true)
    if not head_end then return end
    local head = st.buf:sub(1, head_end - 1)
    local method, target = head:match("^(%u+) (%S+) HTTP/1%.%d")
    local headers = {}
    for k, v in head:gmatch("\r\n([^:\r\n]+):%s*([^\r\n]*)") do
      k = k:lower()
      headers[k] = headers[k] and (headers[k] .. ", " .. v) or v
    end
    if target == "/early" then
      -- answers (keep-alive) before the body has come, then never reads
      -- this connection again: the client is left writing its request
      stats.requests["/early"] = (stats.requests["/early"] or 0) + 1
      send(st, ok("early"))
      st.early, st.buf = true, ""
      return
    end
    local len = tonumber(headers["content-length"]) or 0
    if #st.buf < head_end + 3 + len then return end
    local body = st.buf:sub(head_end + 4, head_end + 3 + len)
    st.buf = st.buf:sub(head_end + 4 + len)
    if not method then
      send(st, response(400, "Bad Request", { "Content-Length: 0" }))
      st.close_after = true
      return
    end
    answer(st, { method = method, target = target, headers = headers,
      body = body })
    if st.close_after then return end
  end
end

local function accept()
  for _ = 1, 64 do
    local c = server:accept()
    if not c then return end
    c:settimeout(0)
    c:setoption("tcp-nodelay", true)
    next_id = next_id + 1
    stats.accepted = stats.accepted + 1
    clients[c] = { id = next_id, buf = "", out = "" }
    order[#order + 1] = c
  end
end

local quit = false
while not quit and socket.gettime() - started < LIFETIME do
  local readers, writers = { server }, {}
  for _, c in ipairs(order) do
    if not clients[c].early then readers[#readers + 1] = c end
    if #clients[c].out > 0 then writers[#writers + 1] = c end
  end
  local r, w = socket.select(readers, writers, 0.1)
  for _, c in ipairs(w) do
    local st = clients[c]
    if st and #st.out > 0 then
      local n, err, last = c:send(st.out)
      n = n or last or 0
      st.out = st.out:sub(n + 1)
      if err == "closed" then drop(c, true) end
    end
  end
  for _, c in ipairs(r) do
    if c == server then
      accept()
    elseif clients[c] then
      local st = clients[c]
      local data, err, partial = c:receive(65536)
      data = data or partial
      if data and #data > 0 then
        st.buf = st.buf .. data
        process(st)
        -- try to write at once; what is left goes out when writable
        if #st.out > 0 then
          local n, _, last = c:send(st.out)
          st.out = st.out:sub((n or last or 0) + 1)
        end
      end
      if err == "closed" then drop(c, true) end
    end
  end
  -- close what is done: answered-and-close, or dropped
  for _, c in ipairs({ table.unpack(order) }) do
    local st = clients[c]
    if st and (st.close_now or (st.close_after and #st.out == 0)) then
      if st.quit then quit = true end
      drop(c, false)
    end
  end
end
server:close()
for _, c in ipairs(order) do c:close() end
