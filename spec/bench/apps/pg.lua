-- bench: TechEmpower's "single query" (GET /db: one random row of
-- world by primary key, as JSON) and "multiple queries" (GET /queries:
-- 20 of them, one after the other) on PostgreSQL (BENCH_PG_URL), through
-- a pool of 10 connections, as the peers have.  The handles are
-- pipelined: once all 10 are lent, requests share them, and the queries
-- of many requests go out together on one connection.
local moonlet = require "moonlet"
local app = moonlet.app()

local url = os.getenv("BENCH_PG_URL")
local opts = { max = 10, pipeline = true }
local random = math.random
local SQL = "SELECT id, randomnumber FROM world WHERE id = $1"

app:get("/db", function(req)
  local db, err = moonlet.pg.connect(url, opts)
  if not db then return err, 502 end
  local rows, qerr = db:query(SQL, random(1, 10000))
  db:close()
  if not rows then return qerr, 502 end
  return rows[1]
end)

app:get("/queries", function(req)
  local db, err = moonlet.pg.connect(url, opts)
  if not db then return err, 502 end
  local out = {}
  for i = 1, 20 do
    local rows, qerr = db:query(SQL, random(1, 10000))
    if not rows then db:close() return qerr, 502 end
    out[i] = rows[1]
  end
  db:close()
  return out
end)

return app
