--- moonlet.testing's client: close(), a fresh app per client, client.log,
-- client:stream().
local H = require "helpers"

assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
local moonlet = require "moonlet"
local testing = require "moonlet.testing"

local function app_dir(files)
  local path, dir = H.write_app(files["app.lua"])
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  return path, dir
end

local TICKER = [[
local moonlet = require "moonlet"
local model = require "model"
TICKS = TICKS or { timer = 0, task = 0 }
moonlet.every(0.02, function() TICKS.timer = TICKS.timer + 1 end)
moonlet.spawn(function()
  while true do moonlet.sleep(0.02) TICKS.task = TICKS.task + 1 end
end)
local app = moonlet.app()
app:get("/model", function() return model.name end)
app:get("/boom", function() error("kaboom in the app") end)
return app
]]

describe("client:close()", function()
  local a, b, dir_a, dir_b
  setup(function()
    a, dir_a = app_dir { ["app.lua"] = TICKER,
      ["model.lua"] = 'return { name = "model of a" }' }
    b, dir_b = app_dir { ["app.lua"] = [[
local moonlet = require "moonlet"
local model = require "model"
local app = moonlet.app()
app:get("/model", function() return model.name end)
return app
]], ["model.lua"] = 'return { name = "model of b" }' }
  end)
  teardown(function()
    os.execute("rm -rf " .. H.quote(dir_a) .. " " .. H.quote(dir_b))
  end)

  local function idle(client, s)
    client:run(function() moonlet.sleep(s) end)
  end

  it("stops the app's timers and tasks", function()
    local client = testing.client(a)
    idle(client, 0.15)
    assert.is_true(TICKS.timer > 0, "timer " .. TICKS.timer)
    assert.is_true(TICKS.task > 0, "task " .. TICKS.task)
    client:close()
    local timer, task = TICKS.timer, TICKS.task
    moonlet.run(function() moonlet.sleep(0.15) end)
    assert.equal(timer, TICKS.timer)
    assert.equal(task, TICKS.task)
  end)

  it("a new client sees neither the previous app's timers nor its modules",
    function()
      local first = testing.client(a)
      assert.equal("model of a", first:get("/model").body)
      local second = testing.client(b)     -- closes the first
      local timer = TICKS.timer
      idle(second, 0.15)
      assert.equal(timer, TICKS.timer)
      assert.equal("model of b", second:get("/model").body)
      second:close()
    end)

  it("captures the server's log in client.log", function()
    local client = testing.client(a)
    assert.equal(500, client:get("/boom").status)
    assert.matches("%[error%] GET /boom[^\n]*kaboom in the app", client.log)
    assert.matches("stack traceback", client.log)
    client:close()
  end)
end)

describe("client:stream()", function()
  local app = moonlet.app()
  app:get("/text", function(req)
    local out = req:stream{ ["Content-Type"] = "text/plain" }
    for i = 1, 3 do
      out:write("piece " .. i .. "\n")
      moonlet.sleep(1)
    end
  end)
  app:get("/events", function(req)
    local ev = req:sse()
    for i = 1, 3 do
      ev:send{ event = "tick", id = i, data = { n = i } }
      moonlet.sleep(10)
    end
  end)

  it("reads a streamed body as it arrives", function()
    local client = testing.client(app, { virtual_time = true })
    local s = client:stream("/text")
    assert.equal(200, s.status)
    assert.equal("text/plain", s.headers["Content-Type"])
    assert.equal("piece 1\n", s:read())
    client.clock:advance(1)
    assert.equal("piece 2\n", s:read())
    client.clock:advance(1)
    assert.equal("piece 3\n", s:read())
    client.clock:advance(1)
    assert.is_nil(s:read())
  end)

  it("iterates server-sent events; a read that waits too long raises",
    function()
      local client = testing.client(app, { virtual_time = true })
      local seen = {}
      local s = client:stream("/events")
      assert.equal("text/event-stream", s.headers["content-type"])
      local ev = s:read()
      assert.same({ event = "tick", id = "1", data = '{"n":1}' }, ev)
      assert.has_error(function() s:read(0.2) end,
        "moonlet.testing: stream /events: timeout")
      client.clock:advance(10)
      seen[#seen + 1] = s:read().id
      client.clock:advance(10)
      seen[#seen + 1] = s:read().id
      assert.same({ "2", "3" }, seen)
      client.clock:advance(10)
      assert.is_nil(s:read())
      client:close()
    end)

  it("works in a for loop, in real time", function()
    local fast = moonlet.app()
    fast:get("/", function(req)
      local out = req:stream()
      for i = 1, 3 do out:write(i) moonlet.sleep(0.05) end
    end)
    local client = testing.client(fast)
    local got = {}
    for piece in client:stream("/") do got[#got + 1] = piece end
    assert.same({ "1", "2", "3" }, got)
  end)
end)
