-- GET /sleep/<n> blocks for n seconds, but in a pool thread: the handler
-- waits in moonlet.thread.run, and the loop goes on serving GET / at once.
-- Use it for work that cannot yield: a blocking C library, a long compute.
local moonlet = require "moonlet"
local app = moonlet.app()

-- Runs in a pool thread's own Lua state, so it may use only globals (Lua's
-- standard libraries there) and its arguments.  Blocks by polling the wall
-- clock: /proc/uptime on Linux (hundredths), os.time elsewhere (seconds).
local function block(seconds)
  local function now()
    local f = io.open("/proc/uptime")
    local t = f and f:read("n")
    if f then f:close() end
    return t or os.time()
  end
  local stop = now() + seconds
  while now() < stop do end
  return seconds
end

app:get("/sleep/<int:n>", function(req, n)
  if n > 60 then
    moonlet.abort(400, "a minute is enough")
  end
  moonlet.thread.run(block, n)
  return ("Slept for %d seconds (in a thread)"):format(n)
end)

app:get("/", function(req)
  return "Try /sleep/2, then / while it runs."
end)

return app
