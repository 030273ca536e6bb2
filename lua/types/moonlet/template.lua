---@meta moonlet.template
-- LuaLS definitions for moonlet.template (`moonlet.template`, or
-- `require "moonlet.template"`). Never executed.

---HTML templates: `<%= expr %>` escaped, `<%- expr %>` raw, `<% code %>`.
---@class moonlet.template
local template = {}

---A compiled template.
---@class moonlet.Template
---@field name string what its errors say: `name:LINE`
local Template = {}

---The output, with `vars` as the template's variables (then Lua's globals).
---@param vars? table
---@return string html
function Template:render(vars) end

---A directory of templates.
---@class moonlet.TemplateSet
---@field dir string
local Set = {}

---The output of the template `name` ("notes.html", "partials/note.html").
---Inside it, `layout(name)` wraps the output in another template (which
---writes `<%- content %>`) and `render(name [, vars])` inserts one.
---@param name string
---@param vars? table
---@return string html
function Set:render(name, vars) end

---What a handler returns: the output as HTML, with a status and headers.
---@param name string
---@param vars? table
---@param status? integer
---@param headers? table<string, moonlet.HeaderValue>
---@return string html
---@return integer status
---@return table<string, moonlet.HeaderValue>? headers
function Set:response(name, vars, status, headers) end

---Every file under `directory` (next to the calling file when relative),
---compiled now, once for this generation; `--reload` watches them. A
---template that does not compile raises here with `name:LINE`.
---@param directory string
---@return moonlet.TemplateSet
function template.dir(directory) end

---A template from a string; `name` is what its errors say.
---@param text string
---@param name? string
---@return moonlet.Template
function template.compile(text, name) end

---`v` as text safe inside HTML and its attributes (`& < > " '`); nil gives "".
---@param v any
---@return string
function template.escape(v) end

return template
