-- moonlet.thread.run for spec/thread_spec.lua: values both ways, the
-- thread's own globals, errors, refusals, blocking jobs side by side.
local moonlet = require "moonlet"
local app = moonlet.app()
local run = moonlet.thread.run

-- Blocks its pool thread for 'seconds' of wall-clock time (polling
-- /proc/uptime, which moves in hundredths of a second).
local function block(seconds)
  local function now()
    local f = io.open("/proc/uptime")
    local t = f and f:read("n")
    if f then f:close() end
    return t or os.time()
  end
  local stop = now() + seconds
  while now() < stop do end
  return seconds
end

-- A job at load time: the app file runs in a coroutine too.
local at_load = run(function(a, b) return a + b end, 40, 2)

local function describe(v)
  if type(v) == "table" then
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    local parts = {}
    for _, k in ipairs(keys) do
      parts[#parts + 1] = describe(k) .. "=" .. describe(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "number" then
    return math.type(v) .. ":" .. tostring(v)
  elseif type(v) == "string" then
    return ("%q"):format(v):gsub("\\\n", "\\n")
  end
  return tostring(v)
end

app:get("/load", function(req)
  return describe(at_load)
end)

app:get("/results", function(req)
  local r = table.pack(run(function()
    return 42, 2.5, 3.0, "a\0b", true, nil, false,
      { list = { 1, 2, { deep = "x" } }, [7] = -1, flag = false }, nil
  end))
  local out = { "n=" .. r.n }
  for i = 1, r.n do out[#out + 1] = describe(r[i]) end
  return table.concat(out, "\n")
end)

app:get("/args", function(req)
  local t = { a = { b = { 10, 20 } }, s = "x\0y" }
  local r = table.pack(run(function(tt, n, f, s, nothing, yes)
    tt.a.b[2] = 99                     -- changes the thread's copy only
    tt.added = true
    return tt, math.type(n), math.type(f), #s, nothing, yes, select("#",
      nil)
  end, t, 7, 7.0, "a\0b\0c", nil, true))
  return describe(r[1]) .. "\n" .. describe(r[2]) .. "," .. describe(r[3])
    .. "," .. describe(r[4]) .. "," .. describe(r[5]) .. ","
    .. describe(r[6]) .. "\n" .. describe(t)
end)

app:get("/globals", function(req)
  return describe({ run(function()
    return string.rep("ab", 3), math.floor(2.5), type(io.open),
      type(_G.moonlet), _VERSION
  end) })
end)

app:get("/setglobal", function(req)
  local seen = run(function()
    thread_marker = "set in a thread"
    return thread_marker
  end)
  return describe(seen) .. "\n" .. describe(rawget(_G, "thread_marker"))
end)

app:get("/error", function(req)
  run(function() error("boom from the thread") end)
  return "not reached"
end)

app:get("/error/caught", function(req)
  local ok, err = pcall(run, function(x) error("bad " .. x) end, "input")
  return tostring(ok) .. "\n" .. tostring(err)
end)

app:get("/error/table", function(req)
  local ok, err = pcall(run, function() error({ code = 7 }) end)
  return tostring(ok) .. "\n" .. describe(err)
end)

local secret = "s3cret"
app:get("/upvalue", function(req)
  local ok, err = pcall(run, function() return secret end)
  return tostring(ok) .. "\n" .. tostring(err)
end)

app:get("/refuse/<what>", function(req, what)
  local cyclic = {}
  cyclic.self = cyclic
  local deep = {}
  for _ = 1, 100 do deep = { deep } end
  local args = {
    ["function"] = { 1, print },
    userdata = { io.stdout },
    nested = { { x = { coroutine.create(print) } } },
    cycle = { cyclic },
    deep = { deep },
  }
  local a = assert(args[what])
  local ok, err = pcall(run, function() return 1 end, a[1], a[2])
  return tostring(ok) .. "\n" .. tostring(err)
end)

app:get("/refuse-c", function(req)
  local ok, err = pcall(run, print)
  return tostring(ok) .. "\n" .. tostring(err)
end)

app:get("/badresult", function(req)
  local ok, err = pcall(run, function() return 1, print end)
  return tostring(ok) .. "\n" .. tostring(err)
end)

app:get("/block/<float:s>", function(req, s)
  local t0 = moonlet.now()
  local r = run(block, s)
  return ("%s %.3f"):format(describe(r), moonlet.now() - t0)
end)

app:get("/", function(req)
  return "ok"
end)

return app
