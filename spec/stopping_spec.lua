-- Stopping (SIGTERM): no keep-alive request is lost on the way, and
-- moonlet.thread.run jobs that never return are stopped with the rest.
local H = require "helpers"
local socket = require "socket"

describe("a graceful stop", function()
  -- n keep-alive connections take turns sending GET / while SIGTERM
  -- comes; each goes on until told "close", then reconnects, until the
  -- server refuses.  Returns answers, failures, refused connects.
  local function load_through_stop(srv, n)
    local conns, answered, failed, refused = {}, 0, {}, 0
    for i = 1, n do conns[i] = H.raw(srv.port, 3) end
    os.execute(("(sleep 0.3; kill -TERM %d) &"):format(srv.pid))
    local deadline = H.now() + 8
    while next(conns) and H.now() < deadline do
      for i, c in pairs(conns) do
        local ok, err = c:send("GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        local res, rerr = H.read_response(c)
        if not ok or not res or res.status ~= 200 then
          failed[#failed + 1] = tostring(err or rerr or res.status)
          c:close()
          conns[i] = nil
        else
          answered = answered + 1
          if res.headers.connection == "close" then
            c:close()
            c = socket.tcp()
            c:settimeout(3)
            if c:connect("127.0.0.1", srv.port) then
              conns[i] = c
            else
              refused = refused + 1
              conns[i] = nil
            end
          end
        end
      end
    end
    return answered, failed, refused
  end

  it("loses no keep-alive request to the stop", function()
    local srv = H.start("spec/apps/stopping.lua")
    finally(function() srv:stop() end)
    local answered, failed, refused = load_through_stop(srv, 8)
    assert.same({}, failed)
    assert.is_true(answered > 8, "answered " .. answered)
    assert.equal(8, refused)
    assert.equal(0, srv:kill("0", 5))   -- its exit, without a 2nd signal
  end)

  for _, route in ipairs { "/job/spin", "/job/swallow" } do
    it("stops a thread.run job in " .. route .. " once the grace is over,"
      .. " then exits 0", function()
      local srv = H.start("spec/apps/stopping.lua",
        { args = { "--grace", "0.5" } })
      finally(function() srv:stop() end)
      local c = H.raw(srv.port, 5)
      c:send("GET " .. route .. " HTTP/1.1\r\nHost: t\r\n\r\n")
      H.pause(0.3)
      local t0 = H.now()
      assert.equal(0, srv:kill("TERM", 5))
      assert.is_true(H.now() - t0 < 3, "took " .. (H.now() - t0))
      c:close()
    end)
  end

  it("exits with status 3 when a thread.run job is stuck in C, saying so",
    function()
      local srv = H.start("spec/apps/stopping.lua",
        { args = { "--grace", "0.3" } })
      finally(function() srv:stop() end)
      local c = H.raw(srv.port, 5)
      c:send("GET /job/c HTTP/1.1\r\nHost: t\r\n\r\n")
      H.pause(0.3)
      local t0 = H.now()
      assert.equal(3, srv:kill("TERM", 3.5))
      assert.is_true(H.now() - t0 >= 1.2, "took " .. (H.now() - t0))
      assert.truthy(srv:log():find("1 moonlet.thread.run job(s) still "
        .. "running 1.0 s after the grace period ended", 1, true))
      c:close()
    end)
end)
