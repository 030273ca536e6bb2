-- Handlers in coroutines: waits suspend only their own request.
local H = require "helpers"
local cjson = require "cjson"

describe("coroutine handlers", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/coro.lua", { args = { "--log-level", "debug" } })
  end)
  teardown(function() srv:stop() end)

  it("serves 200 requests sleeping 0.5 s each in well under 2 s", function()
    local results, took = H.concurrent(srv, 200, "/nap/0.5")
    for _, res in ipairs(results) do
      assert.equal(200, res.status)
      assert.equal("napped", res.body)
    end
    assert.is_true(took >= 0.45, "too fast: " .. took)
    assert.is_true(took < 2.0, "took " .. took)
  end)

  it("lets the app file and its modules wait while loading", function()
    local v = cjson.decode(H.get(srv, "/loaded").body)
    assert.equal("slow module loaded", v.module)
    assert.is_number(v.loaded_at)
  end)

  it("passes waits through the user's coroutine.wrap", function()
    local v = cjson.decode(H.get(srv, "/wrap").body)
    assert.same({ 1, 2, 3 }, v.items)
    assert.is_true(v.took >= 0.14, "the generator did not sleep")
  end)

  it("passes waits through coroutine.resume, values both ways", function()
    local v = cjson.decode(H.get(srv, "/resume").body)
    assert.equal(2, v.first)
    assert.equal(20, v.second)
    assert.equal("dead", v.status)
  end)

  it("keeps errors of a wrapped coroutine catchable", function()
    local v = cjson.decode(H.get(srv, "/wrap-error").body)
    assert.is_false(v.ok)
    assert.matches("inner failure", v.err)
  end)

  it("refuses a bare coroutine.yield with a clear error", function()
    assert.equal(500, H.get(srv, "/bare-yield").status)
    assert.truthy(H.wait_for_log(srv, "coroutine.yield%(%) outside"))
    assert.equal(200, H.get(srv, "/thread").status)
  end)

  it("gives Lua's own error for a wait inside a C call", function()
    assert.equal(500, H.get(srv, "/sort-wait").status)
    assert.truthy(H.wait_for_log(srv, "across a C call"))
  end)

  it("reuses coroutines across requests", function()
    local a = H.get(srv, "/thread").body
    local b = H.get(srv, "/thread").body
    assert.matches("^thread:", a)
    assert.equal(a, b)
  end)

  it("has a loop clock in seconds", function()
    local v = cjson.decode(H.get(srv, "/now").body)
    assert.equal("float", v.type)
    assert.is_true(v.elapsed >= 0.09 and v.elapsed < 0.5, v.elapsed)
  end)

  it("lets after hooks and errorhandlers wait too", function()
    local res = H.get(srv, "/waits/ok")
    assert.equal(200, res.status)
    assert.equal("ok", res.body)
    assert.equal("yes", res.headers["x-handler"])
    assert.equal("after", res.headers["x-waited"])
    res = H.get(srv, "/waits/raise")
    assert.equal(500, res.status)
    assert.matches("^handled after a wait: .*late boom", res.body)
    assert.equal("after", res.headers["x-waited"])
    assert.truthy(H.wait_for_log(srv, "GET /waits/raise HTTP/1%.1 %(from [^\n]*%): .-late boom\n"
      .. "stack traceback:.-coro%.lua:%d+"))
  end)

  it("passes a route's values to a handler that waits", function()
    local v = cjson.decode(H.get(srv, "/waits/values/7/x%20y/2.5").body)
    assert.same({ a = 7, b = "x y", c = 2.5, path = "/waits/values/7/x y/2.5" },
      v)
  end)

  it("refuses a negative sleep with an error", function()
    assert.equal(500, H.get(srv, "/sleep-bad").status)
    assert.truthy(H.wait_for_log(srv, "duration out of range"))
  end)

  it("cancels a sleeping handler when its client leaves", function()
    local c = H.raw(srv.port)
    c:send("GET /mark/gone HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.1)
    c:close()
    assert.truthy(H.wait_for_log(srv, "client gone: cancelled", 1.0))
    H.pause(0.6)      -- past the handler's sleep
    local v = cjson.decode(H.get(srv, "/finished/gone").body)
    assert.is_false(v.finished)
    -- and one that stays runs to the end
    assert.equal("done", H.get(srv, "/mark/stay").body)
    assert.is_true(cjson.decode(H.get(srv, "/finished/stay").body).finished)
  end)
end)
