--- The layering check: runtime/ is four folders, and a file may include
-- and call only its own folder and the folders below it
--   base/ (no Lua, no sockets) < net/ (bytes on sockets) < vm/ (Lua) < host/
-- Includes are read from the sources, calls from the objects' symbol
-- tables (nm), so a call through a macro or an inline function counts too.
--
--   lua5.4 spec/layers.lua BUILD          check: exit 1 on an upward edge
--   lua5.4 spec/layers.lua BUILD report   also the call graph's circles
--
-- spec/layers.allow lists upward edges still being taken apart, one
-- "from -> to" a line; an edge not listed fails, and so does a listed one
-- that no longer exists, so the list only shrinks.

local build, mode = arg[1] or "build", arg[2]
local LAYERS = { base = 1, net = 2, vm = 3, host = 4 }

local function lines(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

-- Every runtime source, as "layer/name.c", with its layer's rank.
local files = {}
for _, path in ipairs(lines("ls runtime/*/*.c runtime/*/*.h 2>/dev/null")) do
  local layer, name = path:match("^runtime/(%w+)/([%w_]+%.[ch])$")
  assert(LAYERS[layer], "a file outside the four layers: " .. path)
  files[#files + 1] = { path = path, id = layer .. "/" .. name,
                        rank = LAYERS[layer] }
end

local edges = {}   -- "from -> to" = why
local function edge(from, to, why)
  local key = from .. " -> " .. to
  edges[key] = edges[key] or why
end

-- Includes: "layer/x.h" names its layer.
for _, f in ipairs(files) do
  for l in io.lines(f.path) do
    local layer, h = l:match('^%s*#%s*include%s+"(%w+)/([%w_]+%.h)"')
    if layer then edge(f.id, layer .. "/" .. h, "includes") end
  end
end

-- Calls and data: the object that defines each symbol another one uses.
local defined, used = {}, {}
for _, f in ipairs(files) do
  if f.id:match("%.c$") then
    local obj = build .. "/" .. f.id:gsub("%.c$", ".o")
    local ok = io.open(obj) ~= nil
    assert(ok, "no object " .. obj .. ": build first")
    used[f.id] = {}
    for _, l in ipairs(lines("nm " .. obj)) do
      local kind, sym = l:match("^%x*%s+(%a)%s+([%w_]+)$")
      if kind == "U" then used[f.id][sym] = true
      elseif kind and kind:match("[TDBR]") then defined[sym] = f.id end
    end
  end
end
local calls = {}   -- from = { to = true }: the call graph, for circles
for from, syms in pairs(used) do
  calls[from] = {}
  for sym in pairs(syms) do
    local to = defined[sym]
    if to and to ~= from then
      calls[from][to] = true
      edge(from, to, "uses " .. sym)
    end
  end
end

local function rank(id) return LAYERS[id:match("^(%w+)/")] end

-- The check.
local allow, listed = {}, {}
local af = io.open("spec/layers.allow")
if af then
  for l in af:lines() do
    local e = l:match("^([^#]-%S)%s*$")
    if e then allow[e] = true; listed[#listed + 1] = e end
  end
  af:close()
end
local bad, seen = {}, {}
for key, why in pairs(edges) do
  local from, to = key:match("^(%S+) %-> (%S+)$")
  if rank(to) > rank(from) then
    seen[key] = true
    if not allow[key] then bad[#bad + 1] = key .. "  (" .. why .. ")" end
  end
end
for _, e in ipairs(listed) do
  if not seen[e] then bad[#bad + 1] = e .. "  (gone: take it off spec/layers.allow)" end
end
table.sort(bad)

-- Circles: strongly connected groups of files in the call graph (Tarjan).
local function circles()
  local index, low, onstack, stack, out, n = {}, {}, {}, {}, {}, 0
  local function visit(v)
    n = n + 1; index[v], low[v] = n, n
    stack[#stack + 1] = v; onstack[v] = true
    for w in pairs(calls[v] or {}) do
      if not index[w] then visit(w); low[v] = math.min(low[v], low[w])
      elseif onstack[w] then low[v] = math.min(low[v], index[w]) end
    end
    if low[v] == index[v] then
      local group = {}
      repeat
        local w = table.remove(stack); onstack[w] = nil
        group[#group + 1] = w
      until w == v
      if #group > 1 then table.sort(group); out[#out + 1] = group end
    end
  end
  local ids = {}
  for id in pairs(calls) do ids[#ids + 1] = id end
  table.sort(ids)
  for _, id in ipairs(ids) do if not index[id] then visit(id) end end
  table.sort(out, function(a, b) return #a > #b end)
  return out
end

if mode == "report" then
  local groups, mutual = circles(), {}
  for a, tos in pairs(calls) do
    for b in pairs(tos) do
      if a < b and calls[b] and calls[b][a] then mutual[#mutual + 1] = a .. " <-> " .. b end
    end
  end
  table.sort(mutual)
  print(("files: %d; biggest circle: %d files"):format(#files,
        groups[1] and #groups[1] or 1))
  for _, g in ipairs(groups) do print("  circle: " .. table.concat(g, " ")) end
  print(("pairs that call each other: %d"):format(#mutual))
  for _, m in ipairs(mutual) do print("  " .. m) end
end

if #bad > 0 then
  print('layers: a file reaches a layer above its own (README, "Layout"):')
  for _, b in ipairs(bad) do print("  " .. b) end
  os.exit(1)
end
print(("layers: ok (%d files; %d upward edges still listed in spec/layers.allow)")
      :format(#files, #listed))
