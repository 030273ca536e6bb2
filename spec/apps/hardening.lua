-- Runaway handlers and timers, for spec/hardening_spec.lua.
local moonlet = require "moonlet"
local app = moonlet.app()

local timer_runs = 0

app:get("/", function() return "ok" end)

-- Spins s seconds of the loop's time (not CPU time: a loaded machine
-- would stretch that past --cpu-budget, which counts wall time).
app:get("/spin/<float:s>", function(req, s)
  local t0 = moonlet.now()
  while moonlet.now() - t0 < s do end
  return "spun"
end)

app:get("/block/<float:s>", function(req, s)   -- stuck in a C function
  os.execute(("sleep %.3f"):format(s))
  return "blocked"
end)

app:get("/forever", function()
  local n = 0
  while true do n = n + 1 end
end)

app:get("/swallow", function()   -- a pcall in the hot loop
  while true do pcall(function() for _ = 1, 1e6 do end end) end
end)

-- Loops inside coroutines the handler made itself.
local function spin_inside(s)
  local t0 = moonlet.now()
  while moonlet.now() - t0 < s do end
  return "spun inside"
end

app:get("/nested-spin/<float:s>", function(req, s)
  return coroutine.wrap(function()
    local r = spin_inside(s)   -- not a tail call: the traceback names it
    return r
  end)()
end)

app:get("/nested-forever", function()
  local co = coroutine.create(function() while true do end end)
  return coroutine.wrap(function()   -- two levels down
    coroutine.resume(co)
    return "never"
  end)()
end)

app:get("/nested-swallow", function()   -- pcall around each coroutine
  while true do
    pcall(coroutine.wrap(function() for _ = 1, 1e6 do end end))
  end
end)

-- Stuck in C code, where no hook runs: opening a FIFO nobody writes to.
app:get("/stuck-in-c", function()
  io.open(os.getenv("HARDENING_FIFO"), "r")
  return "never"
end)

app:get("/hog", function()
  local t = {}
  for i = 1, 1e8 do t[i] = ("x"):rep(100) .. i end
  return "never"
end)

app:get("/spin-timer", function()
  moonlet.after(0.05, function()
    timer_runs = timer_runs + 1
    while true do end
  end)
  return "started"
end)

app:get("/timer-runs", function() return { runs = timer_runs } end)

return app
