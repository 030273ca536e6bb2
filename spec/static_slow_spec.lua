-- app:static finds its files off the loop: a file on a slow disk holds up
-- its own request only.  The slow disk is spec/support/slow_disk.c,
-- preloaded into a real server: realpath and open of "slow-disk" paths
-- take 1.5 s.
local H = require "helpers"

local DELAY = 1.5

describe("static files on a slow disk", function()
  local srv, dir, shim

  lazy_setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. H.quote(dir)))
    shim = dir .. "/slow_disk.so"
    assert(os.execute(("cc -shared -fPIC -O2 -o %s spec/support/slow_disk.c"
      .. " -ldl"):format(H.quote(shim))), "cannot build the slow disk")
    for name, text in pairs({ ["slow-disk.txt"] = "slow body\n",
                              ["fast.txt"] = "fast body\n" }) do
      local f = assert(io.open(dir .. "/" .. name, "w"))
      f:write(text)
      f:close()
    end
    srv = H.start("spec/apps/static_slow.lua", { env = ("STATIC_DIR=%s "
      .. "SLOW_DISK_MS=%d LD_PRELOAD=%s"):format(H.quote(dir),
      DELAY * 1000, H.quote(shim)) })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if dir then os.execute("rm -rf " .. H.quote(dir)) end
  end)

  it("a slow open does not stall other requests", function()
    local slow = H.raw(srv.port, 10)
    local t0 = H.now()
    slow:send("GET /files/slow-disk.txt HTTP/1.1\r\nHost: t\r\n"
      .. "Connection: close\r\n\r\n")
    H.pause(0.1)                        -- the slow one is on its way
    local res = H.get(srv, "/hello")
    assert.equal("hello", res.body)
    res = H.get(srv, "/files/fast.txt")
    assert.equal("fast body\n", res.body)
    assert.is_true(H.now() - t0 < DELAY - 0.3,
      "answered only after the slow open")
    local reply = slow:receive("*a")
    slow:close()
    assert.matches("^HTTP/1%.1 200", reply)
    assert.matches("slow body\n$", reply)
    assert.is_true(H.now() - t0 >= DELAY - 0.1)
  end)

  it("a client that leaves during a slow open: the server carries on",
     function()
    local slow = H.raw(srv.port, 10)
    slow:send("GET /files/slow-disk.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.1)
    slow:close()                        -- the lookup is given up
    H.pause(DELAY + 0.2)                -- and its thread comes back
    assert.equal("fast body\n", H.get(srv, "/files/fast.txt").body)
    assert.equal("hello", H.get(srv, "/hello").body)
  end)

  -- The file is found while the loop is held, and the client resets
  -- its connection meanwhile: the loop sees both in one turn, the found
  -- file first, and its first write fails with the connection gone.
  it("a client that resets while its file is found: the server carries on",
     function()
    local slow = H.raw(srv.port, 10)
    slow:send("GET /files/slow-disk.txt HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.1)
    local hold = H.raw(srv.port, 10)
    hold:send(("GET /hold/%d HTTP/1.1\r\nHost: t\r\n"
      .. "Connection: close\r\n\r\n"):format((DELAY + 0.6) * 1000))
    H.pause(DELAY + 0.1)                -- the file is found, unseen
    slow:setoption("linger", { on = true, timeout = 0 })
    slow:close()                        -- RST while the loop is held
    assert.matches("held$", hold:receive("*a"))
    hold:close()
    assert.equal("fast body\n", H.get(srv, "/files/fast.txt").body)
    assert.equal("hello", H.get(srv, "/hello").body)
  end)
end)
