-- Waiting 0 means "let others run": moonlet.sleep(0), a wait under a
-- millisecond, q:get(0) and moonlet.after(0) in a loop each let the loop
-- poll for I/O before they run again, so others are served and a client
-- that leaves is noticed.
local H = require "helpers"
local cjson = require "cjson"

local function state(srv)
  return cjson.decode(H.get(srv, "/state").body)
end

describe("zero waits", function()
  local srv
  setup(function() srv = H.start("spec/apps/zero_wait.lua") end)
  teardown(function() srv:stop() end)

  for _, kind in ipairs { "sleep0", "sub-ms", "queue" } do
    it("serve 100 other requests beside a loop of " .. kind
      .. ", and see its client leave", function()
      local before = state(srv)
      local c = H.raw(srv.port, 5)
      c:send("GET /spin/" .. kind .. " HTTP/1.1\r\nHost: t\r\n\r\n")
      H.pause(0.1)
      assert.equal(200, H.get(srv, "/", { timeout = 2 }).status)
      local res, took = H.concurrent(srv, 100, "/", 5)
      for i = 1, 100 do assert.equal(200, res[i].status) end
      assert.is_true(took < 5, "100 requests took " .. took)
      c:close()
      local deadline, now = H.now() + 3
      repeat
        H.pause(0.05)
        now = state(srv)
      until now.cancelled > before.cancelled or H.now() > deadline
      assert.equal(before.cancelled + 1, now.cancelled)
      assert.is_true(now.turns - before.turns > 100, "it hardly ran")
    end)
  end

  it("serve others beside a timer that starts itself at 0 forever",
    function()
      assert.equal(200, H.get(srv, "/after0").status)
      assert.equal(200, H.get(srv, "/", { timeout = 2 }).status)
      local res, took = H.concurrent(srv, 100, "/", 5)
      for i = 1, 100 do assert.equal(200, res[i].status) end
      assert.is_true(took < 5, "100 requests took " .. took)
      assert.is_true(state(srv).afters > 100)
    end)

  it("see the client leave a HEAD of an event stream that sleeps 0",
    function()
      local before = state(srv).cancelled
      local c = H.raw(srv.port, 5)
      c:send("HEAD /events HTTP/1.1\r\nHost: t\r\n\r\n")
      local res = assert(H.read_response(c, { head = true }))
      assert.equal(200, res.status)
      c:close()
      local deadline, now = H.now() + 3
      repeat
        H.pause(0.05)
        now = state(srv).cancelled
      until now > before or H.now() > deadline
      assert.equal(before + 1, now)
    end)
end)
