-- moonlet.pg against a real PostgreSQL started for this file (initdb as
-- the postgres user into a temporary directory, TCP on a free port).
local helpers = require "helpers"
local stores = require "stores"
local cjson = require "cjson"
local socket = require "socket"

describe("moonlet.pg", function()
  local pg, srv

  local function get(path)
    local res = helpers.get(srv, path, { timeout = 30 })
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function esc(s)
    return (s:gsub("[^%w%-_.~]", function(c)
      return ("%%%02X"):format(c:byte())
    end))
  end

  setup(function()
    pg = stores.postgres()
    srv = helpers.start("spec/apps/pg.lua", { env = "PG_URL=" .. pg.url })
  end)

  teardown(function()
    if srv then srv:stop() end
    if pg then pg:stop() end
  end)

  it("queries at app load and in a timer callback", function()
    assert.equal(42, get("/load").v)
    local v
    for _ = 1, 100 do
      v = get("/timer").v
      if v then break end
      socket.sleep(0.02)
    end
    assert.equal("tick", v)
  end)

  it("turns PostgreSQL types into Lua values", function()
    local t = get("/types")
    assert.same({ "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l",
      "m", "n", "o", "p" }, t.columns)
    assert.equal("integer", t.a)
    assert.equal("integer", t.b)
    assert.equal("integer", t.c)
    assert.is_true(t.c_exact)            -- int8 beyond 2^53, exact
    assert.equal("float", t.d)
    assert.equal(1.5, t.d_val)
    assert.equal(2.25, t.e_val)
    assert.equal("boolean", t.f)
    assert.equal("boolean", t.g)
    assert.equal("null", t.h)            -- NULL is moonlet.null
    assert.equal("table", t.i)
    assert.equal(2, t.i_k2)
    assert.is_true(t.j_null)             -- JSON null inside jsonb too
    assert.equal("string", t.k)
    assert.equal("12.340", t.k_val)      -- numeric keeps its digits
    assert.equal("héllo", t.l_val)
    assert.equal("2024-02-29", t.m_val)
    assert.is_true(t.n_nan)
    assert.equal("integer", t.o)         -- int8's ends, exact
    assert.is_true(t.o_min)
    assert.is_true(t.p_max)
  end)

  it("sends parameters apart from the SQL text", function()
    local p = get("/params")
    assert.is_true(p.a)                  -- nil
    assert.is_true(p.b)                  -- moonlet.null
    assert.is_true(p.c)
    assert.is_true(p.d_exact)
    assert.is_true(p.e_exact)            -- floats round-trip
    assert.equal("it's", p.f)
    assert.equal("q", p.g)               -- a table goes as JSON
    assert.is_true(p.h_inf)
  end)

  it("keeps SQL injection attempts as data", function()
    local r = get("/inject")
    assert.equal("x'); DROP TABLE users; --", r.name)
    assert.equal("x'); DROP TABLE users; --", r.doc)
    assert.is_true(r.still_there)
    assert.equal(1, r.affected_insert)
    assert.equal(1, r.affected_delete)
    assert.same({ "id" }, r.columns)
    assert.equal("1", pg:psql("SELECT count(*) FROM pg_tables "
      .. "WHERE tablename = 'users'"))
  end)

  it("returns server errors with their SQLSTATE", function()
    local e = get("/error")
    assert.is_true(e.r1)
    assert.matches('^ERROR: syntax error at or near "SELEC"', e.e1)
    assert.equal("42601", e.c1)
    assert.equal("ERROR: division by zero", e.e2)
    assert.equal("22012", e.c2)
    assert.matches("^ERROR: duplicate key value", e.e3)
    assert.equal("23505", e.c3)
    assert.equal(1, e.after)
    assert.is_true(e.nul)                -- SQL with a NUL byte: raises
  end)

  it("commits a transaction and rolls back one that raises", function()
    local c = get("/tx/commit")
    assert.equal("done", c.ok)
    assert.equal(c.before + 1, c.after)
    local r = get("/tx/raise")
    assert.is_false(r.ok)
    assert.matches("boom", r.err)
    assert.equal(r.before, r.after)
    local f = get("/tx/fail")
    assert.is_false(f.ok)
    assert.matches("rolled back", f.err)
    assert.equal(f.before, f.after)
  end)

  it("prepares each statement once per connection", function()
    local p = get("/prepared")
    assert.equal(2, p.a)
    assert.equal(3, p.b)
    assert.equal(1, p.n)                 -- one statement, made once
    assert.equal(4, p.c)                 -- after DEALLOCATE ALL, again
    assert.is_nil(p.err)
    assert.matches("syntax error", p.e1)
    assert.equal(p.e1, p.e2)
  end)

  it("serves 100 concurrent slow queries through a pool of 10", function()
    local r = get("/crowd/100")
    assert.equal(5050, r.sum)
    assert.equal(0, r.errs)
    assert.is_true(r.total <= 10)
    -- 100 x 0.1 s through 10 connections: about 1 s, not 10 and not 0.1
    assert.is_true(r.seconds >= 0.9, r.seconds)
    assert.is_true(r.seconds < 6, r.seconds)
    local n = tonumber(pg:psql("SELECT count(*) FROM pg_stat_activity "
      .. "WHERE datname = 'app' AND application_name = ''"))
    assert.is_true(n <= 10, n)
  end)

  it("times out a connect that waits for a full pool", function()
    local w = get("/wait")
    assert.is_true(w.b)
    assert.equal("timeout", w.err)
    assert.is_true(w.waited >= 0.25 and w.waited < 2, w.waited)
    assert.equal(7, w.c)                 -- a released connection goes on
  end)

  it("cancels the query on the server when the client leaves", function()
    local before = get("/pid")
    local c = helpers.raw(srv.port)
    c:send("GET /sleep/30 HTTP/1.1\r\nHost: t\r\n\r\n")
    local sleeping
    for _ = 1, 100 do
      sleeping = pg:psql("SELECT count(*) FROM pg_stat_activity WHERE "
        .. "application_name = 'sleeper' AND state = 'active'")
      if sleeping == "1" then break end
      socket.sleep(0.02)
    end
    assert.equal("1", sleeping)
    c:close()
    local gone
    for _ = 1, 100 do                    -- within 2 s, not 30
      gone = pg:psql("SELECT count(*) FROM pg_stat_activity WHERE "
        .. "application_name = 'sleeper' AND state = 'active'")
      if gone == "0" then break end
      socket.sleep(0.02)
    end
    assert.equal("0", gone)
    local after = get("/pid")              -- the same backend, reused
    assert.equal(before.pid, after.pid)
    assert.equal(1, after.total)
  end)

  it("cancels a query that moonlet.timeout abandons", function()
    local t = get("/timeout")
    assert.is_true(t.r)
    assert.equal("timeout", t.err)
    assert.is_true(t.took < 1.5, t.took)
    assert.equal(5, t.again)             -- drained, then reused
    assert.equal(0, t.active)
  end)

  it("delivers LISTEN/NOTIFY notifications", function()
    local l = get("/listen")
    assert.is_true(l.none)
    assert.equal("timeout", l.terr)
    assert.equal("news", l.c1)
    assert.equal("hello", l.p1)
    assert.equal("news", l.c2)
    assert.equal("world", l.p2)
    assert.equal("closed", l.cerr)
  end)

  it("pipelines many coroutines' queries on one connection, in order",
    function()
    local r = get("/pipe/share")
    assert.equal(1, r.total)
    local pid = r.out[1].pid
    for i = 1, 10 do
      assert.same({ i = i, pid = pid }, r.out[i])   -- each its own result
      assert.equal(i, r.order[i])                    -- in the order sent
    end
    assert.is_true(r.seconds < 3, r.seconds)
  end)

  it("keeps an error in a pipelined query to that query", function()
    local r = get("/pipe/error")
    assert.same({ v = 1 }, r[1])
    assert.same({ err = "ERROR: division by zero", code = "22012" }, r[2])
    assert.same({ v = 3 }, r[3])
    assert.equal("42601", r[4].code)
    assert.same(r[4], r[5])
    assert.same({ v = 6 }, r[6])
    assert.same({ v = 7 }, r[7])
  end)

  it("fails every pipelined query of a killed backend, then recovers",
    function()
    local r = get("/pipe/kill")
    for i = 1, 4 do
      assert.same({ ok = false, err = "closed" }, r.out[i])
    end
    assert.is_true(r.took < 4, r.took)
    assert.equal(8, r.again)
  end)

  it("drops only a cancelled pipelined query's result", function()
    local r = get("/pipe/cancel")
    assert.equal("a", r[1].v)                -- not cancelled on the server
    assert.is_false(r[2].r)
    assert.equal("timeout", r[2].err)
    assert.same({ v = "b2", pid = r[1].pid }, r[2].after)
    assert.same({ v = "c", pid = r[1].pid }, r[3])
  end)

  it("drops COPY TO STDOUT's rows and refuses COPY FROM STDIN", function()
    assert.same({}, get("/query?sql=" .. esc("COPY (SELECT 1) TO STDOUT")))
    assert.matches("COPY FROM STDIN is not supported",
      get("/query?sql=" .. esc("COPY accounts FROM STDIN")).err)
    assert.equal(2, get("/query?sql=" .. esc("SELECT 2 AS v")).v)
  end)

  it("pins a pipelined handle for a transaction and LISTEN", function()
    local r = get("/pipe/tx")
    assert.is_true(r.shared)
    assert.is_true(r.ok)
    assert.is_true(r.same_tx)
    assert.is_true(r.other)
    assert.is_nil(r.lerr)
    assert.equal("pipe_news", r.ch)      -- its own NOTIFY, read with
    assert.equal("x", r.payload)         -- the NOTIFY's result
  end)

  it("gives the connection back when the handler forgets to", function()
    assert.equal(1, get("/forget").total)
    local f = get("/forgotten")
    assert.equal(1, f.total)
    assert.equal(1, f.idle)
  end)

  it("reports connection failures as short strings", function()
    local port = stores.free_port()
    assert.same({ ok = false, err = "connection refused" },
      get("/connect?url=" .. esc(("postgresql://a:b@127.0.0.1:%d/x")
        :format(port))))
    assert.matches("^auth: password authentication failed",
      get("/connect?url=" .. esc(pg.url:gsub(":pw@", ":nope@"))).err)
    assert.matches("^dns: ", get("/connect?url=" ..
      esc("postgresql://a:b@nowhere.invalid:5432/x")).err)
    assert.matches("^bad url: ", get("/connect?url=" .. esc("nonsense x")).err)
  end)

  it("times out against a server that never answers", function()
    local silent = assert(socket.bind("127.0.0.1", 0))
    local _, port = silent:getsockname()
    local t0 = socket.gettime()
    local r = get("/connect?url=" .. esc(("postgresql://a:b@127.0.0.1:%d/x")
      :format(port)))
    silent:close()
    assert.same({ ok = false, err = "timeout" }, r)
    assert.is_true(socket.gettime() - t0 < 3)
  end)

  it("replaces a pooled connection whose backend was terminated", function()
    local first = get("/pid")
    assert(pg:psql(("SELECT pg_terminate_backend(%d)"):format(first.pid)))
    socket.sleep(0.1)
    local second = get("/pid")
    assert.is_number(second.pid)
    assert.are_not.equal(first.pid, second.pid)
  end)

  it("survives PostgreSQL killed under idle, busy and listening "
    .. "connections, and recovers", function()
    local warm = get("/warm")
    assert.is_true(warm.idle >= 2, warm.idle)
    local function open(path) return helpers.start_get(srv, path, 30) end
    local result = helpers.finish_json
    local sleeper, listener, tx = open("/sleep/30"), open("/listen_wait"),
      open("/tx_wait")
    local busy
    for _ = 1, 100 do                  -- until all three are on the server
      busy = pg:psql([[SELECT count(*) FROM pg_stat_activity WHERE
        (application_name IN ('sleeper', 'txw') AND state = 'active')
        OR query = 'LISTEN "never"']])
      if busy == "3" then break end
      socket.sleep(0.05)
    end
    assert.equal("3", busy)
    pg:kill()
    assert.same({ ok = false, err = "closed" }, result(sleeper))
    assert.same({ err = "closed" }, result(listener))
    assert.same({ ok = false, err = "closed" }, result(tx))
    local down = get("/query?sql=" .. esc("SELECT 1 AS v"))
    assert.equal("connection refused", down.err)   -- an error, not a crash
    assert.is_nil(srv:status())
    assert(pg:start())
    local up
    for _ = 1, 50 do
      up = get("/query?sql=" .. esc("SELECT 2 AS v"))
      if up.v == 2 then break end
      socket.sleep(0.1)
    end
    assert.equal(2, up.v)
    warm = get("/warm")
    assert.is_true(warm.total >= 1 and warm.total <= 10, warm.total)
    assert.equal("hello", get("/listen").p1)
    assert.equal(200, helpers.get(srv, "/load").status)
  end)
end)
