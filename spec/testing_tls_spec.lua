--- moonlet.testing's {tls = true} (API §13): the app served over TLS with a
-- throwaway certificate that the client's requests, websockets and
-- streams trust, and stubs that still answer the app's https calls.
assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath

local moonlet = require "moonlet"
local testing = require "moonlet.testing"

local function make_app()
  local app = moonlet.app()
  app:get("/info", function(req)
    return { scheme = req.scheme, version = req.tls and req.tls.version }
  end)
  app:get("/fetch", function(req)
    local res, err = moonlet.http.get("https://api.example.com/thing")
    return res and res.body or ("error " .. tostring(err))
  end)
  app:get("/echo", function(req)
    local ws = req:websocket()
    while true do
      local msg, kind = ws:receive()
      if not msg then return end
      ws:send(msg, kind)
    end
  end)
  app:get("/events", function(req)
    local ev = req:sse()
    ev:send("one")
    moonlet.sleep(0.05)
    ev:send("two")
  end)
  return app
end

describe("testing.client with {tls = true}", function()
  local client

  after_each(function()
    if client then client:close() end
    client = nil
  end)

  it("serves the app over TLS, verified", function()
    client = testing.client(make_app(), { tls = true })
    assert.matches("^https://127%.0%.0%.1:%d+$", client.url)
    local res = client:get("/info")
    assert.status(200, res)
    local info = res:json()
    assert.equal("https", info.scheme)
    assert.matches("^TLSv1%.[23]$", info.version)
    -- a client that trusts the system's store only refuses the
    -- throwaway certificate: it is verified, not merely encrypted
    local _, err = client:run(moonlet.http.get, client.url .. "/info")
    assert.matches("^tls: certificate verify failed", err)
  end)

  it("answers the app's https calls from a stub", function()
    client = testing.client(make_app(), { tls = true })
    local stub = client:stub_http("https://api.example.com/",
      { status = 200, body = "stubbed" })
    assert.equal("stubbed", client:get("/fetch").body)
    assert.equal(1, stub.calls)
  end)

  it("opens wss:// websockets and reads streams over TLS", function()
    client = testing.client(make_app(), { tls = true })
    local ws = client:websocket("/echo")
    assert.is_true(ws:send("hello"))
    assert.same({ "hello", "text" }, { ws:receive() })
    ws:close()
    local got = {}
    for ev in client:stream("/events") do
      got[#got + 1] = ev.data
    end
    assert.same({ "one", "two" }, got)
  end)

  it("serves plain HTTP again to the next client", function()
    client = testing.client(make_app(), { tls = true })
    client:close()
    client = testing.client(make_app())
    assert.matches("^http://", client.url)
    assert.equal("http", client:get("/info"):json().scheme)
  end)
end)
