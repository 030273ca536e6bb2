-- Tasks and futures through a real server (spec/apps/tasks.lua): spawn and
-- wait, cancellation (explicit and by a client leaving), gather, first,
-- timeout, futures shared by requests.
local H = require "helpers"
local cjson = require "cjson"

describe("tasks", function()
  local srv

  local function call(path)
    local res = H.get(srv, path)
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function marks()
    return call("/marks").marks
  end

  --- Polls until marks()[name] is set, for at most 'timeout' s.
  local function wait_mark(name, timeout)
    local deadline = H.now() + (timeout or 2)
    repeat
      local m = marks()[name]
      if m ~= nil then return m end
      H.pause(0.02)
    until H.now() > deadline
    return nil
  end

  setup(function()
    srv = H.start("spec/apps/tasks.lua")
  end)
  teardown(function() srv:stop() end)

  describe("spawn and wait", function()
    it("returns every value of the task, nils included", function()
      local v = call("/multi")
      assert.equal(5, v.n)
      assert.equal(1, v.values[1])
      assert.equal(2, v.values[2])
      assert.equal(3, v.values[3])
      assert.equal(cjson.null, v.values[4])
      assert.equal("last", v.values[5])
      assert.is_true(v.done)
      assert.same({ value = 42 }, call("/immediate"))
    end)

    it("re-raises the task's error with its position", function()
      local v = call("/wait-error")
      assert.is_false(v.ok)
      assert.matches("tasks%.lua:%d+: task went wrong", v.err)
      assert.is_false(v.ok2)
      assert.equal(v.err, v.err2)
    end)

    it("gives nil, 'timeout' on wait(t) while the task runs on", function()
      local v = call("/wait-timeout/wt")
      assert.is_nil(v.a)
      assert.equal("timeout", v.b)
      assert.is_false(v.done_then)
      assert.equal("finished", v.later)
      assert.is_true(marks().wt)
    end)

    it("cancels a sleeping task: nil, 'cancelled', its sleep never ends",
      function()
        local v = call("/cancel/cs")
        assert.is_true(v.was)
        assert.is_nil(v.a)
        assert.equal("cancelled", v.b)
        assert.is_false(v.again)
        assert.is_true(v.done)
        H.pause(0.5)
        assert.is_nil(marks().cs)
      end)

    it("cancels a task's outbound request: the callee is cancelled too",
      function()
        local v = call("/cancel/ci?after=0.15&port=" .. srv.port)
        assert.equal("cancelled", v.b)
        assert.is_true(marks()["ci-callee-started"])
        H.pause(0.8)
        local m = marks()
        assert.is_nil(m.ci)               -- the task did not go on
        assert.is_nil(m["ci-callee"])     -- nor did the callee: client gone
      end)
  end)

  describe("structured concurrency", function()
    it("cancels a handler's task when its client disconnects", function()
      local c = H.raw(srv.port)
      c:send("GET /child/gone HTTP/1.1\r\nHost: t\r\n\r\n")
      assert.truthy(wait_mark("gone-started", 2))
      c:close()
      H.pause(1.2)
      local m = marks()
      assert.is_nil(m.gone)
      assert.is_nil(m["gone-handler"])
    end)

    -- Its own server: this once crashed the server (a use after free in
    -- ml_sched_cancel), which must not take the other tests with it.
    it("cancels the task a handler waits on (wait, gather) when its "
      .. "client disconnects", function()
        local own = H.start("spec/apps/tasks.lua")
        finally(function() own:stop() end)
        for _, how in ipairs { "wait", "gather" } do
          local c = H.raw(own.port)
          c:send(("GET /child/w%s?how=%s HTTP/1.1\r\nHost: t\r\n\r\n")
            :format(how, how))
          H.pause(0.15)
          c:close()
          H.pause(0.8)
          local m = cjson.decode(H.get(own, "/marks").body).marks
          assert.is_true(m["w" .. how .. "-started"])
          assert.is_nil(m["w" .. how])
          assert.is_nil(m["w" .. how .. "-handler"])
        end
      end)

    it("lets a task outlive a handler that returned normally", function()
      assert.equal("returned", H.get(srv, "/detached/kept").body)
      assert.is_nil(marks().kept)
      assert.is_true(wait_mark("kept", 2))
    end)

    it("lets a task outlive a handler whose client left after the answer",
      function()
        local c = H.raw(srv.port)
        c:send("GET /detached/kept2 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert.equal("returned", H.read_response(c).body)
        c:close()
        assert.is_true(wait_mark("kept2", 2))
      end)

    it("runs spawn at load time and in timers", function()
      local m = call("/marks")
      assert.equal(42, m.load_result)
      assert.is_true(wait_mark("load-detached", 2))
      assert.equal("from a timer", wait_mark("timer-waited", 2))
      assert.is_true(wait_mark("timer-detached", 2))
    end)
  end)

  describe("gather", function()
    it("returns each first result in argument order", function()
      local v = call("/gather")
      assert.same({ "a", "b", "c" }, v.results)
      assert.is_true(v.elapsed >= 0.19, v.elapsed)
    end)

    it("runs its functions concurrently", function()
      local v = call("/gather-timing")
      assert.is_true(v.elapsed >= 0.29, v.elapsed)
      assert.is_true(v.elapsed < 0.6, v.elapsed)
    end)

    it("raises the first error in argument order once all settled",
      function()
        local v = call("/gather-error/ge")
        assert.is_false(v.ok)
        assert.matches("tasks%.lua:%d+: first in order", v.err)
        assert.is_true(v.elapsed >= 0.29, v.elapsed)  -- waited for all
        assert.is_true(marks().ge)
      end)

    it("returns nothing for no functions", function()
      assert.equal(0, call("/gather-empty").n)
    end)
  end)

  describe("first", function()
    it("returns the fastest one's results and cancels the others",
      function()
        local v = call("/first/fi")
        assert.equal("fast", v.a)
        assert.equal(2, v.b)
        assert.is_true(v.elapsed < 0.28, v.elapsed)
        H.pause(0.6)
        local m = marks()
        assert.is_nil(m["fi-1"])
        assert.is_nil(m["fi-3"])
      end)

    it("raises the fastest one's error", function()
      local v = call("/first-error")
      assert.is_false(v.ok)
      assert.matches("tasks%.lua:%d+: fastest failed", v.err)
    end)
  end)

  describe("timeout", function()
    it("returns fn's results when it is fast", function()
      local v = call("/timeout-fast")
      assert.equal(3, v.n)
      assert.same({ "one", "two", 3 }, v.values)
    end)

    it("gives nil, 'timeout' when fn is slow, and cancels it", function()
      local v = call("/timeout-slow/ts")
      assert.is_nil(v.a)
      assert.equal("timeout", v.b)
      assert.is_true(v.elapsed >= 0.09 and v.elapsed < 0.35, v.elapsed)
      H.pause(0.5)
      assert.is_nil(marks().ts)
    end)

    it("re-raises an error in fn", function()
      local v = call("/timeout-error")
      assert.is_false(v.ok)
      assert.matches("tasks%.lua:%d+: inside timeout", v.err)
    end)
  end)

  describe("futures", function()
    -- n waiters on raw connections, parked on /future/get/<name>
    local function waiters(name, n, query)
      local conns = {}
      for i = 1, n do
        conns[i] = H.raw(srv.port)
        conns[i]:send(("GET /future/get/%s%s HTTP/1.1\r\nHost: t\r\n\r\n")
          :format(name, query or ""))
      end
      assert.equal(n, wait_mark(name .. "-waiters", 2))
      return conns
    end

    it("wakes several waiters with the same values", function()
      call("/future/new/f1")
      local conns = waiters("f1", 3)
      local v = call("/future/set/f1?v=hello")
      assert.is_false(v.ok)
      assert.matches("future already resolved", v.err)
      assert.is_false(v.ok2)
      assert.matches("future already resolved", v.err2)
      for _, c in ipairs(conns) do
        local res = cjson.decode(H.read_response(c).body)
        c:close()
        assert.is_true(res.ok)
        assert.equal(3, res.n)
        assert.same({ "hello", 2, true }, res.values)
        assert.is_true(res.done)
      end
      -- a waiter coming after the set gets the values at once
      local late = call("/future/get/f1")
      assert.same({ "hello", 2, true }, late.values)
    end)

    it("wakes waiters in one handler, spawned tasks", function()
      local v = call("/future/local")
      for i = 1, 3 do
        assert.same({ n = 2, values = { "x", 7 } }, v.got[i])
      end
      assert.same({ "x", 7 }, v.after)
    end)

    it("gives nil, 'timeout' on get(t)", function()
      call("/future/new/f2")
      local t0 = H.now()
      local v = call("/future/get/f2?t=0.1")
      assert.is_true(v.ok)
      assert.equal(cjson.null, v.values[1])
      assert.equal("timeout", v.values[2])
      assert.is_false(v.done)
      assert.is_true(H.now() - t0 < 1)
    end)

    it("raises the failure in get, and refuses a second resolve",
      function()
        call("/future/new/f3")
        local conns = waiters("f3", 2)
        local v = call("/future/fail/f3")
        assert.is_false(v.ok)
        assert.matches("future already resolved", v.err)
        for _, c in ipairs(conns) do
          local res = cjson.decode(H.read_response(c).body)
          c:close()
          assert.is_false(res.ok)
          assert.equal("it failed", res.values[1])
        end
        local late = call("/future/get/f3")
        assert.is_false(late.ok)
        assert.equal("it failed", late.values[1])
      end)

    it("stays usable for the others when a waiter's client leaves",
      function()
        call("/future/new/f4")
        local conns = waiters("f4", 3)
        conns[2]:close()
        H.pause(0.2)
        call("/future/set/f4?v=still")
        for _, i in ipairs { 1, 3 } do
          local res = cjson.decode(H.read_response(conns[i]).body)
          conns[i]:close()
          assert.same({ "still", 2, true }, res.values)
        end
        assert.equal(200, H.get(srv, "/marks").status)
      end)
  end)
end)
