--- report.lua: turns run.sh's raw lines into results/latest.md.
-- lua5.4 report.lua RAW META OUT.  Each raw line is `key=value ...` for one
-- run of one server in one scenario (`note=` takes the rest of the line);
-- medians with min-max, the ratios to nginx + ngx_lua and to the ceiling,
-- and the targets of the benchmark issue.  The lines of OUT that start with
-- "- Instructions per request" and "- Instructions per fan-in request"
-- (make bench-instr) are kept.

local raw_path, meta_path, out_path = arg[1], arg[2], arg[3]
local fmt, concat = string.format, table.concat

local SERVERS = { "moonlet", "nginx", "limit" }
local FORM_LABEL         -- the return forms' names (Return forms)
local LABEL = { moonlet = "moonlet", nginx = "nginx + ngx_lua",
                limit = "ceiling (limit.c)" }

--- Parsing ------------------------------------------------------------

local function parse_line(line)
  local r = {}
  local head, note = line:match("^(.-)%s*note=(.*)$")
  if head then r.note = note else head = line end
  for k, v in head:gmatch("([%w_]+)=(%S+)") do
    r[k] = tonumber(v) or v
  end
  return r
end

local runs = {}          -- runs[scenario][server] = { record, ... }
for line in io.lines(raw_path) do
  if line:find("%S") then
    local r = parse_line(line)
    runs[r.scenario] = runs[r.scenario] or {}
    local t = runs[r.scenario][r.server] or {}
    runs[r.scenario][r.server] = t
    t[#t + 1] = r
  end
end

local meta, meta_order = {}, {}
for line in io.lines(meta_path) do
  local k, v = line:match("^([^\t]+)\t(.*)$")
  if k then meta[k] = v; meta_order[#meta_order + 1] = k end
end

--- Statistics -----------------------------------------------------------

-- The values of f(record) over a server's measured runs, sorted.
local function values(list, f)
  local v = {}
  for _, r in ipairs(list or {}) do
    if not r.note then
      local x = f(r)
      if x then v[#v + 1] = x end
    end
  end
  table.sort(v)
  return v
end

local function median(v)
  local n = #v
  if n == 0 then return nil end
  if n % 2 == 1 then return v[(n + 1) // 2] end
  return (v[n // 2] + v[n // 2 + 1]) / 2
end

local function stat(list, f)
  local v = values(list, f)
  if #v == 0 then return nil end
  return { med = median(v), min = v[1], max = v[#v], n = #v }
end

local function note_of(list)
  for _, r in ipairs(list or {}) do
    if r.note then return r.note end
  end
end

-- Per-run derived numbers.
local function secs(r) return (r.duration_us or 0) / 1e6 end
local function rps(r)
  if (r.requests or 0) == 0 or secs(r) == 0 then return nil end
  return r.requests / secs(r)
end
local function cpu_s(r) return r.cpu_ticks and r.cpu_ticks / r.clk_tck end
local function cpu_pct(r)
  if not r.cpu_ticks or secs(r) == 0 then return nil end
  return 100 * cpu_s(r) / secs(r)
end
local function cpu_per_req(r)
  if not r.cpu_ticks or (r.requests or 0) == 0 then return nil end
  return 1e6 * cpu_s(r) / r.requests
end
local function errors(r)
  if not r.requests then return nil end
  return (r.connect or 0) + (r.read or 0) + (r.write or 0) +
         (r.timeout or 0) + (r.status or 0)
end
-- The errors client.c saw: failed connections and non-2xx answers.
local function client_errors(r)
  return (r.errors or 0) + (r.not_2xx or 0)
end
-- Busy time of CPU 0 not spent by the server, or of CPU 1 not spent by
-- wrk (or the fan-in backend), in % of the run: something else ran.
local function other_pct(r)
  if not r.other_ticks or secs(r) == 0 then return nil end
  local t = math.max(r.other_ticks, r.other1_ticks or 0)
  return 100 * t / r.clk_tck / secs(r)
end
local function p50(r) return r.p50_us and r.p50_us / 1000 end
local function p99(r)
  if not r.p99_us or r.p99_us == 0 then return nil end -- wrk: none
  return r.p99_us / 1000
end
local function rss_mib(r) return r.rss_kb and r.rss_kb / 1024 end
-- The CPU probe before the run (client.c): the same arithmetic each
-- time, so a larger number means a slower CPU 0 during that run.
local function probe_ms(r) return r.probe_us and r.probe_us / 1000 end

--- Formatting -----------------------------------------------------------

local function num(x)
  if x == nil then return "-" end
  local a = math.abs(x)
  if a >= 100000 then return fmt("%.0fk", x / 1000) end
  if a >= 10000 then return fmt("%.1fk", x / 1000) end
  if a >= 100 then return fmt("%.0f", x) end
  if a >= 10 then return fmt("%.1f", x) end
  return fmt("%.2f", x)
end

-- A count: no decimals.
local function int(x)
  if x == nil then return "-" end
  return fmt("%.0f", x)
end

-- The median, with the range when the runs differ.
local function cell(s, unit, f)
  if not s then return "-" end
  unit, f = unit or "", f or num
  if s.n > 1 and s.min ~= s.max then
    return fmt("%s%s (%s–%s)", f(s.med), unit, f(s.min), f(s.max))
  end
  return f(s.med) .. unit
end

local function med(s) return s and s.med end

local function ratio(a, b)
  if not a or not b or b == 0 then return nil end
  return a / b
end

local function xfmt(x)
  if not x then return "n/a" end
  return fmt("%.2f×", x)
end

local out = {}
local function w(...) out[#out + 1] = concat({ ... }) end

local function table_rows(header, rows)
  w("| ", concat(header, " | "), " |")
  local sep = {}
  for i = 1, #header do sep[i] = "---" end
  w("| ", concat(sep, " | "), " |")
  for _, row in ipairs(rows) do w("| ", concat(row, " | "), " |") end
  w("")
end

--- Scenarios ------------------------------------------------------------

local summary = {}       -- rows of the summary table
local key = {}           -- key numbers for the targets: key[scen][server]

local function remember(scen, srv, t)
  key[scen] = key[scen] or {}
  key[scen][srv] = t
end

-- Adds a summary row: the main number of a scenario for each server.
local function summarize(scen, what, f, better_low)
  local m, n, l = f("moonlet"), f("nginx"), f("limit")
  local function show(x, srv)
    if x then return num(x) end
    local note = note_of(runs[scen] and runs[scen][srv])
    return note or "-"
  end
  local rn, rl = ratio(m, n), ratio(m, l)
  summary[#summary + 1] = { scen, what, show(m, "moonlet"), show(n, "nginx"),
    show(l, "limit"), xfmt(rn), xfmt(rl) }
  return rn, rl, better_low
end

local DESC = {
  hello = "GET / → `Hello, World!`, keep-alive, 100 connections",
  pipeline = "GET /, 16 requests pipelined per connection, 100 connections " ..
    "(wrk's latency is per batch of 16)",
  headers = "GET /headers → `Hello, World!` returned with a headers table " ..
    "(`return body, 200, {[\"Content-Type\"] = \"text/plain\"}`), " ..
    "100 connections",
  pipeline_headers = "GET /headers (a headers table), 16 requests " ..
    "pipelined per connection, 100 connections",
  pipeline_json = "GET /json (a table returned as JSON), 16 requests " ..
    "pipelined per connection, 100 connections",
  pipeline_param = "GET /user/12345 (a route parameter), 16 requests " ..
    "pipelined per connection, 100 connections",
  json = "GET /json → `{\"message\":\"Hello, World!\"}`, 100 connections",
  param = "GET /user/12345 (`/user/<int:id>`) → the id, 100 connections",
  fanin = "GET /fanin, 1,000 connections: the handler fetches GET /backend " ..
    "from a local nginx that answers after 20 ms (on CPU 1, with wrk)",
  static4k = "GET /files/4k.bin: app:static against nginx serving the " ..
    "same directory (a 4 KiB file), 100 connections",
  static1m = "GET /files/1m.bin: app:static against nginx serving the " ..
    "same directory (a 1 MiB file), 100 connections",
  idle = "10,000 idle keep-alive connections after one request each",
  sleep = "5,000 requests at once, each sleeping 1 s in the handler",
  reload = "hello at 100 connections while the app is rewritten and " ..
    "reloaded (SIGHUP) 10 times",
  tls = "hello over TLS: GET / → `Hello, World!` on 100 keep-alive TLS " ..
    "connections; nginx with `ssl` on the same certificate (EC P-256), TLS " ..
    "1.2 and 1.3, session tickets",
  handshake = "hello over TLS with `Connection: close`: a new connection, " ..
    "so a full TLS 1.3 handshake (wrk resumes no session), per request, 50 " ..
    "connections at a time",
  tlsidle = "2,000 idle keep-alive TLS connections after one request " ..
    "each (`tlsclient idle`: full handshakes, one at a time)",
  tlsfanin = "fanin with the backend (nginx, 20 ms) over https: moonlet's " ..
    "`moonlet.http.get` verifies the certificate and pools the " ..
    "connections, nginx's cosocket does `sslhandshake` on new ones; the " ..
    "client side of moonlet and nginx is plain, 1,000 connections",
}

-- A warning under a table when something else used CPU 0 in a run.
local function disturbed(t)
  local worst = 0
  for _, srv in ipairs(SERVERS) do
    for _, x in ipairs(values(t[srv], other_pct)) do
      worst = math.max(worst, x)
    end
  end
  if worst > 10 then
    w(fmt("⚠ something else used up to %.0f%% of a CPU during a run: " ..
      "those numbers are disturbed.\n", worst))
  end
end

local function throughput(scen)
  local t = runs[scen]
  if not t then return end
  w("### ", scen, "\n\n", DESC[scen], ".\n")
  local rows, k = {}, {}
  for _, srv in ipairs(SERVERS) do
    local list = t[srv]
    local note = note_of(list)
    local s = {
      rps = stat(list, rps), p50 = stat(list, p50), p99 = stat(list, p99),
      cpu = stat(list, cpu_pct), cpr = stat(list, cpu_per_req),
      rss = stat(list, rss_mib), err = stat(list, errors),
      probe = stat(list, probe_ms),
    }
    k[srv] = { rps = med(s.rps), p99 = med(s.p99), cpr = med(s.cpr),
               err = med(s.err), probe = med(s.probe) }
    if list then
      if not s.rps and note then
        rows[#rows + 1] = { LABEL[srv], note, "", "", "", "", "", "", "" }
      else
        rows[#rows + 1] = { LABEL[srv], cell(s.rps), cell(s.p50, " ms"),
          cell(s.p99, " ms"), cell(s.cpu, "%"), cell(s.cpr, " µs"),
          cell(s.rss, " MiB"), s.err and int(s.err.max) or "-",
          cell(s.probe, " ms") }
      end
    end
  end
  table_rows({ "server", "requests/s", "p50", "p99", "server CPU",
    "CPU per request", "peak RSS", "errors (max)", "CPU probe" }, rows)
  disturbed(t)
  local m, n, l = k.moonlet or {}, k.nginx or {}, k.limit or {}
  w(fmt("moonlet / nginx + ngx_lua: %s requests/s, %s CPU per request; " ..
    "moonlet / ceiling: %s requests/s.\n",
    xfmt(ratio(m.rps, n.rps)), xfmt(ratio(m.cpr, n.cpr)),
    xfmt(ratio(m.rps, l.rps))))
  remember(scen, "moonlet", m); remember(scen, "nginx", n)
  remember(scen, "limit", l)
  summarize(scen, "requests/s", function(srv) return k[srv].rps end)
end

local function idle(scen)
  scen = scen or "idle"
  local t = runs[scen]
  if not t then return end
  w("### ", scen, "\n\n", DESC[scen], ". Bytes per connection = (RSS " ..
    "with them − RSS before) / their number; a fresh server per run.\n")
  local rows, k = {}, {}
  for _, srv in ipairs(SERVERS) do
    local list = t[srv]
    if list then
      local b = stat(list, function(r) return r.bytes_per_conn end)
      k[srv] = med(b)
      rows[#rows + 1] = { LABEL[srv], cell(b, " B"),
        cell(stat(list, function(r) return r.base_kb / 1024 end), " MiB"),
        cell(stat(list, rss_mib), " MiB"),
        cell(stat(list, function(r) return r.ok end), "", int),
        cell(stat(list, client_errors), "", int) }
    end
  end
  table_rows({ "server", "bytes per connection", "RSS before",
    "RSS with them", "answered", "errors" }, rows)
  w(fmt("moonlet / nginx + ngx_lua: %s bytes per connection; moonlet / " ..
    "ceiling: %s.\n", xfmt(ratio(k.moonlet, k.nginx)),
    xfmt(ratio(k.moonlet, k.limit))))
  key[scen] = k
  summarize(scen, "bytes/conn", function(srv) return k[srv] end)
end

local function sleep()
  local t = runs.sleep
  if not t then return end
  w("### sleep\n\n", DESC.sleep, ". Bytes per request = (peak RSS − RSS " ..
    "before) / 5,000; completion = first connect to last response; p99 from " ..
    "sending the request; a slowest connect near 1 s or 3 s is a SYN " ..
    "dropped at a full accept queue, retried by the kernel.\n")
  local rows, k = {}, {}
  for _, srv in ipairs(SERVERS) do
    local list = t[srv]
    local note = note_of(list)
    if list then
      local b = stat(list, function(r) return r.bytes_per_req end)
      local c = stat(list, function(r) return r.total_ms and r.total_ms / 1000 end)
      k[srv] = { bytes = med(b), secs = med(c) }
      if not b and note then
        rows[#rows + 1] = { LABEL[srv], note, "", "", "", "", "", "" }
      else
        rows[#rows + 1] = { LABEL[srv], cell(c, " s"),
          cell(stat(list, function(r) return r.p99_ms end), " ms"),
          cell(stat(list, function(r) return r.connect_max_ms end), " ms"),
          cell(b, " B"), cell(stat(list, rss_mib), " MiB"),
          cell(stat(list, cpu_s), " s"),
          cell(stat(list, client_errors), "", int) }
      end
    end
  end
  table_rows({ "server", "completion", "p99", "slowest connect",
    "bytes per request",
    "peak RSS", "server CPU", "errors" }, rows)
  local m, n, l = k.moonlet or {}, k.nginx or {}, k.limit or {}
  w(fmt("moonlet / nginx + ngx_lua: %s bytes per request, %s completion; " ..
    "moonlet / ceiling: %s bytes per request.\n",
    xfmt(ratio(m.bytes, n.bytes)), xfmt(ratio(m.secs, n.secs)),
    xfmt(ratio(m.bytes, l.bytes))))
  key.sleep = k
  summarize("sleep", "bytes/request",
    function(srv) return k[srv] and k[srv].bytes end)
end

local function reload()
  local t = runs.reload
  if not t then return end
  w("### reload\n\n", DESC.reload, ". Errors = wrk's socket errors + " ..
    "non-2xx; steady p99 = the hello scenario's.\n")
  local rows, k = {}, {}
  for _, srv in ipairs({ "moonlet", "nginx" }) do
    local list = t[srv]
    if list then
      local p = stat(list, p99)
      local steady = key.hello and key.hello[srv] and key.hello[srv].p99
      local e = stat(list, errors)
      k[srv] = { p99 = med(p), steady = steady, err = e and e.max,
                 rps = med(stat(list, rps)) }
      rows[#rows + 1] = { LABEL[srv], cell(stat(list, rps)), cell(p, " ms"),
        steady and fmt("%s ms", num(steady)) or "-",
        xfmt(ratio(med(p), steady)), e and int(e.max) or "-",
        cell(stat(list, function(r) return r.reloads end), "", int) }
    end
  end
  table_rows({ "server", "requests/s", "p99", "steady p99", "p99 / steady",
    "errors (max)", "reloads seen" }, rows)
  disturbed(t)
  key.reload = k
  summarize("reload", "requests/s",
    function(srv) return k[srv] and k[srv].rps end)
end

--- WebSockets --------------------------------------------------------------

local WS_SERVERS = { "moonlet", "nginx", "node" }
local WS_LABEL = { moonlet = "moonlet", nginx = "nginx + lua-resty-websocket",
                   node = "Node.js ws" }

local function mps(r)
  return r.messages and r.seconds and r.seconds > 0 and
    r.messages / r.seconds or nil
end
local function ws_cpu_pct(r)
  return r.cpu_ticks and r.seconds and r.seconds > 0 and
    r.cpu_ticks / r.clk_tck / r.seconds * 100 or nil
end
local function cpu_per_msg(r)     -- µs of server CPU per message
  return r.cpu_ticks and r.messages and r.messages > 0 and
    r.cpu_ticks / r.clk_tck / r.messages * 1e6 or nil
end

local ws_key = {}                -- ws_key[scen][server] = medians

local function ws_throughput(scen, size)
  local t = runs[scen]
  if not t then return end
  w("### ", scen, "\n\n100 WebSockets, each echoing a ", size, "-byte " ..
    "binary message and waiting for it, again and again (`wsclient echo`).\n")
  local rows, k = {}, {}
  for _, srv in ipairs(WS_SERVERS) do
    local list = t[srv]
    if list then
      local s = { mps = stat(list, mps), cpu = stat(list, ws_cpu_pct),
        cpm = stat(list, cpu_per_msg), rss = stat(list, rss_mib),
        err = stat(list, function(r) return r.errors end) }
      k[srv] = { mps = med(s.mps), cpm = med(s.cpm) }
      rows[#rows + 1] = { WS_LABEL[srv], cell(s.mps), cell(s.cpu, "%"),
        cell(s.cpm, " µs"), cell(s.rss, " MiB"),
        s.err and int(s.err.max) or note_of(list) or "-" }
    end
  end
  table_rows({ "server", "messages/s", "server CPU", "CPU per message",
    "peak RSS", "errors (max)" }, rows)
  local m, n, o = k.moonlet or {}, k.nginx or {}, k.node or {}
  w(fmt("moonlet / Node.js ws: %s messages/s, %s CPU per message; " ..
    "moonlet / nginx: %s messages/s, %s CPU per message.\n",
    xfmt(ratio(m.mps, o.mps)), xfmt(ratio(m.cpm, o.cpm)),
    xfmt(ratio(m.mps, n.mps)), xfmt(ratio(m.cpm, n.cpm))))
  ws_key[scen] = k
end

local function wsidle()
  local t = runs.wsidle
  if not t then return end
  w("### wsidle\n\n10,000 WebSockets whose handlers wait in receive " ..
    "(`wsclient idle`). Bytes per WebSocket = (RSS with them − RSS " ..
    "before) / 10,000; a fresh server per run.\n")
  local rows, k = {}, {}
  for _, srv in ipairs(WS_SERVERS) do
    local list = t[srv]
    if list then
      local b = stat(list, function(r) return r.bytes_per_conn end)
      local e = stat(list, function(r) return r.errors end)
      k[srv] = { bytes = med(b), errors = e and e.max,
                 open = med(stat(list, function(r) return r.open end)) }
      rows[#rows + 1] = { WS_LABEL[srv], cell(b, " B"),
        cell(stat(list, function(r) return r.base_kb / 1024 end), " MiB"),
        cell(stat(list, rss_mib), " MiB"),
        cell(stat(list, function(r) return r.open end), "", int),
        e and int(e.max) or note_of(list) or "-" }
    end
  end
  table_rows({ "server", "bytes per WebSocket", "RSS before",
    "RSS with 10,000", "open", "errors (max)" }, rows)
  ws_key.wsidle = k
end

-- The WebSocket targets: echo ≥ 1.5× Node's ws and ≥ 1.0× nginx in
-- messages/s; ≤ 2.5 KiB per idle WebSocket, 10,000 without error.
local function ws_targets()
  local rows = {}
  local function add(what, measured, met)
    rows[#rows + 1] = { what, measured, met == nil and "-" or
      (met and "✓" or "✗") }
  end
  for _, scen in ipairs({ "ws32", "ws4k" }) do
    local k = ws_key[scen]
    if k and k.moonlet then
      local rn, rx = ratio(k.moonlet.mps, k.node and k.node.mps),
        ratio(k.moonlet.mps, k.nginx and k.nginx.mps)
      add(scen .. ": ≥ 1.5× Node.js ws messages/s", xfmt(rn),
        rn and rn >= 1.5)
      add(scen .. ": ≥ 1.0× nginx + lua-resty-websocket", xfmt(rx),
        rx and rx >= 1.0)
    end
  end
  local i = ws_key.wsidle and ws_key.wsidle.moonlet
  if i then
    add("wsidle ≤ 2.5 KiB per idle WebSocket", num(i.bytes) .. " B",
      i.bytes and i.bytes <= 2560)
    add("wsidle: 10,000 without error", fmt("%s open, %s errors",
      int(i.open), int(i.errors)), i.open == 10000 and i.errors == 0)
  end
  if #rows > 0 then
    w("### WebSocket targets\n")
    table_rows({ "target", "measured", "met" }, rows)
  end
end

--- Return forms -----------------------------------------------------------

FORM_LABEL = { hello = "bare string", headers = "headers table",
               json = "JSON table", param = "route parameter" }

-- One row per way a handler answers: keep-alive and pipelined, and the
-- pipelined ratios the targets are about.
local function forms()
  local rows = {}
  local bare = key.pipeline and key.pipeline.moonlet
  local ceil = key.pipeline and key.pipeline.limit
  for _, f in ipairs({ "hello", "headers", "json", "param" }) do
    local ka = key[f] and key[f].moonlet
    local kn = key[f] and key[f].nginx
    local pscen = f == "hello" and "pipeline" or "pipeline_" .. f
    local p = key[pscen] and key[pscen].moonlet
    local pc = key[pscen] and key[pscen].limit or ceil
    if ka or p then
      rows[#rows + 1] = { FORM_LABEL[f],
        ka and num(ka.rps) or "-", ka and ka.cpr and num(ka.cpr) .. " µs" or "-",
        xfmt(ka and kn and ratio(ka.cpr, kn.cpr)),
        p and num(p.rps) or "-", p and p.cpr and num(p.cpr) .. " µs" or "-",
        xfmt(p and pc and ratio(p.rps, pc.rps)),
        xfmt(p and bare and ratio(p.rps, bare.rps)) }
    end
  end
  if #rows == 0 then return end
  w("## Return forms\n")
  w("moonlet's requests/s and server CPU per request for each way a " ..
    "handler answers (medians); the ceiling is the bare libuv + llhttp " ..
    "server. `make bench-instr` counts their instructions per request.\n")
  table_rows({ "form", "keep-alive requests/s", "CPU per request",
    "CPU / nginx", "pipelined requests/s", "CPU per request",
    "pipelined / ceiling", "pipelined / bare string" }, rows)
end

--- Targets ----------------------------------------------------------------

local function targets()
  local rows = {}
  local function check(name, ok, got)
    local mark = ok == nil and "n/a" or (ok and "✓" or "✗")
    rows[#rows + 1] = { name, got or "-", mark }
  end
  local function rr(scen, a, b)
    local k = key[scen]
    if not k or not k[a] or not k[b] then return nil end
    return ratio(k[a].rps, k[b].rps)
  end
  local function both(...)
    local v = { ... }
    for i = 1, select("#", ...) do if v[i] == nil then return nil end end
    for i = 1, select("#", ...) do if not v[i] then return false end end
    return true
  end
  local function ge(x, t) if x == nil then return nil end return x >= t end
  local function le(x, t) if x == nil then return nil end return x <= t end

  local function cr(scen)      -- CPU per request, moonlet / nginx
    local k = key[scen]
    return k and k.moonlet and k.nginx and ratio(k.moonlet.cpr, k.nginx.cpr)
  end
  local pl = rr("pipeline", "moonlet", "limit")
  check("pipelined, bare string ≥ 0.8× the ceiling", ge(pl, 0.8),
    fmt("%s ceiling", xfmt(pl)))
  local bare = key.pipeline and key.pipeline.moonlet
  for _, f in ipairs({ "headers", "json", "param" }) do
    local scen = "pipeline_" .. f
    local l = rr(scen, "moonlet", "limit")
    local m = key[scen] and key[scen].moonlet
    local b = m and bare and ratio(m.rps, bare.rps)
    check(fmt("pipelined, %s ≥ 0.7× the ceiling, ≥ 0.9× bare string",
      FORM_LABEL[f]), both(ge(l, 0.7), ge(b, 0.9)),
      fmt("%s ceiling, %s bare string", xfmt(l), xfmt(b)))
  end
  for _, scen in ipairs({ "hello", "json", "param" }) do
    local c = cr(scen)
    check(scen .. ": CPU per request ≤ 0.85× nginx", le(c, 0.85),
      fmt("%s nginx", xfmt(c)))
  end
  local fc = cr("fanin")
  local fp = key.fanin and key.fanin.moonlet and key.fanin.moonlet.p99
  check("fan-in: CPU per request ≤ 0.6× nginx, p99 ≤ 40 ms",
    both(le(fc, 0.6), le(fp, 40)),
    fmt("%s nginx, p99 %s ms", xfmt(fc), num(fp)))
  local ib = key.idle and key.idle.moonlet
  check("idle ≤ 512 B per connection", le(ib, 512), ib and num(ib) .. " B")
  local sb = key.sleep and key.sleep.moonlet and key.sleep.moonlet.bytes
  check("sleep ≤ 1.5 KiB per sleeping request", le(sb, 1536),
    sb and num(sb) .. " B")
  local rl = key.reload and key.reload.moonlet
  local rp = rl and ratio(rl.p99, rl.steady)
  check("reload: 0 errors, p99 ≤ 2× steady",
    rl and both(rl.err == 0, le(rp, 2.0)),
    rl and fmt("%s errors, p99 %s steady", int(rl.err), xfmt(rp)))
  w("## Targets (2-core machine)\n")
  table_rows({ "target", "measured", "met" }, rows)
end

--- TLS ---------------------------------------------------------------------

-- How many handshakes the fan-in backend saw per run (one per new
-- connection: the pools grow, then reuse).
local function handshakes()
  local t = runs.tlsfanin
  if not t then return end
  local parts = {}
  for _, srv in ipairs({ "moonlet", "nginx" }) do
    local h = stat(t[srv], function(r) return r.handshakes end)
    local rs = stat(t[srv], function(r) return r.resumed end)
    local n = stat(t[srv], function(r) return r.requests end)
    if h then
      parts[#parts + 1] = fmt("%s %s per run, %s of them resumed " ..
        "(of %s requests)", LABEL[srv], int(h.med),
        rs and int(rs.med) or "?", n and int(n.med) or "?")
    end
  end
  w("Handshakes at the backend: ", concat(parts, "; "), ".\n")
end

-- The TLS targets: hello CPU per request ≤ nginx's and requests/s ≥
-- nginx's; handshakes/s ≥ 0.9× nginx; bytes per idle TLS connection ≤
-- nginx's; fan-in over https CPU per request ≤ 1.3× the plain fan-in.
local function tls_targets()
  local rows = {}
  local function k(scen, srv, f)
    return key[scen] and key[scen][srv] and key[scen][srv][f]
  end
  local function add(what, r, met)
    rows[#rows + 1] = { what, xfmt(r), r == nil and "-" or
      (met(r) and "✓" or "✗") }
  end
  local le1 = function(r) return r <= 1 end
  add("tls: CPU per request ≤ nginx", ratio(k("tls", "moonlet", "cpr"),
    k("tls", "nginx", "cpr")), le1)
  add("tls: requests/s ≥ nginx", ratio(k("tls", "moonlet", "rps"),
    k("tls", "nginx", "rps")), function(r) return r >= 1 end)
  add("handshake: handshakes/s ≥ 0.9× nginx", ratio(
    k("handshake", "moonlet", "rps"), k("handshake", "nginx", "rps")),
    function(r) return r >= 0.9 end)
  add("tlsidle: bytes per connection ≤ nginx", ratio(
    key.tlsidle and key.tlsidle.moonlet, key.tlsidle and key.tlsidle.nginx),
    le1)
  add("tlsfanin: CPU per request ≤ 1.3× plain fanin", ratio(
    k("tlsfanin", "moonlet", "cpr"), k("fanin", "moonlet", "cpr")),
    function(r) return r <= 1.3 end)
  w("### TLS targets\n")
  table_rows({ "target", "ratio", "met" }, rows)
end

--- The file ----------------------------------------------------------------

local sections = {}
local function capture(fn)
  local start = #out
  fn()
  local part = {}
  for i = start + 1, #out do part[#part + 1] = out[i] end
  for i = #out, start + 1, -1 do out[i] = nil end
  sections[#sections + 1] = concat(part, "\n")
end

for _, scen in ipairs({ "hello", "pipeline", "headers", "pipeline_headers",
    "json", "pipeline_json", "param", "pipeline_param", "fanin",
    "static4k", "static1m" }) do
  capture(function() throughput(scen) end)
end
capture(idle)
capture(sleep)
capture(reload)
capture(function() ws_throughput("ws32", 32) end)
capture(function() ws_throughput("ws4k", 4096) end)
capture(wsidle)
capture(ws_targets)
for _, scen in ipairs({ "tls", "handshake", "tlsfanin" }) do
  capture(function() throughput(scen) end)
end
capture(handshakes)
capture(function() idle("tlsidle") end)
capture(tls_targets)

-- Keep the instruction counts of the last `make bench-instr`.
local instr, instr_fanin
local old = io.open(out_path)
if old then
  for line in old:lines() do
    if line:find("^%- Instructions per request") then instr = line end
    if line:find("^%- Instructions per fan%-in request") then
      instr_fanin = line
    end
  end
  old:close()
end

w("# moonlet benchmarks\n")
w("`make bench` (", meta.duration or "?", " s per run, ", meta.runs or "?",
  " runs per case, medians with min–max), ", meta.date or "", ". ",
  "moonlet and nginx + ngx_lua each serve with one worker pinned to CPU 0; ",
  "wrk and the other clients run on CPU 1. Server CPU and RSS are read from ",
  "/proc (nginx: its worker; the idle master is not counted). ",
  "See spec/bench/README.md.\n")
w(instr or "- Instructions per request (hello, callgrind): " ..
  "not measured; run `make bench-instr`.")
if instr_fanin then w(instr_fanin) end
w("")
w("## Summary\n")
table_rows({ "scenario", "measure", "moonlet", "nginx + ngx_lua", "ceiling",
  "moonlet / nginx", "moonlet / ceiling" }, summary)
forms()
targets()
w("## Scenarios\n")
for _, s in ipairs(sections) do
  if s ~= "" then w(s) end
end
w("## Machine and versions\n")
local mrows = {}
for _, k in ipairs(meta_order) do mrows[#mrows + 1] = { k, meta[k] } end
table_rows({ "", "" }, mrows)

local f = assert(io.open(out_path, "w"))
f:write(concat(out, "\n"))
f:close()
io.stdout:write("## Summary\n\n")
for _, row in ipairs(summary) do
  io.stdout:write(concat(row, " | "), "\n")
end
