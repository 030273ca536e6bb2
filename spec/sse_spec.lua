-- Server-sent events (req:sse) through a real server: the framing of
-- each field, data split into lines and normalized, errors for bad
-- events, the headers, keep-alive comments, and cancellation when the
-- client leaves.
local H = require "helpers"
local cjson = require "cjson"

--- Reads a head; returns the status line and lower-case headers.
local function read_head(c)
  local status_line = assert(c:receive("*l"))
  local headers = {}
  while true do
    local l = assert(c:receive("*l"))
    if l == "" then break end
    local k, v = l:match("^([^:]+):%s*(.-)%s*$")
    headers[k:lower()] = v
  end
  return status_line, headers
end

--- Reads one chunk's data ("" for the last), and when it arrived.
local function read_chunk(c)
  local line = assert(c:receive("*l"))
  local n = assert(tonumber(line:match("^%x+"), 16), line)
  if n == 0 then
    assert.equal("", c:receive("*l"))
    return "", H.now()
  end
  local data = assert(c:receive(n))
  assert.equal("", c:receive("*l"))
  return data, H.now()
end

--- Opens path as a stream; returns the socket, status line, headers.
local function open(srv, path)
  local c = H.raw(srv.port)
  c:send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"):format(path))
  return c, read_head(c)
end

--- Every chunk until the last, with arrival times.
local function all_chunks(c)
  local chunks, times = {}, {}
  for _ = 1, 1000 do
    local data, t = read_chunk(c)
    if data == "" then break end
    chunks[#chunks + 1], times[#times + 1] = data, t
  end
  return chunks, times
end

describe("server-sent events", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/sse.lua", { args = { "--log-level", "debug" } })
  end)
  teardown(function() srv:stop() end)

  it("sends text/event-stream, uncached, with the app's headers", function()
    local c, status_line, headers = open(srv, "/events")
    c:close()
    assert.equal("HTTP/1.1 200 OK", status_line)
    assert.equal("text/event-stream", headers["content-type"])
    assert.equal("no-cache", headers["cache-control"])
    assert.equal("chunked", headers["transfer-encoding"])
    assert.equal("1", headers["x-extra"])
  end)

  it("frames each event as one chunk, fields in order", function()
    local c = open(srv, "/events")
    local chunks = all_chunks(c)
    c:close()
    assert.same({
      "event: greet\nid: 7\nretry: 1500\ndata: hello\n\n",
      "data: one\ndata: two\ndata: three\n\n",           -- one line each
      "data: a\ndata: b\ndata: c\ndata: \n\n",          -- CRLF, CR -> LF
      'data: {"k":"v"}\n\n',                             -- a table: JSON
      "data: alone\n\n",                                 -- a string alone
      "id: 8\n\n",
      ": a note\n\n",
      "data: \n\n",
    }, chunks)
  end)

  it("raises for a bad field or an empty event, sending nothing", function()
    local c = open(srv, "/bad")
    local chunks = all_chunks(c)
    c:close()
    local got = {}
    for _, chunk in ipairs(chunks) do
      local name, data = chunk:match("^event: ([^\n]*)\ndata: ([^\n]*)\n\n$")
      assert.truthy(name, "unexpected bytes: " .. chunk)  -- nothing else
      got[name] = data
    end
    assert.matches("event must be one line", got["event-newline"])
    assert.matches("event must be one line", got["event-cr"])
    assert.matches("id must be one line", got["id-newline"])
    assert.matches("id must be one line", got["id-nul"])
    assert.matches("retry must be milliseconds", got["retry-negative"])
    assert.matches("retry must be milliseconds", got["retry-float"])
    assert.matches("retry must be milliseconds", got["retry-string"])
    assert.matches("an event needs data, event, id or retry", got.empty)
    assert.matches("an event needs data, event, id or retry", got["nil"])
    assert.matches("comment must be one line", got["comment-newline"])
  end)

  it("sends a keep-alive comment after each keepalive s of silence", function()
    local c = open(srv, "/quiet")
    local chunks, times = all_chunks(c)
    c:close()
    assert.equal("data: first\n\n", chunks[1])
    assert.equal("data: second\n\n", chunks[#chunks])
    local pings = #chunks - 2
    assert.is_true(pings >= 2 and pings <= 4, pings .. " keep-alives")
    for i = 2, #chunks - 1 do
      assert.equal(": keep-alive\n\n", chunks[i])
      local gap = times[i] - times[i - 1]
      assert.is_true(gap > 0.1 and gap < 0.6, "gap " .. gap)
    end
  end)

  it("sends bare keep-alive comments to HTTP/1.0", function()
    local c = H.raw(srv.port)
    c:send("GET /quiet HTTP/1.0\r\n\r\n")
    local all = assert(c:receive("*a"))
    c:close()
    local body = all:match("\r\n\r\n(.*)$")
    assert.matches("^data: first\n\n: keep%-alive\n\n", body)
    assert.matches("\n\n: keep%-alive\n\ndata: second\n\n$", body)
    assert.is_nil(body:find("\r", 1, true))
  end)

  it("sends no keep-alive while events flow faster", function()
    local c = open(srv, "/busy")
    local chunks = all_chunks(c)
    c:close()
    assert.equal(12, #chunks)
    for i, chunk in ipairs(chunks) do
      assert.equal("data: " .. i .. "\n\n", chunk)
    end
  end)

  it("cancels the handler when its client leaves", function()
    local _, before = srv:log():gsub("client gone: cancelled", "")
    local c = open(srv, "/gone/left")
    assert.equal("data: hi\n\n", read_chunk(c))
    c:close()
    local cancelled = false
    for _ = 1, 50 do                   -- within 1 s, not after its sleep
      local _, n = srv:log():gsub("client gone: cancelled", "")
      if n > before then cancelled = true break end
      H.pause(0.02)
    end
    assert.is_true(cancelled)
    -- one that stays runs to the end
    local c2 = open(srv, "/gone/stayed")
    assert.same({ "data: hi\n\n", "data: bye\n\n" }, (all_chunks(c2)))
    c2:close()
    H.pause(0.2)                  -- well past the first handler's sleep
    local marks = cjson.decode(H.get(srv, "/marks").body)
    assert.is_true(marks.stayed)
    assert.is_nil(marks.left)
  end)
end)
