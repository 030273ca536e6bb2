-- Streamed responses (req:stream): timing, framing, errors mid-stream,
-- back-pressure, a writer cancelled when its client leaves, and writes
-- after that.  What a handler saw goes in 'state' (GET /state shows it),
-- read by the spec afterwards.
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

-- The handler and a task of its own write 1 MiB pieces to one stream at
-- once: both wait on a reader that lags, and both are woken.
app:get("/two-writers", function(req)
  local s, t = string.rep("a", 1024 * 1024), string.rep("b", 1024 * 1024)
  local out = req:stream{ ["Content-Type"] = "application/octet-stream" }
  local task = moonlet.spawn(function()
    for _ = 1, 8 do assert(out:write(t)) end
  end)
  for _ = 1, 8 do assert(out:write(s)) end
  task:wait()
end)

-- The stream /until-closed left behind, for /write-late.
local left

-- Writes 64 KiB pieces until a write fails, or the handler is cancelled
-- (its client left while a write waited): the <close> variable records
-- that.  Records what a failing write returned.  Bounded: 1 GiB at most.
app:get("/until-closed", function(req)
  local s = string.rep("y", 64 * 1024)
  local out = req:stream{ ["Content-Type"] = "text/plain" }
  local mark <close> = setmetatable({}, { __close = function()
    state.closed.ended = true
  end })
  left = out
  state.closed = { writes = 0 }
  for _ = 1, 16384 do
    local ok, err = out:write(s)
    if ok ~= true then
      state.closed.ok = ok == nil and "nil" or tostring(ok)
      state.closed.err = err
      moonlet.log("info", "until-closed: a write returned", err)
      return
    end
    state.closed.writes = state.closed.writes + 1
  end
  state.closed.ok = "never failed"
end)

-- A write to the stream /until-closed left, from another request.
app:get("/write-late", function(req)
  local ok, err = left:write("late")
  return { ok = ok == nil and "nil" or tostring(ok), err = err }
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
