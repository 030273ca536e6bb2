-- A slowloris: opens N connections to 127.0.0.1:PORT and sends each one
-- byte of a request head per second, for at most SECONDS; prints how many
-- the server closed and how many of those got a 408 first.
-- usage: lua5.4 trickle.lua PORT N SECONDS
local socket = require "socket"
local port, n, limit = tonumber(arg[1]), tonumber(arg[2]), tonumber(arg[3])
local head = "GET / HTTP/1.1\r\nHost: slow\r\nX-Slow: " .. ("a"):rep(200)
local conns, open, got408 = {}, 0, 0
for i = 1, n do
  local c = socket.tcp()
  c:settimeout(2)
  if c:connect("127.0.0.1", port) then
    c:settimeout(0)
    conns[#conns + 1] = { sock = c, sent = 0 }
    open = open + 1
  end
end
io.stdout:write("opened ", open, "\n"):flush()
local t0 = socket.gettime()
while open > 0 and socket.gettime() - t0 < limit do
  for _, c in ipairs(conns) do
    if c.sock then
      local data, err, partial = c.sock:receive(64)
      local got = data or partial
      if got and got:find("^HTTP/1.1 408") then got408 = got408 + 1 end
      if err == "closed" or data then
        c.sock:close(); c.sock = nil; open = open - 1
      elseif c.sent < #head then
        c.sent = c.sent + 1
        c.sock:send(head:sub(c.sent, c.sent))
      end
    end
  end
  socket.sleep(1)
end
io.stdout:write("closed ", n - open, " got408 ", got408, " after ",
  string.format("%.1f", socket.gettime() - t0), "\n")
for _, c in ipairs(conns) do if c.sock then c.sock:close() end end
