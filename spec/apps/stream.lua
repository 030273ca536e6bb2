-- Streamed responses (req:stream): timing, framing, errors mid-stream,
-- back-pressure and writes after the client left.  What a handler saw
-- goes in 'state' (GET /state shows it), read by the spec afterwards.
local moonlet = require "moonlet"
local app = moonlet.app()

local state = {}

app:get("/state", function(req)
  return state
end)

app:get("/hello", function(req)
  return "hello"
end)

-- Three lines, 0.3 s apart; the handler's end time goes in state.
app:get("/chunks", function(req)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  out:write("START\n")
  moonlet.sleep(0.3)
  out:write("MIDDLE\n")
  moonlet.sleep(0.3)
  out:write("END\n")
  state.chunks_ended = moonlet.now()
end)

-- A status, headers, an empty write (sends nothing) and a number.
app:get("/framing", function(req)
  local out = req:stream(201, { ["Content-Type"] = "text/plain",
    ["X-Stream"] = "yes" })
  assert(out:write("hello") == true)
  assert(out:write("") == true)
  assert(out:write(" world") == true)
  assert(out:write(42) == true)
end)

-- Fails after the first chunk: the client must not see a whole body.
app:get("/fail", function(req)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  out:write("partial\n")
  moonlet.sleep(0.05)
  error("boom mid-stream")
end)

-- n writes of the same 1 MiB string, for a reader that lags.
app:get("/big/<int:n>", function(req, n)
  local s = string.rep("x", 1024 * 1024)
  local out = req:stream{ ["Content-Type"] = "application/octet-stream" }
  state.big = { writes = 0 }
  for _ = 1, n do
    local ok, err = out:write(s)
    if not ok then
      state.big.err = err
      return
    end
    state.big.writes = state.big.writes + 1
  end
  state.big.done = true
end)

-- Writes 64 KiB pieces until a write fails (the client left), then
-- records what that write returned.  Bounded: 1 GiB at most.
app:get("/until-closed", function(req)
  local s = string.rep("y", 64 * 1024)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  state.closed = { writes = 0 }
  for _ = 1, 16384 do
    local ok, err = out:write(s)
    if ok ~= true then
      state.closed.ok = ok == nil and "nil" or tostring(ok)
      state.closed.err = err
      return
    end
    state.closed.writes = state.closed.writes + 1
  end
  state.closed.ok = "never failed"
end)

-- n MiB as one plain response: queued whole, written as the client reads
app:get("/blob/<int:n>", function(req, n)
  return string.rep("z", n * 1024 * 1024)
end)

-- the same, made in longer than the send timeout (the loop stuck in C)
app:get("/late-blob/<int:n>", function(req, n)
  os.execute("sleep 1.5")
  return string.rep("z", n * 1024 * 1024)
end)

return app
