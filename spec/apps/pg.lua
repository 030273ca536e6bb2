-- moonlet.pg against the throwaway cluster in PG_URL (spec/pg_spec.lua).
local moonlet = require "moonlet"
local pg = moonlet.pg
local app = moonlet.app()

local URL = os.getenv("PG_URL")
local null = moonlet.null

-- at load time: the app file's coroutine may wait
local loaded
do
  local db = assert(pg.connect(URL))
  assert(db:query("CREATE TABLE IF NOT EXISTS users (id serial PRIMARY KEY, "
    .. "name text UNIQUE, doc jsonb)"))
  assert(db:query("CREATE TABLE IF NOT EXISTS accounts (id int PRIMARY KEY, "
    .. "n int)"))
  assert(db:query("INSERT INTO accounts VALUES (1, 10) ON CONFLICT DO NOTHING"))
  loaded = db:query("SELECT 40 + 2 AS v")[1].v
  db:close()
end

local function kind(v)
  if v == null then return "null" end
  if math.type(v) then return math.type(v) end
  return type(v)
end

app:get("/load", function() return { v = loaded } end)

app:get("/types", function()
  local db = assert(pg.connect(URL))
  local rows = assert(db:query([[SELECT 1::int2 AS a, 2::int4 AS b,
    9007199254740993::int8 AS c, 1.5::float4 AS d, 2.25::float8 AS e,
    true AS f, false AS g, NULL::text AS h, '{"k":[1,2]}'::json AS i,
    '{"z":null}'::jsonb AS j, 12.340::numeric AS k, 'héllo' AS l,
    DATE '2024-02-29' AS m, 'NaN'::float8 AS n,
    '-9223372036854775808'::int8 AS o, 9223372036854775807::int8 AS p]]))
  local r, out = rows[1], { columns = rows.columns, n = #rows }
  for _, c in ipairs(rows.columns) do out[c] = kind(r[c]) end
  out.c_exact = r.c == 9007199254740993
  out.d_val, out.e_val, out.k_val, out.l_val, out.m_val =
    r.d, r.e, r.k, r.l, r.m
  out.i_k2 = r.i.k[2]
  out.j_null = r.j.z == null
  out.n_nan = r.n ~= r.n
  out.o_min = r.o == math.mininteger
  out.p_max = r.p == math.maxinteger
  return out
end)

app:get("/params", function()
  local db = assert(pg.connect(URL))
  local r = assert(db:query([[SELECT $1::text IS NULL AS a, $2::text IS NULL
    AS b, $3::bool AS c, $4::int8 AS d, $5::float8 AS e, $6::text AS f,
    $7::jsonb->'x'->>1 AS g, $8::float8 AS h]], nil, null, true,
    -9007199254740993, 0.1, "it's", { x = { "p", "q" } }, 1 / 0))[1]
  return { a = r.a, b = r.b, c = r.c, d_exact = r.d == -9007199254740993,
    e_exact = r.e == 0.1, f = r.f, g = r.g, h_inf = r.h == math.huge }
end)

app:get("/inject", function()
  local db = assert(pg.connect(URL))
  local evil = "x'); DROP TABLE users; --"
  local ins = assert(db:query(
    "INSERT INTO users (name, doc) VALUES ($1, $2) RETURNING id", evil,
    { evil = evil }))
  local back = assert(db:query("SELECT name, doc FROM users WHERE id = $1",
    ins[1].id))
  local n = assert(db:query("SELECT count(*) AS n FROM users"))
  local del = assert(db:query("DELETE FROM users WHERE name = $1", evil))
  return { name = back[1].name, doc = back[1].doc.evil,
    affected_insert = ins.affected, affected_delete = del.affected,
    still_there = n[1].n >= 1, columns = ins.columns }
end)

app:get("/error", function()
  local db = assert(pg.connect(URL))
  local r1, e1, c1 = db:query("SELEC 1")
  local r2, e2, c2 = db:query("SELECT 1/0")
  assert(db:query("INSERT INTO users (name) VALUES ('dup') "
    .. "ON CONFLICT DO NOTHING"))
  local r3, e3, c3 = db:query("INSERT INTO users (name) VALUES ('dup')")
  local nul_ok, nul_err = pcall(db.query, db, "SELECT 1\0; DROP TABLE x")
  local ok = db:query("SELECT 1 AS one")      -- usable after errors
  return { r1 = r1 == nil, e1 = e1, c1 = c1, e2 = e2, c2 = c2, e3 = e3,
    c3 = c3, after = ok[1].one, r2 = r2 == nil, r3 = r3 == nil,
    nul = not nul_ok and tostring(nul_err):match("NUL byte") ~= nil }
end)

app:get("/tx/<what>", function(_, what)
  local db = assert(pg.connect(URL))
  local before = db:query("SELECT n FROM accounts WHERE id = 1")[1].n
  local ok, err
  if what == "commit" then
    ok, err = db:transaction(function(tx)
      tx:query("UPDATE accounts SET n = n + 1 WHERE id = 1")
      return "done"
    end)
  elseif what == "raise" then
    ok, err = pcall(db.transaction, db, function(tx)
      tx:query("UPDATE accounts SET n = n + 100 WHERE id = 1")
      error("boom")
    end)
  else   -- a failed statement inside: COMMIT rolls back
    ok, err = db:transaction(function(tx)
      tx:query("UPDATE accounts SET n = n + 100 WHERE id = 1")
      tx:query("SELECT 1/0")
    end)
  end
  local after = db:query("SELECT n FROM accounts WHERE id = 1")[1].n
  return { before = before, after = after, ok = ok or false,
    err = err and tostring(err) or nil }
end)

-- 100 concurrent slow queries through a pool of 10
app:get("/crowd/<int:n>", function(_, n)
  local t0 = moonlet.now()
  local fns, errs = {}, 0
  for i = 1, n do
    fns[i] = function()
      local db, err = pg.connect(URL, { max = 10, timeout = 30 })
      if not db then errs = errs + 1; return err end
      local r, qerr = db:query("SELECT pg_sleep(0.1), $1::int AS i", i)
      db:close()
      if not r then errs = errs + 1; return qerr end
      return r[1].i
    end
  end
  local res = { moonlet.gather(table.unpack(fns)) }
  local sum = 0
  for _, v in ipairs(res) do sum = sum + (tonumber(v) or 0) end
  local total, idle = pg.stats(URL)
  return { sum = sum, errs = errs, seconds = moonlet.now() - t0,
    total = total, idle = idle }
end)

-- the pool's wait: max 1, held, a second connect times out
app:get("/wait", function()
  local url = URL .. "?application_name=waiter"
  local a = assert(pg.connect(url, { max = 1 }))
  local t0 = moonlet.now()
  local b, err = pg.connect(url, { max = 1, timeout = 0.3 })
  local waited = moonlet.now() - t0
  -- released meanwhile: the waiter gets it
  moonlet.spawn(function() moonlet.sleep(0.1); a:close() end)
  local c = pg.connect(url, { max = 1, timeout = 2 })
  local r = c and c:query("SELECT 7 AS v")
  return { b = b == nil, err = err, waited = waited, c = r and r[1].v }
end)

-- a slow query the client will not wait for
app:get("/sleep/<float:s>", function(req, s)
  local db = assert(pg.connect(URL .. "?application_name=sleeper"))
  local r, err = db:query("SELECT pg_sleep($1)", s)
  return { ok = r ~= nil, err = err }
end)

app:get("/pid", function()
  local db = assert(pg.connect(URL .. "?application_name=sleeper"))
  local r, err = db:query("SELECT pg_backend_pid() AS pid")
  if not r then return { err = err } end
  return { pid = r[1].pid, total = (pg.stats(URL .. "?application_name=sleeper")) }
end)

-- moonlet.timeout cancels the query; the same connection then works
app:get("/timeout", function()
  local db = assert(pg.connect(URL))
  local t0 = moonlet.now()
  local r, err = moonlet.timeout(0.2, function()
    return db:query("SELECT pg_sleep(5)")
  end)
  local took = moonlet.now() - t0
  local again, err2 = db:query("SELECT 5 AS v")
  local active = db:query([[SELECT count(*) AS n FROM pg_stat_activity
    WHERE query = 'SELECT pg_sleep(5)' AND state = 'active']])
  return { r = r == nil, err = err, took = took, again = again and again[1].v,
    err2 = err2, active = active[1].n }
end)

app:get("/listen", function()
  local db = assert(pg.connect(URL))
  local l = assert(db:listen("news"))
  local none, terr = l:receive(0.1)
  moonlet.spawn(function()
    local other = assert(pg.connect(URL))
    other:query("SELECT pg_notify('news', 'hello')")
    other:query("NOTIFY news, 'world'")
    other:close()
  end)
  local c1, p1 = l:receive(2)
  local c2, p2 = l:receive(2)
  l:close()
  local _, cerr = l:receive(0.1)
  return { none = none == nil, terr = terr, c1 = c1, p1 = p1, c2 = c2,
    p2 = p2, cerr = cerr }
end)

app:get("/connect", function(req)
  local db, err = pg.connect(req.query.url, { timeout = 0.5 })
  if db then db:close() end
  return { ok = db ~= nil, err = err }
end)

app:get("/query", function(req)
  local db, err = pg.connect(URL)
  if not db then return { err = err } end
  local r, qerr = db:query(req.query.sql or "SELECT 1 AS v")
  if not r then return { err = qerr } end
  return { v = r[1] and r[1].v }
end)

-- the handler ends without db:close(): the connection goes back anyway
app:get("/forget", function()
  local url = URL .. "?application_name=forget"
  local db = assert(pg.connect(url))
  db:query("SELECT 1")
  return { total = (pg.stats(url)) }
end)

app:get("/forgotten", function()
  local url = URL .. "?application_name=forget"
  local total, idle = pg.stats(url)
  return { total = total, idle = idle }
end)

-- the same SQL is parsed once per connection: a prepared statement
app:get("/prepared", function()
  local db = assert(pg.connect(URL .. "?application_name=prep", { max = 1 }))
  local q = "SELECT $1::int + 1 AS v"
  local a = db:query(q, 1)[1].v
  local b = db:query(q, 2)[1].v
  local n = db:query([[SELECT count(*) AS n FROM pg_prepared_statements
    WHERE statement = 'SELECT $1::int + 1 AS v']])[1].n
  assert(db:query("DEALLOCATE ALL"))
  local c, err = db:query(q, 3)
  local bad1, e1 = db:query("SELEC 1")
  local bad2, e2 = db:query("SELEC 1")      -- not cached by its failure
  return { a = a, b = b, n = n, c = c and c[1].v, err = err, e1 = e1,
    e2 = e2 }
end)

-- PostgreSQL killed under its connections: idle pooled ones (/warm), a
-- listener, a transaction and a query in flight
app:get("/warm", function()
  local fns = {}
  for i = 1, 5 do
    fns[i] = function()
      local db = assert(pg.connect(URL))
      local r = assert(db:query("SELECT pg_sleep(0.05), $1::int AS i", i))
      db:close()
      return r[1].i
    end
  end
  moonlet.gather(table.unpack(fns))
  local total, idle = pg.stats(URL)
  return { total = total, idle = idle }
end)

app:get("/listen_wait", function()
  local db = assert(pg.connect(URL))
  local l = assert(db:listen("never"))
  local _, err = l:receive(30)
  return { err = err }
end)

app:get("/tx_wait", function()
  local db = assert(pg.connect(URL .. "?application_name=txw"))
  local ok, err = pcall(db.transaction, db, function(tx)
    assert(tx:query("UPDATE accounts SET n = n WHERE id = 1"))
    local r, qerr = tx:query("SELECT pg_sleep(30)")
    if not r then error(qerr, 0) end
  end)
  return { ok = ok, err = tostring(err) }
end)

-- a timer's callback queries too
local from_timer
moonlet.after(0.05, function()
  local db = assert(pg.connect(URL))
  from_timer = db:query("SELECT 'tick' AS v")[1].v
end)
-- pipelined handles: many coroutines' queries on one connection
local function pipe_url(name) return URL .. "?application_name=" .. name end

-- runs fns at once, each with a pipelined handle from a pool of max
-- (whose connect times out fast: without sharing they would wait); each
-- fn(db) returns a table; 'order' is the order they finished in
local function piped(name, max, fns)
  local order, out = {}, {}
  local tasks = {}
  local warm = {}                      -- the pool's connections, open
  for i = 1, max do
    warm[i] = assert(pg.connect(pipe_url(name),
      { max = max, timeout = 10, pipeline = true }))
  end
  for i = 1, max do warm[i]:close() end
  for i, fn in ipairs(fns) do
    tasks[i] = function()
      local db, err = pg.connect(pipe_url(name),
        { max = max, timeout = 0.15, pipeline = true })
      if not db then out[i] = { cerr = err }; return end
      out[i] = fn(db)
      order[#order + 1] = i
      db:close()
    end
  end
  moonlet.gather(table.unpack(tasks))
  return out, order
end

app:get("/pipe/share", function()
  local fns = {}
  for i = 1, 10 do
    fns[i] = function(db)
      local r, err = db:query("SELECT pg_sleep(0.05), pg_backend_pid() AS pid, "
        .. "$1::int AS i", i)
      return r and { i = r[1].i, pid = r[1].pid } or { err = err }
    end
  end
  local t0 = moonlet.now()
  local out, order = piped("pipe1", 1, fns)
  return { out = out, order = order, seconds = moonlet.now() - t0,
    total = (pg.stats(pipe_url("pipe1"))) }
end)

app:get("/pipe/error", function()
  local function q(sql, ...)
    local args = table.pack(...)
    return function(db)
      local r, err, code = db:query(sql, table.unpack(args, 1, args.n))
      return r and { v = r[1].v } or { err = err, code = code }
    end
  end
  local out = piped("pipe2", 1, {
    q("SELECT pg_sleep(0.3), 1 AS v"),
    q("SELECT 1/0 AS v"),
    q("SELECT 3 AS v"),
    q("SELECT $1::int AS v FROM", 4),    -- the same bad SQL twice
    q("SELECT $1::int AS v FROM", 5),
    q("SELECT $1::int AS v", 6),         -- the same good SQL twice
    q("SELECT $1::int AS v", 7),
  })
  return out
end)

app:get("/pipe/kill", function()
  local fns = {}
  for i = 1, 4 do
    fns[i] = function(db)
      local r, err = db:query("SELECT pg_sleep(5), $1::int AS i", i)
      return { ok = r ~= nil, err = err }
    end
  end
  moonlet.spawn(function()
    local admin = assert(pg.connect(URL))
    for _ = 1, 100 do                    -- once all four are on the server
      local n = admin:query([[SELECT count(*) AS n FROM pg_stat_activity
        WHERE application_name = 'pipe3' AND state = 'active']])[1].n
      if n > 0 then break end
      moonlet.sleep(0.02)
    end
    moonlet.sleep(0.1)
    admin:query([[SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE application_name = 'pipe3']])
    admin:close()
  end)
  local t0 = moonlet.now()
  local out = piped("pipe3", 1, fns)
  local took = moonlet.now() - t0
  local db = assert(pg.connect(pipe_url("pipe3"), { max = 1, pipeline = true }))
  local r, err = db:query("SELECT 8 AS v")
  return { out = out, took = took, again = r and r[1].v, err = err }
end)

app:get("/pipe/cancel", function()
  local function pid_and(db, sql)
    local r, err, code = db:query(sql)
    return r and { v = r[1].v, pid = r[1].pid } or { err = err, code = code }
  end
  local out = piped("pipe4", 1, {
    function(db)
      return pid_and(db, "SELECT pg_sleep(0.4), 'a' AS v, pg_backend_pid() AS pid")
    end,
    function(db)
      local r, err = moonlet.timeout(0.1, function()
        return db:query("SELECT pg_sleep(0.2), 'b' AS v")
      end)
      local after = pid_and(db, "SELECT 'b2' AS v, pg_backend_pid() AS pid")
      return { r = r ~= nil, err = err, after = after }
    end,
    function(db)
      return pid_and(db, "SELECT 'c' AS v, pg_backend_pid() AS pid")
    end,
  })
  return out
end)

-- a pipelined handle that begins a transaction gets a connection of its own
app:get("/pipe/tx", function()
  local url = pipe_url("pipe5")
  local opts = { max = 2, timeout = 0.15, pipeline = true }
  local a = assert(pg.connect(url, { max = 2, timeout = 10, pipeline = true }))
  local b = assert(pg.connect(url, { max = 2, timeout = 10, pipeline = true }))
  local c = assert(pg.connect(url, opts))  -- shares a's or b's
  local pa = a:query("SELECT pg_backend_pid() AS p")[1].p
  local pb = b:query("SELECT pg_backend_pid() AS p")[1].p
  local pc = c:query("SELECT pg_backend_pid() AS p")[1].p
  moonlet.spawn(function() moonlet.sleep(0.05); a:close() end)
  local t1, t2, p1, p2, other
  local ok, err = c:transaction(function(tx)
    t1 = tx:query("SELECT now()::text AS t, pg_backend_pid() AS p")[1]
    moonlet.sleep(0.05)
    -- meanwhile another pipelined handle cannot share this connection
    local d = assert(pg.connect(url, opts))
    other = d:query("SELECT pg_backend_pid() AS p")[1].p
    d:close()
    t2 = tx:query("SELECT now()::text AS t, pg_backend_pid() AS p")[1]
  end)
  local l, lerr = b:listen("pipe_news")   -- LISTEN pins too
  local n1, nerr = b:query("NOTIFY pipe_news, 'x'")
  local ch, payload
  if l then ch, payload = l:receive(1) end
  return { shared = pc == pa or pc == pb, ok = ok, err = err,
    same_tx = t1 and t2 and t1.t == t2.t and t1.p == t2.p,
    other = other ~= (t1 and t1.p), lerr = lerr, payload = payload,
    l = l ~= nil, nerr = nerr, ch = ch }
end)

app:get("/timer", function() return { v = from_timer } end)

return app
