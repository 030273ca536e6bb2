-- WebSocket with clients nobody here wrote: Node's `ws` (strict about
-- the protocol) and Python's `websockets`, against spec/apps/ws.lua;
-- 200 clients in one room; 10,000 connect/echo/close cycles that leave
-- no descriptor or memory behind.
local H = require "helpers"

local NODE = "env NODE_PATH=/usr/share/nodejs node spec/clients/ws_node.js"
local PYTHON = "/usr/bin/python3 spec/clients/ws_python.py"

-- Runs a client script; asserts its every line is "ok" (and that some
-- are); returns its output.
local function run_client(cmd)
  local f = assert(io.popen(cmd .. " 2>&1; echo \"exit $?\""))
  local out = f:read("a")
  f:close()
  local oks = 0
  for line in out:gmatch("[^\n]+") do
    if line:match("^not ok") then error(line .. "\n" .. out, 2) end
    if line:match("^ok ") then oks = oks + 1 end
  end
  assert(oks > 0 and out:match("exit 0"), "the client failed:\n" .. out)
  return out
end

local function fds(pid)
  local f = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
  local n = tonumber(f:read("a"))
  f:close()
  return n
end

local function rss_kb(pid)
  return tonumber(H.slurp("/proc/" .. pid .. "/status")
    :match("VmRSS:%s*(%d+)"))
end

describe("WebSocket with real clients", function()
  local srv
  setup(function() srv = H.start("spec/apps/ws.lua") end)
  teardown(function() srv:stop() end)

  it("passes Node's ws: handshake, lengths, fragments, deflate, codes",
    function()
      run_client(("timeout 60 %s %d protocol"):format(NODE, srv.port))
    end)

  it("passes Python's websockets", function()
    run_client(("timeout 60 %s %d"):format(PYTHON, srv.port))
  end)

  it("delivers one broadcast to 200 clients in one room within 2 s",
    function()
      run_client(("timeout 60 %s %d room"):format(NODE, srv.port))
    end)

  -- Under a sanitizer or valgrind (make test-asan, check-leaks) memory
  -- is held on purpose and each cycle is slow: fewer cycles, fds only.
  local checked = H.wrap == "" and not H.bin:find("asan")

  it("leaves no descriptor or memory behind after 10,000 cycles",
    function()
      local n = checked and 10000 or 300
      run_client(("timeout 120 %s %d cycles %d"):format(NODE, srv.port,
        checked and 1000 or 100))
      H.pause(0.3)
      local fd0, rss0 = fds(srv.pid), rss_kb(srv.pid)
      run_client(("timeout 300 %s %d cycles %d"):format(NODE, srv.port, n))
      H.pause(0.5)                  -- the last lingering closes
      assert.equal(fd0, fds(srv.pid))
      local grown = rss_kb(srv.pid) - rss0
      assert.is_true(not checked or grown < 2048,
        "RSS grew by " .. grown .. " KiB")
    end)
end)

describe("moonlet.websocket.connect over TLS", function()
  local srv, dir, node_pid, port
  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("sh spec/tls/make-certs.sh " .. dir))
    local out = dir .. "/node.out"
    os.execute(("env NODE_PATH=/usr/share/nodejs node "
      .. "spec/clients/wss_node_server.js %s/server.pem %s/server.key "
      .. ">%s 2>&1 & echo $! >%s/node.pid"):format(dir, dir, out, dir))
    node_pid = tonumber(H.slurp(dir .. "/node.pid"))
    local deadline = H.now() + 10
    repeat
      port = tonumber(H.slurp(out):match("listening (%d+)"))
      if not port then H.pause(0.05) end
    until port or H.now() > deadline
    assert(port, "the wss server did not start: " .. H.slurp(out))
    srv = H.start("spec/apps/ws.lua")
  end)
  teardown(function()
    srv:stop()
    if node_pid then os.execute("kill " .. node_pid) end
    os.execute("rm -rf " .. H.quote(dir))
  end)

  local function via(query)
    return H.get(srv, "/client-tls?url=wss://127.0.0.1:" .. port .. "/"
      .. query).body
  end

  it("talks to Node's ws over TLS, verifying its certificate", function()
    assert.equal("got 100009", via("&ca=" .. dir .. "/ca.pem"))
    assert.equal("got 100009", via("&verify=0"))
  end)

  it("refuses a certificate it cannot verify", function()
    assert.matches("^connect failed: tls: .*verify failed", via(""))
  end)
end)
