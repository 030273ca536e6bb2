--- Installing: make install PREFIX=... and `moonlet new`, used from a
-- directory outside the repository, as a newcomer would (the rock:
-- module_spec.lua).
local H = require "helpers"

assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")

local function sh(cmd)
  local f = io.popen("{ " .. cmd .. " ; } 2>&1; echo \"rc=$?\"")
  local out = f:read("a")
  f:close()
  local rc = tonumber(out:match("rc=(%d+)\n$"))
  return rc, out
end

local function tmpdir()
  local f = io.popen("mktemp -d")
  local d = f:read("l")
  f:close()
  return d
end

describe("make install", function()
  local prefix, work
  setup(function()
    prefix, work = tmpdir(), tmpdir()
    local rc, out = sh("make -s --no-print-directory install BUILD=build "
      .. "PREFIX=" .. H.quote(prefix))
    assert(rc == 0, out)
  end)
  teardown(function()
    os.execute("rm -rf " .. H.quote(prefix) .. " " .. H.quote(work))
  end)

  it("installs the binary, the Lua module and the LuaLS files", function()
    for _, f in ipairs { "/bin/moonlet", "/lib/lua/5.4/moonlet.so",
        "/share/moonlet/types/moonlet.lua",
        "/share/moonlet/types/moonlet/testing.lua",
        "/share/moonlet/types/moonlet/json.lua" } do
      assert.truthy(io.open(prefix .. f), f)
    end
    local rc, out = sh(H.quote(prefix .. "/bin/moonlet") .. " version")
    assert.equal(0, rc)
    assert.matches("^moonlet %d", out)
  end)

  it("moonlet new makes an app whose tests pass with a bare `busted`",
    function()
      local rc, out = sh("cd " .. H.quote(work) .. " && "
        .. H.quote(prefix .. "/bin/moonlet") .. " new notes")
      assert.equal(0, rc, out)
      assert.matches("cd notes", out)
      local busted = io.open(work .. "/notes/.busted"):read("a")
      assert.matches('lua = "lua5.4"', busted, 1, true)
      assert.matches(prefix .. "/lib/lua/5.4/?.so", busted, 1, true)
      local luarc = io.open(work .. "/notes/.luarc.json"):read("a")
      assert.matches(prefix .. "/share/moonlet/types", luarc, 1, true)
      rc, out = sh("cd " .. H.quote(work .. "/notes") .. " && busted")
      assert.equal(0, rc, out)
      assert.matches("2 successes / 0 failures", out)
      rc, out = sh("cd " .. H.quote(work) .. " && "
        .. H.quote(prefix .. "/bin/moonlet") .. " new notes")
      assert.equal(1, rc)
      assert.matches("already exists", out)
    end)
end)
