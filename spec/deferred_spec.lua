-- apps/deferred.lua: /simple waits on a future until /simple/fire
-- resolves it, a second fire is refused, /simple/reset starts again
-- (through moonlet.testing, in this Lua state), and a waiter whose
-- client left harms nothing (a real server, whose log says so).
local H = require "helpers"
assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
local testing = require "moonlet.testing"

describe("apps/deferred.lua", function()
  local client

  setup(function() client = testing.client("apps/deferred.lua") end)

  before_each(function()
    assert.status(200, client:get("/simple/reset"))
  end)

  it("holds /simple until a fire releases every waiter", function()
    local waiters = {}
    for i = 1, 3 do waiters[i] = client:start{ path = "/simple" } end
    assert.is_false(waiters[1].done())        -- in its handler, waiting
    local fire = client:get("/simple/fire?text=hello")
    assert.status(200, fire)
    assert.matches("^Fired", fire.body)
    for i = 1, 3 do
      local res = waiters[i].wait()
      assert.status(200, res)
      assert.equal("<i><u>hello</u></i>", res.body)
      assert.matches("^text/html", res.headers["content-type"])
    end
    -- one that comes after the fire has its answer at once
    assert.equal("<i><u>hello</u></i>", client:get("/simple").body)
  end)

  it("says a second fire was already fired, keeping the first", function()
    assert.status(200, client:get("/simple/fire?text=first"))
    local again = client:get("/simple/fire?text=second")
    assert.status(200, again)
    assert.matches("Already fired", again.body)
    assert.equal("<i><u>first</u></i>", client:get("/simple").body)
  end)

  it("waits again after a reset, for the next fire", function()
    client:get("/simple/fire?text=old")
    assert.matches("^Reset", client:get("/simple/reset").body)
    local w = client:start{ path = "/simple" }
    assert.is_false(w.done())
    assert.matches("^Fired", client:get("/simple/fire?text=new").body)
    assert.equal("<i><u>new</u></i>", w.wait().body)
  end)

  it("keeps its waiters through a reset before any fire", function()
    local w = client:start{ path = "/simple" }
    client:get("/simple/reset")
    client:get("/simple/fire?text=kept")
    assert.equal("<i><u>kept</u></i>", w.wait().body)
  end)

  it("escapes the text and wants one", function()
    client:get("/simple/fire?text=%3Cb%3E%26")
    assert.equal("<i><u>&lt;b&gt;&amp;</u></i>", client:get("/simple").body)
    client:get("/simple/reset")
    local res = client:get("/simple/fire")
    assert.status(400, res)
    assert.matches("text", res.body)
  end)
end)

describe("apps/deferred.lua on a real server", function()
  local srv

  --- Starts GET path on its own connection, not read yet.
  local function start(path)
    local c = H.raw(srv.port)
    c:send(("GET %s HTTP/1.1\r\nHost: t\r\n\r\n"):format(path))
    return c
  end

  local function finish(c)
    local res = assert(H.read_response(c))
    c:close()
    return res
  end

  --- True when nothing has come on c within s seconds.
  local function silent(c, s)
    c:settimeout(s)
    local data, err = c:receive(1)
    c:settimeout(5)
    return data == nil and err == "timeout"
  end

  setup(function()
    srv = H.start("apps/deferred.lua", { args = { "--log-level", "debug" } })
  end)
  teardown(function() srv:stop() end)

  it("fires as usual after a waiter's client left", function()
    local gone = start("/simple")
    local stays = start("/simple")
    assert.is_true(silent(stays, 0.2))
    local _, before = srv:log():gsub("client gone: cancelled", "")
    gone:close()
    local cancelled = false
    for _ = 1, 50 do                   -- its wait ended: a new log line
      local _, n = srv:log():gsub("client gone: cancelled", "")
      if n > before then cancelled = true break end
      H.pause(0.02)
    end
    assert.is_true(cancelled)
    local fire = H.get(srv, "/simple/fire?text=still")
    assert.equal(200, fire.status)
    assert.matches("^Fired", fire.body)
    assert.equal("<i><u>still</u></i>", finish(stays).body)
    assert.equal("<i><u>still</u></i>", H.get(srv, "/simple").body)
  end)
end)
