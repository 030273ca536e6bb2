-- make cluster, short: three hosts in network namespaces behind HAProxy,
-- one Redis, 6 s of load with a host stopped and one killed on the way
-- (spec/cluster/run.sh).  Needs root for the namespaces, as CI has, and
-- moonlet.redis in the binary.
local H = require "helpers"

-- Why the cluster cannot run here, or nil.
local function missing()
  local p = io.popen("id -u")
  local uid = p:read("l")
  p:close()
  if uid ~= "0" then return "not root" end
  for _, tool in ipairs { "ip", "haproxy", "redis-server", "wrk" } do
    if not os.execute("command -v " .. tool .. " >/dev/null") then
      return tool .. " is not installed"
    end
  end
  local app = H.write_app([[
    local moonlet = require "moonlet"
    assert(moonlet.redis, "no moonlet.redis")
    return moonlet.app()]])
  local code = H.cli({ "routes", app })
  if code ~= 0 then return "this build has no moonlet.redis" end
end

describe("make cluster", function()
  local why = missing()
  if why then
    pending("make cluster cannot run here: " .. why)
    return
  end

  it("serves through HAProxy with no error and no lost increment while "
    .. "hosts stop and die", function()
    local out = os.tmpname()
    local ok = os.execute(("CLUSTER_DURATION=6 MOONLET_BIN=%s "
      .. "timeout 120 bash spec/cluster/run.sh > %s 2>&1"):format(H.bin, out))
    local report = H.slurp(out)
    os.remove(out)
    assert.truthy(ok, report)
    local lines = {}
    for l in report:gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.equal("errors: 0", lines[#lines - 1], report)
    assert.equal("lost: 0", lines[#lines], report)
    assert.matches("message: posted through h1, arrived on h3's feed", report)
    assert.matches("SIGKILL h2", report)
    assert.matches("h3 +%d+", report)
  end)
end)
