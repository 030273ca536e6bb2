-- --workers: which worker answers, slow requests, and (when SINGLE_LOG is
-- set) a {single = true} timer that appends its worker's pid to that file.
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/who", function(req)
  return moonlet.worker.id .. " " .. moonlet.worker.pid
end)

app:get("/sleep/<float:s>", function(req, s)
  moonlet.sleep(s)
  return "slept " .. moonlet.worker.pid
end)

local log = os.getenv("SINGLE_LOG")
if log then
  moonlet.every(0.05, function()
    local f = assert(io.open(log, "a"))
    f:write(moonlet.worker.pid, "\n")
    f:close()
  end, { single = true })
end

return app
