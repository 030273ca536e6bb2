-- A chat.  GET /ws is a WebSocket: each browser sends {name=, text=}
-- as JSON and receives every message, its own included.  POST /say adds
-- a message too (form fields or JSON: name, text); GET /poll?since=N
-- waits up to 30 s for messages newer than N; GET /events streams them
-- as server-sent events; / serves the page in chat/static/, which takes
-- the WebSocket and falls back on the others.  One future, replaced on
-- every message, wakes every poll and stream at once; each WebSocket has
-- a queue that its own coroutine empties, so a browser that reads slowly
-- delays nobody else: past 100 messages behind, it is closed.
local moonlet = require "moonlet"
local cjson = require "cjson"
local app = moonlet.app()

local KEEP = 1000                 -- messages kept in memory
local messages = {}               -- oldest first: {id, name, text, at}
local last_id = 0
local changed = moonlet.future()  -- set (and replaced) on each message
local sockets = {}                -- open WebSocket -> its outgoing queue
local BEHIND = 100                -- messages a socket may lag

-- The messages newer than id n, oldest first.
local function since(n)
  local found = {}
  for i = #messages, 1, -1 do
    if messages[i].id <= n then break end
    table.insert(found, 1, messages[i])
  end
  return found
end

local function field(req, name)
  local ctype = req:header("content-type") or ""
  if ctype:find("^application/json") then
    local body = req:json()
    return type(body) == "table" and body[name] or nil
  end
  return req.form[name]
end

-- Why a message cannot be taken, or nil.
local function refuse(text, name)
  if type(text) ~= "string" or text:match("^%s*$") then
    return "say something: the text field is empty"
  end
  if #text > 2000 or type(name) ~= "string" or #name > 40 then
    return "the text is limited to 2000 bytes, the name to 40"
  end
end

-- Stores a message and hands it to every poll, stream and WebSocket.
local function add(name, text)
  last_id = last_id + 1
  local m = { id = last_id, name = name, text = text, at = os.time() }
  messages[#messages + 1] = m
  if #messages > KEEP then
    table.remove(messages, 1)
  end
  local f = changed
  changed = moonlet.future()
  f:set()
  local json = cjson.encode(m)
  for ws, q in pairs(sockets) do
    if q:full() then
      sockets[ws] = nil           -- too far behind: let it reconnect
      q:put(false)
    else
      q:put(json)
    end
  end
  return m
end

app:post("/say", function(req)
  local text, name = field(req, "text"), field(req, "name") or "anon"
  local why = refuse(text, name)
  if why then moonlet.abort(400, why) end
  return add(name, text), 201
end)

-- Sends what its queue holds, in order, until told to stop (false).
local function writer(ws, q)
  while true do
    local json = q:get()
    if not json or not ws:send(json) then
      ws:close(1008, "too far behind")
      return
    end
  end
end

app:get("/ws", function(req)
  local n = math.tointeger(tonumber(req.query.since or "0")) or 0
  local ws = req:websocket{ ping_interval = 25 }
  local q = moonlet.queue(BEHIND + 1)
  for _, m in ipairs(since(n)) do q:put(cjson.encode(m)) end
  sockets[ws] = q
  local out = moonlet.spawn(writer, ws, q)
  while true do
    local msg = ws:receive()
    if not msg then break end
    local ok, m = pcall(cjson.decode, msg)
    if ok and type(m) == "table" then
      local name = m.name or "anon"
      local why = refuse(m.text, name)
      if why then ws:send(cjson.encode{ error = why }) else add(name, m.text) end
    end
  end
  sockets[ws] = nil
  out:cancel()
end)

app:get("/poll", function(req)
  local n = math.tointeger(tonumber(req.query.since or "0"))
  local wait = tonumber(req.query.timeout or "30")
  if not n or n < 0 or not wait or wait < 0 then
    moonlet.abort(400, "since must be a message id, timeout seconds")
  end
  local deadline = moonlet.now() + math.min(wait, 30)
  while true do
    local new = since(n)
    if #new > 0 then
      return { last = new[#new].id, messages = new }
    end
    local left = deadline - moonlet.now()
    if left <= 0 then
      return { last = n }         -- no messages: poll again from n
    end
    changed:get(left)
  end
end)

app:get("/events", function(req)
  local n = math.tointeger(tonumber(req:header("last-event-id")
    or req.query.since or "0")) or 0
  local ev = req:sse()
  while true do
    for _, m in ipairs(since(n)) do
      if not ev:send{ id = m.id, event = "message", data = m } then
        return
      end
      n = m.id
    end
    changed:get(25)               -- a new message, or loop anyway
  end
end)

app:static("/", "chat/static")

return app
