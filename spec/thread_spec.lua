-- moonlet.thread.run through real servers: values copied both ways, the
-- pool thread's own state, errors and refusals, jobs side by side, a
-- caller that leaves; then apps/blocking.lua.
local H = require "helpers"

-- The two lines of a "/error/caught"-style body: ok and the message.
local function outcome(res)
  local ok, msg = res.body:match("^(%a+)\n(.*)$")
  return ok, msg
end

describe("moonlet.thread.run", function()
  local srv
  setup(function()
    srv = H.start("spec/apps/thread.lua",
      { args = { "--log-level", "debug" } })
  end)
  teardown(function() srv:stop() end)

  it("copies results of every type back, nils in the middle", function()
    local res = H.get(srv, "/results")
    assert.equal(200, res.status)
    assert.equal(table.concat({
      "n=9", "integer:42", "float:2.5", "float:3.0", '"a\\0b"', "true", "nil",
      "false",
      '{integer:7=integer:-1,"flag"=false,"list"={integer:1=integer:1,'
        .. 'integer:2=integer:2,integer:3={"deep"="x"}}}',
      "nil" }, "\n"), res.body)
  end)

  it("copies arguments in: the thread changes its copy only", function()
    local res = H.get(srv, "/args")
    assert.equal(table.concat({
      '{"a"={"b"={integer:1=integer:10,integer:2=integer:99}},"added"=true,'
        .. '"s"="x\\0y"}',
      '"integer","float",integer:5,nil,true',
      '{"a"={"b"={integer:1=integer:10,integer:2=integer:20}},"s"="x\\0y"}',
    }, "\n"), res.body)
  end)

  it("gives the function the standard libraries of its own state", function()
    assert.equal('{integer:1="ababab",integer:2=integer:2,integer:3='
      .. '"function",integer:4="nil",integer:5="Lua 5.4"}',
      H.get(srv, "/globals").body)
  end)

  it("keeps a global the job sets out of the handler's state", function()
    assert.equal('"set in a thread"\nnil', H.get(srv, "/setglobal").body)
  end)

  it("re-raises the function's error in the caller: 500, logged", function()
    local res = H.get(srv, "/error")
    assert.equal(500, res.status)
    assert.truthy(H.wait_for_log(srv,
      "GET /error HTTP[^\n]*: spec/apps/thread.lua:%d+: boom from the thread"))
  end)

  it("re-raises with the message and its position, for pcall", function()
    local ok, msg = outcome(H.get(srv, "/error/caught"))
    assert.equal("false", ok)
    assert.matches("^spec/apps/thread.lua:%d+: bad input$", msg)
  end)

  it("re-raises an error table as a copy", function()
    assert.equal('false\n{"code"=integer:7}', H.get(srv, "/error/table").body)
  end)

  it("refuses a function with an upvalue, naming it", function()
    local ok, msg = outcome(H.get(srv, "/upvalue"))
    assert.equal("false", ok)
    assert.equal("thread.run: the function uses the upvalue 'secret'; "
      .. "pass it as an argument", msg)
  end)

  it("refuses a C function", function()
    local ok, msg = outcome(H.get(srv, "/refuse-c"))
    assert.equal("false", ok)
    assert.matches("must be a Lua function", msg)
  end)

  local refusals = {
    ["function"] = "argument 3 %(a function%)",
    userdata = "argument 2 %(a userdata%)",
    nested = "argument 2 %(a table holding a thread%)",
    cycle = "argument 2 %(a table that contains itself%)",
    deep = "argument 2 %(tables nested more than 64 deep%)",
  }
  for what, pattern in pairs(refusals) do
    it("refuses an argument it cannot copy: " .. what, function()
      local ok, msg = outcome(H.get(srv, "/refuse/" .. what))
      assert.equal("false", ok)
      assert.matches("^thread.run: cannot copy " .. pattern
        .. ": only nil, booleans, numbers, strings and tables", msg)
    end)
  end

  it("refuses a result it cannot copy, as an error in the caller", function()
    local ok, msg = outcome(H.get(srv, "/badresult"))
    assert.equal("false", ok)
    assert.matches("^thread.run: cannot copy result 2 %(a function%)", msg)
  end)

  it("ran a job while the app loaded", function()
    assert.equal("integer:42", H.get(srv, "/load").body)
  end)

  it("runs four blocking jobs at once on the pool's four threads", function()
    local results, took = H.concurrent(srv, 4, "/block/0.5")
    for _, res in ipairs(results) do
      assert.equal(200, res.status)
      assert.matches("^float:0.5 ", res.body)
    end
    assert.is_true(took >= 0.45 and took < 1.0, "took " .. took)
  end)

  it("keeps serving while a job blocks its thread", function()
    local slow = H.raw(srv.port)
    slow:send("GET /block/1.0 HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.1)
    local t0 = H.now()
    local fast = H.get(srv, "/")
    local took = H.now() - t0
    assert.equal("ok", fast.body)
    assert.is_true(took < 0.05, "GET / took " .. took)
    local res = H.read_response(slow)
    slow:close()
    assert.matches("^float:1.0 ", res.body)
  end)

  it("drops a running job whose client left; the server stays well", function()
    local c = H.raw(srv.port)
    c:send("GET /block/0.6 HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.2); c:close()
    assert.equal("ok", H.get(srv, "/").body)
    -- the job cannot be stopped: it runs to its end, then is freed
    assert.truthy(H.wait_for_log(srv, "caller gone, job dropped", 2.0))
    assert.matches("^integer:42", H.get(srv, "/load").body)
    assert.equal(200, H.get(srv, "/results").status)
  end)

  it("cancels a queued job whose client left before it ran", function()
    local busy = {}
    for i = 1, 4 do               -- the pool's four threads, taken
      busy[i] = H.raw(srv.port)
      busy[i]:send("GET /block/0.6 HTTP/1.1\r\nHost: t\r\n\r\n")
    end
    H.pause(0.2)
    local c = H.raw(srv.port)
    c:send("GET /block/5 HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.1); c:close()
    assert.truthy(H.wait_for_log(srv, "caller gone, job cancelled before "
      .. "it ran", 1.0))
    for i = 1, 4 do
      assert.equal(200, H.read_response(busy[i]).status)
      busy[i]:close()
    end
    -- the fifth never ran: a new job gets a thread at once
    local t0 = H.now()
    assert.matches("^float:0.1 ", H.get(srv, "/block/0.1").body)
    assert.is_true(H.now() - t0 < 0.5)
  end)
end)

describe("apps/blocking.lua", function()
  local srv
  setup(function() srv = H.start("apps/blocking.lua") end)
  teardown(function() srv:stop() end)

  it("sleeps in a thread without holding up other requests", function()
    local t0 = H.now()
    local slow = H.raw(srv.port)
    slow:send("GET /sleep/1 HTTP/1.1\r\nHost: t\r\n\r\n")
    H.pause(0.1)
    local t1 = H.now()
    local fast = H.get(srv, "/")
    assert.equal(200, fast.status)
    assert.is_true(H.now() - t1 < 0.05, "a blocked thread held up GET /")
    local res = H.read_response(slow)
    slow:close()
    assert.equal("Slept for 1 seconds (in a thread)", res.body)
    assert.is_true(H.now() - t0 >= 0.95)
  end)

  it("refuses more than a minute", function()
    assert.equal(400, H.get(srv, "/sleep/61").status)
  end)
end)
