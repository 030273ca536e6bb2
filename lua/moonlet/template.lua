--- moonlet.template: HTML templates in files next to the app.
-- `<%= expr %>` writes expr HTML-escaped, `<%- expr %>` writes it as it
-- is, `<% code %>` runs Lua; `-%>` also eats the newline after the tag.
-- A template compiles to one Lua function, once per generation (each
-- reload makes a new Lua state, so edited templates are compiled anew);
-- its errors say `name.html:LINE`.  Inside a template, `layout(name)`
-- wraps the output in another template (which writes `<%- content %>`)
-- and `render(name [, vars])` inserts one (a partial).
-- @module moonlet.template

local core = require "moonlet.core"

local type, error, tostring, setmetatable, load, rawget, pairs, ipairs,
  pcall = type, error, tostring, setmetatable, load, rawget, pairs, ipairs,
  pcall
local concat, sort = table.concat, table.sort
local find, sub, format, gsub, gmatch, match = string.find, string.sub,
  string.format, string.gsub, string.gmatch, string.match
local getinfo = debug.getinfo

local M = {}

local ESCAPES = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
  ['"'] = "&quot;", ["'"] = "&#39;" }

--- `moonlet.escape(v)`: v as text safe inside HTML and its attributes
-- (& < > " ' escaped); nil gives "".
function M.escape(v)
  if v == nil then
    return ""
  end
  if type(v) ~= "string" then
    v = tostring(v)
  end
  return (gsub(v, "[&<>\"']", ESCAPES))
end
local escape = M.escape

local function raw(v)
  if v == nil then
    return ""
  end
  return tostring(v)
end

--- Compiling
-- @section compiling

-- The line of position i in text.
local function line_at(text, i)
  local n = 1
  for _ in gmatch(sub(text, 1, i - 1), "\n") do
    n = n + 1
  end
  return n
end

-- The Lua source for a template.  Every newline of the text is a newline
-- of the source (string.format's %q writes "\<newline>"), so a line of
-- the source is the same line of the template.
local function translate(text, name)
  local out = { "local _ENV, _b, _e, _r = ...;" }
  local pos = 1
  while true do
    local open = find(text, "<%", pos, true)
    if not open then
      out[#out + 1] = format("_b[#_b+1]=%q;", sub(text, pos))
      break
    end
    if open > pos then
      out[#out + 1] = format("_b[#_b+1]=%q;", sub(text, pos, open - 1))
    end
    local close = find(text, "%>", open + 2, true)
    if not close then
      error(format("%s:%d: a '<%%' with no '%%>'", name,
        line_at(text, open)), 0)
    end
    local kind = sub(text, open + 2, open + 2)
    local trim = sub(text, close - 1, close - 1) == "-" and close - 1 > open + 2
    local code = sub(text, (kind == "=" or kind == "-") and open + 3
      or open + 2, trim and close - 2 or close - 1)
    pos = close + 2
    if kind == "=" then
      out[#out + 1] = "_b[#_b+1]=_e(" .. code .. ");"
    elseif kind == "-" then
      out[#out + 1] = "_b[#_b+1]=_r(" .. code .. ");"
    else
      out[#out + 1] = code .. ";"
    end
    if trim then
      local nl = match(text, "^\r?\n", pos)
      if nl then
        pos = pos + #nl
        out[#out + 1] = "\n"       -- the line it ate, kept in the source
      end
    end
  end
  return concat(out)
end

local Template = { __name = "moonlet.Template" }
Template.__index = Template

--- `moonlet.template.compile(text [, name])`: a template from a string;
-- name is what its errors say (default "template").  Raises for a
-- template that does not compile, with name:LINE.
function M.compile(text, name)
  if type(text) ~= "string" then
    error("template.compile expects the template's text", 2)
  end
  name = name or "template"
  local ok, src = pcall(translate, text, name)
  if not ok then
    error(src, 2)
  end
  local fn, err = load(src, "@" .. name, "t")
  if not fn then
    error(err, 2)
  end
  return setmetatable({ name = name, fn = fn }, Template)
end

--- Rendering
-- @section rendering

local VARS, SET, LAYOUT = {}, {}, {}    -- private keys of an environment

-- A template's variables: its vars, then the helpers, then the globals.
local env_mt = {
  __index = function(env, k)
    local v = rawget(env, VARS)[k]
    if v ~= nil then
      return v
    end
    return _G[k]
  end,
}

local render_in

-- The environment of one render: vars, and helpers that know the set.
local function new_env(set, vars)
  local env = setmetatable({ [VARS] = vars, [SET] = set }, env_mt)
  env.escape = escape
  env.layout = function(name)
    if type(name) ~= "string" then
      error("layout expects a template name", 2)
    end
    env[LAYOUT] = name
  end
  env.render = function(name, more)
    local merged = setmetatable({}, { __index = vars })
    for k, v in pairs(more or {}) do
      merged[k] = v
    end
    return render_in(set, name, merged, 3)
  end
  return env
end

-- Runs one template's function; its output and the layout it asked for.
local function run(t, env)
  local b = {}
  env[LAYOUT] = nil
  t.fn(env, b, escape, raw)
  return concat(b), env[LAYOUT]
end

-- Renders t, then the layouts it asks for, each around the last output.
local function render_template(set, t, vars)
  local env = new_env(set, vars)
  local out, layout = run(t, env)
  local depth = 0
  while layout do
    depth = depth + 1
    if depth > 16 then
      error(t.name .. ": layouts nested more than 16 deep", 0)
    end
    local lt = set and set:get(layout, 3)
    if not lt then
      error(t.name .. ": layout '" .. layout .. "' needs a template set "
        .. "(moonlet.template.dir)", 0)
    end
    env[VARS] = setmetatable({ content = out }, { __index = vars })
    out, layout = run(lt, env)
  end
  return out
end

--- `t:render([vars])`: the output, with vars as the template's variables
-- (then Lua's globals).
function Template:render(vars)
  if vars ~= nil and type(vars) ~= "table" then
    error("template:render expects a table of variables", 2)
  end
  return render_template(nil, self, vars or {})
end
Template.__call = Template.render

--- Template sets: a directory of files
-- @section sets

local Set = { __name = "moonlet.TemplateSet" }
Set.__index = Set

function Set:get(name, level)
  local t = self.templates[name]
  if not t then
    error(format("no template '%s' in %s", tostring(name), self.dir),
      (level or 1) + 1)
  end
  return t
end

function render_in(set, name, vars, level)
  if set == nil then
    error("render: a template from template.compile has no other "
      .. "templates to render (use template.dir)", level)
  end
  if type(name) ~= "string" then
    error("render expects a template name", level)
  end
  return render_template(set, set:get(name, level), vars)
end

--- `set:render(name [, vars])`: the output of the template name (a path
-- inside the directory, "notes.html" or "partials/note.html").
function Set:render(name, vars)
  if vars ~= nil and type(vars) ~= "table" then
    error("render expects a table of variables", 2)
  end
  return render_in(self, name, vars or {}, 3)
end

--- `set:response(name [, vars [, status [, headers]]])`: what a handler
-- returns: the output as HTML.
function Set:response(name, vars, status, headers)
  return self:render(name, vars), status or 200, headers
end

local function read_file(path)
  local f, err = io.open(path, "rb")
  if not f then
    error(err, 0)
  end
  local text = f:read("a")
  f:close()
  return text
end

--- `moonlet.template.dir(directory)`: every file under directory (next to
-- the calling file when relative) compiled now, once for this
-- generation.  A template that does not compile raises here, at load,
-- with name:LINE, so a reload with a broken template keeps the previous
-- version serving.  With --reload, each file is watched.
function M.dir(directory, level)
  if type(directory) ~= "string" or directory == "" then
    error("template.dir expects a directory name", 2)
  end
  local root = directory
  if sub(root, 1, 1) ~= "/" then
    local src = getinfo((level or 1) + 1, "S").source
    local base = match(src, "^@(.*)/[^/]*$")
    if base then
      root = base .. "/" .. root
    elseif sub(src, 1, 1) == "@" then
      root = "./" .. root
    end
  end
  local files, err = core.template_files(root)
  if not files then
    error(format("template.dir: cannot read %s: %s", root, err), 2)
  end
  sort(files)
  local boot = package.loaded["moonlet.boot"]
  local set = setmetatable({ dir = root, templates = {} }, Set)
  for _, name in ipairs(files) do
    local path = root .. "/" .. name
    if boot and boot.watch then
      boot.watch(path)      -- before compiling: a broken one's fix reloads
    end
    local text = read_file(path)
    local ok, t = pcall(M.compile, text, path)
    if not ok then
      error(t, 0)
    end
    t.name = name
    set.templates[name] = t
  end
  return set
end

return M
