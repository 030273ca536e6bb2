--- Throwaway database servers for the specs: a PostgreSQL cluster made
-- with initdb as the `postgres` user in a temporary directory (its socket
-- there too, TCP on 127.0.0.1 and a free port), and redis-server on a free
-- port without persistence.  Each is stopped by its PID, pass or fail.
local socket = require "socket"

local S = {}

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and code == 0, out
end
S.sh = sh

local function quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- A free TCP port on 127.0.0.1 (bound once, then let go).
function S.free_port()
  local s = assert(socket.bind("127.0.0.1", 0))
  local _, port = s:getsockname()
  s:close()
  return tonumber(port)
end

local function pg_bin()
  local _, out = sh("ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1")
  return (out:gsub("%s+$", ""))
end

-- Runs a command as the postgres user (we are root in CI).
local function as_postgres(cmd)
  local _, me = sh("id -un")
  if me:match("^postgres") then
    return sh(cmd)
  end
  return sh("runuser -u postgres -- sh -c " .. quote(cmd))
end

local PG = {}
PG.__index = PG

--- Starts a PostgreSQL cluster; returns pg with .port, .url (role app,
-- password pw, database app), :psql(sql), :stop(), :restart().
function S.postgres()
  local bin = pg_bin()
  local _, dir = sh("mktemp -d /tmp/moonlet-pg.XXXXXX")
  dir = dir:gsub("%s+$", "")
  sh("chown postgres " .. dir .. " && chmod 700 " .. dir)
  local pg = setmetatable({ dir = dir, bin = bin, port = S.free_port(),
    data = dir .. "/data" }, PG)
  local ok, out = as_postgres(("%s/initdb -D %s -U postgres -E UTF8 "
    .. "--auth-local=trust --auth-host=scram-sha-256 --no-sync -N")
    :format(bin, pg.data))
  assert(ok, "initdb failed: " .. out)
  assert(pg:start(), "pg_ctl start failed: " .. pg:log())
  assert(pg:psql("CREATE ROLE app LOGIN PASSWORD 'pw'"))
  assert(pg:psql("CREATE DATABASE app OWNER app"))
  pg.url = ("postgresql://app:pw@127.0.0.1:%d/app"):format(pg.port)
  return pg
end

function PG:log()
  local f = io.open(self.dir .. "/log")
  local s = f and f:read("a") or ""
  if f then f:close() end
  return s
end

function PG:start()
  local ok = as_postgres(("%s/pg_ctl -D %s -l %s/log -w -t 30 -o %s start")
    :format(self.bin, self.data, self.dir, quote(("-p %d -k %s -c "
      .. "listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200")
      :format(self.port, self.dir))))
  if ok then
    local f = io.open(self.data .. "/postmaster.pid")
    self.pid = f and tonumber(f:read("l"))
    if f then f:close() end
  end
  return ok
end

--- Runs SQL through psql on the socket as postgres, in database 'db'
-- (default "app", or "postgres" before it exists); the output, or nil
-- and the error.
function PG:psql(sql, db)
  local ok, out = as_postgres(("psql -X -q -A -t -v ON_ERROR_STOP=1 -h %s "
    .. "-p %d -U postgres -d %s -c %s"):format(self.dir, self.port,
      db or (self.url and "app" or "postgres"), quote(sql)))
  if not ok then return nil, out end
  return (out:gsub("%s+$", ""))
end

--- Kills the postmaster at once (SIGQUIT: immediate shutdown), as a crash
-- would, and waits for it to go.
function PG:kill()
  if self.pid then
    os.execute(("kill -QUIT %d 2>/dev/null"):format(self.pid))
    for _ = 1, 250 do
      if not sh(("kill -0 %d 2>/dev/null"):format(self.pid)) then break end
      socket.sleep(0.02)
    end
  end
end

function PG:restart()
  self:kill()
  return self:start()
end

function PG:stop()
  if self.pid then
    os.execute(("kill -INT %d 2>/dev/null"):format(self.pid))
    for _ = 1, 500 do
      if not sh(("kill -0 %d 2>/dev/null"):format(self.pid)) then break end
      socket.sleep(0.02)
    end
    os.execute(("kill -KILL %d 2>/dev/null"):format(self.pid))
    self.pid = nil
  end
  if self.dir:match("^/tmp/moonlet%-pg%.") then
    os.execute("rm -rf " .. self.dir)
  end
end

local RD = {}
RD.__index = RD

--- Starts redis-server; returns r with .port, .url, :cli(...), :stop(),
-- :restart().  opts.password sets requirepass; opts.tls makes it speak
-- TLS only, with a certificate for 127.0.0.1 from a throwaway CA
-- (spec/tls/make-certs.sh): r.ca is that CA's file.
function S.redis(opts)
  opts = opts or {}
  local _, dir = sh("mktemp -d /tmp/moonlet-redis.XXXXXX")
  local r = setmetatable({ dir = dir:gsub("%s+$", ""), port = S.free_port(),
    password = opts.password }, RD)
  if opts.tls then
    assert(sh("sh spec/tls/make-certs.sh " .. r.dir .. "/pki"))
    r.ca = r.dir .. "/pki/ca.pem"
    r.tls = true
  end
  assert(r:start(), "redis-server did not start")
  r.url = ("%s://%s127.0.0.1:%d"):format(r.tls and "rediss" or "redis",
    r.password and (":" .. r.password .. "@") or "", r.port)
  return r
end

function RD:start()
  local args = ("--port %d --bind 127.0.0.1 --save '' --appendonly no "
    .. "--dir %s --daemonize no --enable-debug-command local")
    :format(self.port, self.dir)
  if self.password then
    args = args .. " --requirepass " .. quote(self.password)
  end
  if self.tls then
    local pki = self.dir .. "/pki/"
    args = args:gsub("^%-%-port %d+", "--port 0 --tls-port " .. self.port)
      .. (" --tls-cert-file %sserver.pem --tls-key-file %sserver.key "
        .. "--tls-ca-cert-file %sca.pem --tls-auth-clients no")
        :format(pki, pki, pki)
  end
  os.execute(("( redis-server %s >%s/log 2>&1 & echo $! >%s/pid ) ")
    :format(args, self.dir, self.dir))
  local f = io.open(self.dir .. "/pid")
  self.pid = tonumber(f:read("l"))
  f:close()
  for _ = 1, 250 do
    local c = socket.tcp()
    c:settimeout(0.2)
    if c:connect("127.0.0.1", self.port) then
      c:close()
      return true
    end
    c:close()
    socket.sleep(0.02)
  end
  return false
end

--- redis-cli against it; the output without its last newline.
function RD:cli(...)
  local args = {}
  for i, a in ipairs({ ... }) do args[i] = quote(a) end
  local _, out = sh(("redis-cli -p %d %s %s %s"):format(self.port,
    self.tls and ("--tls --cacert " .. quote(self.ca)) or "",
    self.password and ("--no-auth-warning -a " .. quote(self.password)) or "",
    table.concat(args, " ")))
  return (out:gsub("\n$", ""))
end

function RD:kill()
  if self.pid then
    os.execute(("kill -KILL %d 2>/dev/null"):format(self.pid))
    for _ = 1, 250 do
      if not sh(("kill -0 %d 2>/dev/null"):format(self.pid)) then break end
      socket.sleep(0.02)
    end
    self.pid = nil
  end
end

function RD:restart()
  self:kill()
  return self:start()
end

function RD:stop()
  self:kill()
  if self.dir:match("^/tmp/moonlet%-redis%.") then
    os.execute("rm -rf " .. self.dir)
  end
end

return S
