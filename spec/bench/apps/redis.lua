-- bench: GET /redis answers the value of the key "bench" from Redis
-- (BENCH_REDIS_PORT); every request's GET shares the worker's connection.
local moonlet = require "moonlet"
local app = moonlet.app()

local url = ("redis://127.0.0.1:%s"):format(
  os.getenv("BENCH_REDIS_PORT") or "6379")

app:get("/redis", function(req)
  local r, err = moonlet.redis.connect(url)
  if not r then
    return err, 502
  end
  local v, gerr = r:get("bench")
  if not v then
    return gerr, 502
  end
  return v
end)

return app
