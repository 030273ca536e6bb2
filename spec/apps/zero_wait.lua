-- Handlers and timers that wait 0 (or under a millisecond) in a loop, for
-- zero_wait_spec.lua: each must let the loop poll between turns.
local moonlet = require "moonlet"
local app = moonlet.app()

local state = { turns = 0, cancelled = 0, afters = 0 }

app:get("/", function() return "ok" end)

app:get("/state", function() return state end)

-- Spins until its client leaves, waiting 0 in one of several ways.
app:get("/spin/<kind>", function(req, kind)
  local q = moonlet.queue()
  local guard <close> = setmetatable({}, { __close = function()
    state.cancelled = state.cancelled + 1
  end })
  while true do
    state.turns = state.turns + 1
    if kind == "sleep0" then
      moonlet.sleep(0)
    elseif kind == "sub-ms" then
      moonlet.sleep(0.0004)
    else
      q:get(0)
    end
  end
end)

-- A timer that starts itself again at once, forever.
app:get("/after0", function()
  local function again()
    state.afters = state.afters + 1
    moonlet.after(0, again)
  end
  moonlet.after(0, again)
  return "started"
end)

-- An event stream that sleeps 0 between events: for HEAD, send writes
-- nothing, so only the loop's polling can see the client leave.
app:get("/events", function(req)
  local guard <close> = setmetatable({}, { __close = function()
    state.cancelled = state.cancelled + 1
  end })
  local ev = req:sse()
  while true do
    ev:send{ data = "x" }
    moonlet.sleep(0)
  end
end)

return app
