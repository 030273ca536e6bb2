-- moonlet.after / moonlet.every / timer:stop().
local H = require "helpers"
local cjson = require "cjson"

describe("timers", function()
  local srv
  local function counts()
    return cjson.decode(H.get(srv, "/counts").body)
  end
  setup(function() srv = H.start("spec/apps/timers.lua") end)
  teardown(function() srv:stop() end)

  it("fires after once, repeats every, and stops", function()
    H.pause(0.5)
    local c = counts()
    assert.equal(1, c.after)
    assert.is_true(c.every >= 5, "every fired " .. c.every .. " times")
    assert.equal(2, c.stopped)
    assert.is_nil(c.never)
    H.pause(0.2)
    local c2 = counts()
    assert.equal(1, c2.after)
    assert.is_true(c2.every > c.every)
    assert.equal(2, c2.stopped)
  end)

  it("logs an error in a callback and keeps the timer going", function()
    H.pause(0.2)
    assert.is_true(counts().failing >= 3)
    assert.truthy(H.wait_for_log(srv, "timer callback failed: "
      .. "spec/apps/timers.lua:%d+: timer boom"))
    assert.truthy(H.wait_for_log(srv, "stack traceback"))
  end)

  it("runs callbacks in coroutines that may wait", function()
    assert.is_true(counts().slept >= 1)
  end)

  it("lets a handler start a timer that outlives the request", function()
    local v = cjson.decode(H.get(srv, "/later/0.1").body)
    assert.is_true(v.active)
    H.pause(0.3)
    local c = counts()
    assert.is_number(c.later)
    assert.is_true(c.later - v.now >= 0.09)
  end)

  it("checks its arguments", function()
    local v = cjson.decode(H.get(srv, "/bad").body)
    assert.matches("number expected", v.err)
    assert.matches("function expected", v.err2)
  end)
end)
