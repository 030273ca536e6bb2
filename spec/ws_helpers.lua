--- A frame-level WebSocket test client over luasocket: the handshake,
-- frames built by hand (masked or not, any head bits, any opcode), so a
-- spec can send what no real client would, and read frames back.
local H = require "helpers"

local W = {}

local char, byte, pack, unpack = string.char, string.byte, string.pack,
  string.unpack
local concat = table.concat

W.KEY = "dGhlIHNhbXBsZSBub25jZQ=="          -- RFC 6455's example
W.ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

--- XORs s with a 4-byte key.
function W.mask(s, key)
  local k = { byte(key, 1, 4) }
  local out = {}
  for i = 1, #s, 4096 do
    local chunk = { byte(s, i, math.min(i + 4095, #s)) }
    for j = 1, #chunk do
      chunk[j] = chunk[j] ~ k[(i + j - 2) % 4 + 1]
    end
    out[#out + 1] = char(table.unpack(chunk))
  end
  return concat(out)
end

--- A frame: opts.fin (true), opts.rsv (bits 4-6 as a number 0-7),
-- opts.mask (true; false: unmasked), opts.len (a lie about the length).
function W.frame(op, payload, opts)
  opts = opts or {}
  payload = payload or ""
  local fin = opts.fin == false and 0 or 0x80
  local b0 = fin | ((opts.rsv or 0) << 4) | op
  local n = opts.len or #payload
  local masked = opts.mask ~= false
  local m = masked and 0x80 or 0
  local head
  if n < 126 then
    head = char(b0, m | n)
  elseif n < 65536 then
    head = char(b0, m | 126) .. pack(">I2", n)
  else
    head = char(b0, m | 127) .. pack(">I8", n)
  end
  if masked then
    local key = opts.key or "\x0f\xa1\x35\x77"
    return head .. key .. W.mask(payload, key)
  end
  return head .. payload
end

function W.close_payload(code, reason)
  return pack(">I2", code) .. (reason or "")
end

--- Opens a WebSocket on path; returns the socket and the 101 response.
-- opts.headers: extra or replacing header lines {name = value};
-- opts.extra: bytes sent right after the head; opts.expect: the status
-- expected (101), else the response is returned as it is.
function W.connect(port, path, opts)
  opts = opts or {}
  local c = H.raw(port, opts.timeout or 5)
  local headers = { Host = "127.0.0.1:" .. port, Upgrade = "websocket",
    Connection = "Upgrade", ["Sec-WebSocket-Key"] = W.KEY,
    ["Sec-WebSocket-Version"] = "13" }
  for k, v in pairs(opts.headers or {}) do
    headers[k] = v or nil
    if v == false then headers[k] = nil end
  end
  local lines = { ("GET %s HTTP/1.1"):format(path) }
  for k, v in pairs(headers) do lines[#lines + 1] = k .. ": " .. v end
  c:send(concat(lines, "\r\n") .. "\r\n\r\n" .. (opts.extra or ""))
  local res = assert(H.read_response(c, { head = true }))
  if res.status ~= 101 and res.status ~= (opts.expect or 101) then
    error("handshake: " .. tostring(res.status))
  end
  if res.status ~= 101 then
    local n = tonumber(res.headers["content-length"] or "0")
    res.body = n > 0 and c:receive(n) or ""
  end
  return c, res
end

--- Reads one frame: fin, opcode, payload, rsv (or nil and an error).
function W.read_frame(c)
  local h, err = c:receive(2)
  if not h then return nil, err end
  local b0, b1 = byte(h, 1, 2)
  local n = b1 & 0x7f
  if n == 126 then
    n = unpack(">I2", c:receive(2))
  elseif n == 127 then
    n = unpack(">I8", c:receive(8))
  end
  local key = (b1 & 0x80) ~= 0 and c:receive(4)
  local payload = n > 0 and c:receive(n) or ""
  if key then payload = W.mask(payload, key) end
  return (b0 & 0x80) ~= 0, b0 & 0x0f, payload, (b0 >> 4) & 7
end

--- Reads frames until a data message is whole (pings answered by the
-- caller's choice); returns the message and its opcode.
function W.read_message(c)
  local parts, first = {}, nil
  while true do
    local fin, op, payload = W.read_frame(c)
    if not fin and op == nil then return nil, op end
    if op == 8 then return nil, "close", payload end
    if op < 8 then
      first = first or op
      parts[#parts + 1] = payload
      if fin then return concat(parts), first end
    end
  end
end

--- Reads until the server's close frame: its code and reason.
function W.read_close(c)
  while true do
    local fin, op, payload = W.read_frame(c)
    if not fin and not op then return nil, op end
    if op == 8 then
      if #payload < 2 then return 1005, "" end
      return unpack(">I2", payload), payload:sub(3)
    end
  end
end

--- Whether the server closed TCP (EOF) within 'timeout' seconds.
function W.eof(c, timeout)
  c:settimeout(timeout or 2)
  while true do
    local data, err, partial = c:receive(4096)
    if not data then
      return err == "closed", err, partial
    end
  end
end

return W
