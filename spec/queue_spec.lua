-- Queues (moonlet.queue) through a real server (spec/apps/queue.lua):
-- order, timeouts, a full queue, several getters, bad arguments, and
-- waiters whose clients leave, with every item accounted for.
local H = require "helpers"
local cjson = require "cjson"

describe("queues", function()
  local srv

  local function call(path)
    local res = H.get(srv, path)
    assert.equal(200, res.status, res.body)
    return cjson.decode(res.body)
  end

  local function info(name)
    return call("/q/" .. name .. "/info")
  end

  --- Polls info(name) until field == want, for at most 2 s.
  local function wait_info(name, field, want)
    local v
    for _ = 1, 100 do
      v = info(name)[field]
      if v == want then return v end
      H.pause(0.02)
    end
    return v
  end

  local function start(path) return H.start_get(srv, path) end
  local finish = H.finish_json

  --- True when nothing has come on c within s seconds.
  local function silent(c, s)
    c:settimeout(s)
    local data, err = c:receive(1)
    c:settimeout(5)
    assert.is_nil(data, "an answer came")
    return err == "timeout"
  end

  setup(function()
    srv = H.start("spec/apps/queue.lua", { args = { "--log-level", "debug" } })
  end)
  teardown(function() srv:stop() end)

  it("gives items first in, first out", function()
    assert.same({ order = { "a", "b", "c", "d" }, size = 0 }, call("/fifo"))
  end)

  it("gives nil, 'timeout' when nothing comes in time", function()
    local v = call("/timeout")
    assert.equal("nil", v.v)
    assert.equal("timeout", v.err)
    assert.is_true(v.waited >= 0.09 and v.waited < 0.5, v.waited)
  end)

  it("raises for put(nil) and a bad maxsize", function()
    local v = call("/errors")
    assert.matches("cannot put nil", v.put_nil)
    for _, k in ipairs { "zero", "negative", "float", "string" } do
      assert.matches("maxsize must be a positive integer", v[k])
    end
    assert.equal("no error", v.unbounded)
    assert.equal("no error", v.one)
    assert.equal(0, v.size)
  end)

  it("makes put wait while full, until a getter takes an item", function()
    call("/q/full/new/1")
    assert.is_true(call("/q/full/put/a").waited < 0.1)
    local putter = start("/q/full/put/b")
    assert.is_true(silent(putter, 0.3))     -- still waiting
    assert.equal(1, info("full").putters)
    assert.is_true(info("full").full)
    assert.equal("a", call("/q/full/get").v)
    local waited = finish(putter).waited
    assert.is_true(waited >= 0.25 and waited < 2, waited)
    assert.equal("b", call("/q/full/get").v)
    assert.equal(0, info("full").size)
  end)

  it("serves several waiting getters in the order they came", function()
    call("/q/order/new/0")
    local getters = {}
    for i = 1, 3 do
      getters[i] = start("/q/order/get")
      assert.equal(i, wait_info("order", "getters", i))
    end
    for i = 1, 3 do call("/q/order/put/" .. i) end
    for i = 1, 3 do
      assert.equal(tostring(i), finish(getters[i]).v)
    end
    assert.equal(0, info("order").size)
  end)

  it("drops a getter's place when its get times out", function()
    call("/q/late/new/0")
    local v = call("/q/late/get?timeout=0.1")
    assert.equal("timeout", v.err)
    assert.equal(0, info("late").getters)
    call("/q/late/put/kept")
    assert.same({ "kept" }, info("late").items)
  end)

  it("gives the next put to the next getter when one leaves", function()
    call("/q/leave/new/0")
    local g1 = start("/q/leave/get")
    assert.equal(1, wait_info("leave", "getters", 1))
    local g2 = start("/q/leave/get")
    assert.equal(2, wait_info("leave", "getters", 2))
    g1:close()
    assert.equal(1, wait_info("leave", "getters", 1))
    call("/q/leave/put/x")
    assert.equal("x", finish(g2).v)
    local i = info("leave")
    assert.equal(0, i.size)
    assert.same({ "x" }, i.got)
  end)

  it("drops a waiting putter's item when its client leaves", function()
    call("/q/putgone/new/1")
    call("/q/putgone/put/a")
    local p = start("/q/putgone/put/b")
    assert.equal(1, wait_info("putgone", "putters", 1))
    p:close()
    assert.equal(0, wait_info("putgone", "putters", 0))
    assert.equal("a", call("/q/putgone/get").v)
    assert.equal("timeout", call("/q/putgone/get?timeout=0.1").err)
  end)

  it("puts an item handed to a cancelled getter back in front", function()
    assert.same({ size = 2, items = { "x", "y" } }, call("/handoff/one"))
  end)

  it("passes an item handed to a cancelled getter to the next", function()
    assert.same({ second = "x", size = 0, items = {} }, call("/handoff/two"))
  end)

  it("loses no item when a getter leaves as a put reaches it", function()
    local rounds, kept, taken = 20, 0, 0
    for i = 1, rounds do                     -- a queue of its own each
      local name = "race" .. i
      call("/q/" .. name .. "/new/0")
      local g = start("/q/" .. name .. "/get")
      assert.equal(1, wait_info(name, "getters", 1))
      local p = start("/q/" .. name .. "/put/" .. i)
      g:close()                              -- in the same step
      finish(p)
      assert.equal(0, wait_info(name, "getters", 0))
      H.pause(0.02)
      local v = info(name)
      -- the getter took it (and answered a closed socket), or it is back
      assert.equal(1, #v.got + v.size, cjson.encode(v))
      assert.equal(tostring(i), v.got[1] or v.items[1])
      if v.size == 1 then kept = kept + 1 else taken = taken + 1 end
    end
    assert.equal(rounds, kept + taken)
  end)
end)
