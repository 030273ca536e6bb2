-- shared_client.lua PORT WORKERS OP N: one keep-alive connection to each
-- of the server's WORKERS workers (found through GET /who), then GET
-- /run/OP/N on all of them at once; prints "OPS_PER_SECOND" for the
-- WORKERS x N calls, timed from the first request out to the last
-- response in.  Exit 1 when it cannot reach every worker.
local socket = require "socket"
local port, workers, op, n = tonumber(arg[1]), tonumber(arg[2]), arg[3],
  tonumber(arg[4])

local function request(c, path)
  c:send(("GET %s HTTP/1.1\r\nHost: b\r\n\r\n"):format(path))
end

local function response(c)
  local len
  local line = assert(c:receive("*l"))
  assert(line:match("^HTTP/1%.1 200"), line)
  repeat
    line = assert(c:receive("*l"))
    len = len or tonumber(line:lower():match("^content%-length:%s*(%d+)"))
  until line == ""
  return assert(c:receive(len))
end

local conns, spare = {}, {}
for _ = 1, 200 do
  local c = assert(socket.tcp())
  c:settimeout(120)
  assert(c:connect("127.0.0.1", port))
  request(c, "/who")
  local id = response(c)
  if conns[id] then spare[#spare + 1] = c else conns[id] = c end
  local count = 0
  for _ in pairs(conns) do count = count + 1 end
  if count == workers then break end
end
local list = {}
for _, c in pairs(conns) do list[#list + 1] = c end
if #list ~= workers then
  io.stderr:write("reached ", #list, " of ", workers, " workers\n")
  os.exit(1)
end
local t0 = socket.gettime()
for _, c in ipairs(list) do request(c, ("/run/%s/%d"):format(op, n)) end
for _, c in ipairs(list) do response(c) end
local t = socket.gettime() - t0
print(("%.0f"):format(workers * n / t))
for _, c in ipairs(list) do c:close() end
for _, c in ipairs(spare) do c:close() end
