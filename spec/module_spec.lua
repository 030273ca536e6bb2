--- The runtime as a Lua C module: build/moonlet.so for a stock lua5.4,
-- moonlet.run and moonlet.serve, and the rockspec installing it.
local helpers = require "helpers"

-- Runs a Lua chunk in a fresh lua5.4 (from /tmp, so that nothing of the
-- repository's lua/ is on its path); returns its output and status.
local function lua(env, code)
  local path = os.tmpname()
  local f = io.open(path, "w")
  f:write(code)
  f:close()
  local p = io.popen(("cd /tmp && %s lua5.4 %s 2>&1; echo \"exit=$?\"")
    :format(env, path))
  local out = p:read("a")
  p:close()
  os.remove(path)
  return out
end

local root = io.popen("pwd"):read("l")
local cpath = ("LUA_CPATH='%s/build/?.so;;'"):format(root)

-- A served request, from the module: the same code path as the binary.
local serve = [[
  local moonlet = require "moonlet"
  local app = moonlet.app()
  app:get("/hi/<name>", function(req)
    moonlet.sleep(0.01)
    return { hi = req.params.name }
  end)
  local status, body = moonlet.run(function()
    local port = moonlet.serve(app)
    local res = assert(moonlet.http.get("http://127.0.0.1:" .. port
      .. "/hi/ann"))
    return res.status, res.body
  end)
  print(status, body)
]]

describe("the Lua module", function()
  setup(function()
    assert.is_true(os.execute("make -s --no-print-directory module BUILD=build "
      .. ">/dev/null"))
  end)

  it("loads in a stock lua5.4", function()
    local out = lua(cpath, [[
      local moonlet = require "moonlet"
      print(type(moonlet.run), type(moonlet.app), moonlet._VERSION)]])
    assert.matches("function\tfunction\t%d+%.%d+%.%d+\nexit=0", out)
  end)

  it("runs fn as the first coroutine and returns its results", function()
    local out = lua(cpath, [[
      local moonlet = require "moonlet"
      local t0 = moonlet.now()
      local a, b = moonlet.run(function(x)
        moonlet.sleep(0.05)
        return x, moonlet.now() - t0
      end, 7)
      print(a, b >= 0.04)]])
    assert.matches("7\ttrue\nexit=0", out)
  end)

  it("raises fn's error with its traceback", function()
    local out = lua(cpath, [[
      local moonlet = require "moonlet"
      local ok, err = pcall(moonlet.run, function()
        moonlet.sleep(0.01)
        error("boom")
      end)
      print(ok, err)]])
    assert.matches("false\t.-boom\nstack traceback:", out)
  end)

  it("closes the timers it opened when fn returns", function()
    local out = lua(cpath, [[
      local moonlet = require "moonlet"
      local fired = 0
      local t
      moonlet.run(function()
        t = moonlet.every(0.01, function() fired = fired + 1 end)
        moonlet.sleep(0.055)
      end)
      local before = fired
      moonlet.run(function() moonlet.sleep(0.05) end)
      print(before >= 3, fired == before, t:active())]])
    assert.matches("true\ttrue\tfalse\nexit=0", out)
  end)

  it("works when required inside a coroutine", function()
    local out = lua(cpath, [[
      local co = coroutine.wrap(function()
        local moonlet = require "moonlet"
        return moonlet.run(function() moonlet.sleep(0.01) return "ok" end)
      end)
      print(co())]])
    assert.matches("ok\nexit=0", out)
  end)

  it("gives moonlet.testing to a stock lua5.4, required first", function()
    local out = lua(cpath, ([[
      local testing = require "moonlet.testing"
      local client = testing.client("%s/apps/hello.lua")
      local res = client:get("/")
      print(res.status, res.body)]]):format(root))
    assert.matches("200\tHello, World!\nexit=0", out)
  end)

  it("serves an app over real HTTP", function()
    local out = lua(cpath, serve)
    assert.matches('200\t{"hi":"ann"}\nexit=0', out)
  end)

  it("installs with luarocks make into a tree, offline", function()
    local tree = os.tmpname()
    os.remove(tree)
    local ok = os.execute(("luarocks --lua-version=5.4 make --tree %s "
      .. "rocks/moonlet-scm-1.rockspec >%s.log 2>&1"):format(tree, tree))
    assert.is_true(ok, helpers.slurp(tree .. ".log"))
    assert.is_nil(io.open("lua_modules"), "installed into the repository")
    local out = lua(("LUA_CPATH='%s/lib/lua/5.4/?.so;;' "
      .. "LUA_PATH='%s/share/lua/5.4/?.lua;;'"):format(tree, tree), serve)
    os.execute(("rm -rf %s %s.log"):format(tree, tree))
    assert.matches('200\t{"hi":"ann"}\nexit=0', out)
  end)
end)
