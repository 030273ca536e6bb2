--- moonlet.testing's client:websocket (API §13, §15): a WebSocket to the
-- app under test, moonlet.websocket.connect underneath, and receive
-- timeouts on the virtual clock.
assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath

local moonlet = require "moonlet"
local testing = require "moonlet.testing"

local function make_app()
  local app = moonlet.app()
  app:get("/echo", function(req)
    local ws = req:websocket{ protocols = { "v1" } }
    while true do
      local msg, kind = ws:receive()
      if not msg then return end
      ws:send(msg, kind)
    end
  end)
  app:get("/idle", function(req)
    local ws = req:websocket()
    local msg, err = ws:receive(30)
    ws:send(tostring(msg) .. " " .. tostring(err))
  end)
  app:get("/plain", function() return "not a websocket" end)
  return app
end

describe("client:websocket", function()
  it("talks to the app: text, binary, its subprotocol, the close",
    function()
      local client = testing.client(make_app())
      local ws = client:websocket("/echo", { protocols = { "v0", "v1" } })
      assert.equal("v1", ws.protocol)
      assert.is_true(ws:send("hello"))
      assert.same({ "hello", "text" }, { ws:receive() })
      assert.is_true(ws:send("\0\1", "binary"))
      assert.same({ "\0\1", "binary" }, { ws:receive() })
      assert.is_true(ws:ping("x"))
      assert.is_true(ws:close(1000))
      local msg, err, code = ws:receive()
      assert.same({ nil, "closed", 1000 }, { msg, err, code })
    end)

  it("raises when the path is not a WebSocket", function()
    local client = testing.client(make_app())
    assert.has_error(function() client:websocket("/plain") end,
      "moonlet.testing: websocket /plain: bad response")
  end)

  it("moves the app's receive timeout with the virtual clock", function()
    local client = testing.client(make_app(), { virtual_time = true })
    local ws = client:websocket("/idle")
    local t0 = os.clock()
    client.clock:advance(30)
    assert.same({ "nil timeout", "text" }, { ws:receive() })
    assert.is_true(os.clock() - t0 < 5)
  end)
end)
