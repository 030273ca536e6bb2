--- apps/embed: a C program hosting moonlet on its own loop, with a libuv
-- timer of its own and a C function (host.count) in every Lua state.
local helpers = require "helpers"
local cjson = require "cjson"

-- The build folder of the moonlet under test (build/ or build-asan/).
local build = (helpers.bin:match("^(.*)/[^/]*$") or "build")
local sanitize = build == "build-asan"
  and [[ OPT="-O1 -g" SANITIZE="-fsanitize=address,undefined -fno-omit-frame-pointer"]]
  or ""

describe("the embedding example", function()
  local srv

  setup(function()
    local ok = os.execute(("make -s --no-print-directory embed-example "
      .. "BUILD=%s%s >/dev/null"):format(build, sanitize))
    assert.is_true(ok, "make embed-example failed")
    local bin = helpers.bin
    helpers.bin = build .. "/embed-host"   -- host APP PORT, as moonlet run
    local ok2, s = pcall(helpers.start, "apps/embed/app.lua",
      { command = "", port = false, args = { "0" } })
    helpers.bin = bin
    srv = assert(ok2 and s, s)
  end)

  teardown(function()
    if srv then assert.equal(0, srv:stop()) end
  end)

  it("prints the listening line and serves the host's count", function()
    assert.truthy(srv.port > 0)
    local a = cjson.decode(helpers.get(srv, "/").body).count
    helpers.pause(0.1)
    local b = cjson.decode(helpers.get(srv, "/").body).count
    assert.is_number(a)
    assert.truthy(b > a, ("the count did not move: %s then %s"):format(a, b))
  end)

  it("registers host.count in a reloaded state too", function()
    os.execute(("kill -HUP %d"):format(srv.pid))
    assert.truthy(helpers.wait_for_log(srv, "reloaded", 5))
    local res = helpers.get(srv, "/")
    assert.equal(200, res.status)
    assert.is_number(cjson.decode(res.body).count)
  end)
end)
