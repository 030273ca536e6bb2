-- Server-sent events (req:sse): framing, bad events, keep-alive comments,
-- and a handler cancelled when its client leaves.  Side effects go in
-- 'marks' (GET /marks shows them).
local moonlet = require "moonlet"
local app = moonlet.app()

local marks = {}

app:get("/marks", function(req)
  return marks
end)

app:get("/events", function(req)
  local ev = req:sse{ headers = { ["X-Extra"] = "1" } }
  ev:send{ event = "greet", id = "7", retry = 1500, data = "hello" }
  ev:send{ data = "one\ntwo\nthree" }
  ev:send{ data = "a\r\nb\rc\n" }
  ev:send{ data = { k = "v" } }
  ev:send("alone")
  ev:send{ id = 8 }
  ev:comment("a note")
  ev:send{ data = "" }
end)

-- Each bad event, tried under pcall; the errors are sent as events.
app:get("/bad", function(req)
  local ev = req:sse()
  local cases = {
    { name = "event-newline", ev = { event = "a\nb", data = "x" } },
    { name = "event-cr", ev = { event = "a\rb", data = "x" } },
    { name = "id-newline", ev = { id = "1\n2", data = "x" } },
    { name = "id-nul", ev = { id = "1\0002", data = "x" } },
    { name = "retry-negative", ev = { retry = -1, data = "x" } },
    { name = "retry-float", ev = { retry = 1.5, data = "x" } },
    { name = "retry-string", ev = { retry = "10", data = "x" } },
    { name = "empty", ev = {} },
  }
  for _, case in ipairs(cases) do
    local ok, err = pcall(ev.send, ev, case.ev)
    ev:send{ event = case.name, data = ok and "no error" or tostring(err) }
  end
  local ok, err = pcall(ev.send, ev, nil)
  ev:send{ event = "nil", data = ok and "no error" or tostring(err) }
  ok, err = pcall(ev.comment, ev, "two\nlines")
  ev:send{ event = "comment-newline", data = ok and "no error" or tostring(err) }
end)

-- Silent for 0.7 s between two events: keep-alive comments fill the gap.
app:get("/quiet", function(req)
  local ev = req:sse{ keepalive = 0.2 }
  ev:send("first")
  moonlet.sleep(0.7)
  ev:send("second")
end)

-- An event every 0.05 s for 0.6 s: never silent long enough for one.
app:get("/busy", function(req)
  local ev = req:sse{ keepalive = 0.2 }
  for i = 1, 12 do
    ev:send(tostring(i))
    moonlet.sleep(0.05)
  end
end)

-- One event, a sleep, then a mark: a client that leaves first cancels it.
app:get("/gone/<name>", function(req, name)
  local ev = req:sse()
  ev:send("hi")
  moonlet.sleep(0.4)
  marks[name] = true
  ev:send("bye")
end)

return app
