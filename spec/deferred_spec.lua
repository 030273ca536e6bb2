-- apps/deferred.lua through a real server: /simple waits on a future
-- until /simple/fire resolves it, a second fire is refused, /simple/reset
-- starts again, and a waiter whose client left harms nothing.
local H = require "helpers"

describe("apps/deferred.lua", function()
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

  before_each(function()
    assert.equal(200, H.get(srv, "/simple/reset").status)
  end)

  it("holds /simple until a fire releases every waiter", function()
    local waiters = {}
    for i = 1, 3 do waiters[i] = start("/simple") end
    assert.is_true(silent(waiters[1], 0.3))   -- not answered yet
    local fire = H.get(srv, "/simple/fire?text=hello")
    assert.equal(200, fire.status)
    assert.matches("^Fired", fire.body)
    for i = 1, 3 do
      local res = finish(waiters[i])
      assert.equal(200, res.status)
      assert.equal("<i><u>hello</u></i>", res.body)
      assert.matches("^text/html", res.headers["content-type"])
    end
    -- one that comes after the fire has its answer at once
    assert.equal("<i><u>hello</u></i>", H.get(srv, "/simple").body)
  end)

  it("says a second fire was already fired, keeping the first", function()
    assert.equal(200, H.get(srv, "/simple/fire?text=first").status)
    local again = H.get(srv, "/simple/fire?text=second")
    assert.equal(200, again.status)
    assert.matches("Already fired", again.body)
    assert.equal("<i><u>first</u></i>", H.get(srv, "/simple").body)
  end)

  it("waits again after a reset, for the next fire", function()
    H.get(srv, "/simple/fire?text=old")
    assert.matches("^Reset", H.get(srv, "/simple/reset").body)
    local w = start("/simple")
    assert.is_true(silent(w, 0.3))
    assert.matches("^Fired", H.get(srv, "/simple/fire?text=new").body)
    assert.equal("<i><u>new</u></i>", finish(w).body)
  end)

  it("keeps its waiters through a reset before any fire", function()
    local w = start("/simple")
    assert.is_true(silent(w, 0.1))
    H.get(srv, "/simple/reset")
    H.get(srv, "/simple/fire?text=kept")
    assert.equal("<i><u>kept</u></i>", finish(w).body)
  end)

  it("escapes the text and wants one", function()
    H.get(srv, "/simple/fire?text=%3Cb%3E%26")
    assert.equal("<i><u>&lt;b&gt;&amp;</u></i>", H.get(srv, "/simple").body)
    H.get(srv, "/simple/reset")
    local res = H.get(srv, "/simple/fire")
    assert.equal(400, res.status)
    assert.matches("text", res.body)
  end)

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
