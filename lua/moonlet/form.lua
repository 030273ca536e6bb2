--- Request body parsing for HTML forms: urlencoded and multipart/form-data.
--
-- The multipart parser works on the whole body held in memory and is
-- linear in its size: it only uses plain `string.find` searches and
-- anchored patterns, never a pattern that could backtrack across the body.
-- @module moonlet.form

local byte, find, gmatch, lower, match, sub =
  string.byte, string.find, string.gmatch, string.lower, string.match,
  string.sub
local concat = table.concat
local error, type = error, type

local url = require "moonlet.url"

local M = {}

local MALFORMED = "malformed multipart body"

-- Trims spaces and tabs.  Linear even on long runs of blanks, unlike the
-- usual "^%s*(.-)%s*$", which is quadratic on them.
local function trim(s)
  local from = match(s, "^[ \t]*()")
  if from > #s then return "" end
  return match(s, "^.*[^ \t]", from)
end

-- Reads the quoted-string whose opening '"' is at s[i]: returns its value,
-- with backslash escapes undone, and the index just past the closing '"'.
-- An unterminated string runs to the end of s (lenient).
local function read_quoted(s, i)
  local start, pos = i + 1, i + 1
  local pieces   -- only built when there is an escape
  while true do
    local q = find(s, '["\\]', pos)
    if not q or byte(s, q) == 34 then   -- '"' or end of s
      local last = q and q - 1 or #s
      local after = q and q + 1 or #s + 1
      if not pieces then return sub(s, start, last), after end
      pieces[#pieces + 1] = sub(s, start, last)
      return concat(pieces), after
    end
    -- A backslash: drop it, and let the next piece begin with the byte it
    -- escapes, so that an escaped '"' or '\' is kept as text.
    pieces = pieces or {}
    pieces[#pieces + 1] = sub(s, start, q - 1)
    start, pos = q + 1, q + 2
  end
end

-- Parses the `; name=value` parameters of a header value such as
-- `form-data; name="a"; filename="b.txt"` or
-- `multipart/form-data; boundary=xyz`.  Names are lowercased; the first
-- occurrence of a name wins; values are tokens or quoted-strings;
-- parameters without '=' are ignored.
local function parse_params(s)
  local params = {}
  local pos = 1
  while true do
    local semi = find(s, ";", pos, true)
    if not semi then return params end
    pos = semi + 1
    local _, e, name = find(s, "^[ \t]*([^ \t;=]+)[ \t]*=[ \t]*", pos)
    if name then
      local value
      if byte(s, e + 1) == 34 then   -- '"'
        value, pos = read_quoted(s, e + 1)
      else
        local _, ve, token = find(s, "^([^;]*)", e + 1)
        value, pos = trim(token), ve + 1
      end
      name = lower(name)
      if params[name] == nil then params[name] = value end
    end
  end
end

-- Looks at what follows a "--boundary" that ends at s[e]:
-- "--" makes it the close delimiter; optional blanks then a line break
-- make it a delimiter whose part starts after the line break.  Returns
-- the index where the next part starts (or anything, for the close
-- delimiter) and whether it is the close delimiter, or nil when the text
-- merely begins like the boundary ("--boundaryXYZ" in some content).
local function delimiter_tail(s, e)
  if find(s, "^%-%-", e + 1) then return e + 3, true end
  local _, le = find(s, "^[ \t]*\r?\n", e + 1)
  if le then return le + 1, false end
  return nil
end

-- Finds the next delimiter at or after `init`: `needle` is
-- "\n--boundary".  Returns the index of the '\n', where the next part
-- starts, and whether it was the close delimiter; nil when there is none.
-- Searching for "\n--" rather than "\r\n--" accepts bare-LF bodies at no
-- cost: the caller drops the '\r' before it when there is one.
local function find_delimiter(s, needle, init)
  local nlen = #needle
  while true do
    local d = find(s, needle, init, true)
    if not d then return nil end
    local next_start, final = delimiter_tail(s, d + nlen - 1)
    if next_start then return d, next_start, final end
    init = d + 1
  end
end

-- Returns the (lowercased-name) headers of interest of one part, from the
-- header block s[from..to].
local function part_headers(s, from, to)
  local disposition, ctype
  for line in gmatch(sub(s, from, to), "[^\r\n]+") do
    local colon = find(line, ":", 1, true)
    if colon then
      local name = lower(trim(sub(line, 1, colon - 1)))
      if name == "content-disposition" then
        disposition = disposition or trim(sub(line, colon + 1))
      elseif name == "content-type" then
        ctype = ctype or trim(sub(line, colon + 1))
      end
    end
  end
  return disposition, ctype
end

local function parse_multipart(body, boundary)
  local form, files, form_all = {}, {}, {}
  local dash_boundary = "--" .. boundary
  local needle = "\n" .. dash_boundary

  -- The first delimiter may open the body, with no line break before it;
  -- anything before it otherwise is a preamble, ignored.
  local pos, final
  if sub(body, 1, #dash_boundary) == dash_boundary then
    pos, final = delimiter_tail(body, #dash_boundary)
  end
  if not pos then
    local d
    d, pos, final = find_delimiter(body, needle, 1)
    if not d then return nil, MALFORMED end
  end

  while not final do
    -- The part runs from pos up to the next delimiter's line break.
    local d, next_start, is_final = find_delimiter(body, needle, pos)
    if not d then return nil, MALFORMED end   -- no close delimiter
    local part_end = d - 1
    if part_end >= pos and byte(body, part_end) == 13 then   -- '\r'
      part_end = part_end - 1
    end

    -- Headers end at the first empty line.  The search may run past d
    -- only for a part with no empty line, which ends the parse: linear.
    local headers_end, body_start
    local _, le = find(body, "^\r?\n", pos)
    if le then   -- no headers at all
      headers_end, body_start = pos - 1, le + 1
    else
      local hs, he = find(body, "\r?\n\r?\n", pos)
      -- he == d: the empty line's '\n' is also the delimiter's (an empty
      -- body sent with one line break too few); accept it.
      if not hs or he > d then return nil, MALFORMED end
      headers_end, body_start = hs - 1, he + 1
    end

    local disposition, ctype = part_headers(body, pos, headers_end)
    local params = disposition and parse_params(disposition)
    local name = params and params.name
    if name then   -- a part without a name has nowhere to go: skipped
      local content = sub(body, body_start, part_end)
      local filename = params.filename
      if filename then
        if files[name] == nil then
          files[name] = {
            filename = filename,
            content_type = ctype or "application/octet-stream",
            body = content,
          }
        end
      else
        local list = form_all[name]
        if list then
          list[#list + 1] = content
        else
          form[name] = content
          form_all[name] = { content }
        end
      end
    end
    pos, final = next_start, is_final
  end
  -- What follows the close delimiter is an epilogue, ignored.
  return form, files, form_all
end

--- Parses a form body according to its Content-Type.
--
-- * `application/x-www-form-urlencoded`: names and values decoded with
--   `url.decode_form`; `files` is empty.
-- * `multipart/form-data; boundary=...` (RFC 7578): parts with a
--   `filename` parameter (even an empty one, as browsers send for a file
--   input left empty) go to `files[name] = {filename=, content_type=,
--   body=}`, the first part of a name winning; `content_type` defaults to
--   "application/octet-stream".  Other parts go to `form` and `form_all`.
--   Parts without a name are skipped; `filename*=` is ignored.  Line
--   breaks may be CRLF or bare LF.
-- * Any other or missing Content-Type, or an empty body: empty tables.
--
-- @tparam ?string content_type the request's Content-Type header
-- @tparam ?string body
-- @treturn[1] table form: name -> first value
-- @treturn[1] table files: name -> file table
-- @treturn[1] table form_all: name -> list of all values, in order
-- @treturn[2] nil
-- @treturn[2] string "missing multipart boundary" or
--   "malformed multipart body"
function M.parse(content_type, body)
  if body == nil then body = "" end
  if type(body) ~= "string" then
    error("bad argument #2 to 'parse' (string expected, got "
          .. type(body) .. ")", 2)
  end
  if type(content_type) ~= "string" then return {}, {}, {} end
  local mime = lower(match(content_type, "^[ \t]*([^; \t]*)"))

  if mime == "application/x-www-form-urlencoded" then
    local form, form_all = url.parse_query(body)
    return form, {}, form_all
  elseif mime == "multipart/form-data" then
    local boundary = parse_params(content_type).boundary
    if boundary == nil or boundary == "" then
      return nil, "missing multipart boundary"
    end
    if body == "" then return {}, {}, {} end
    return parse_multipart(body, boundary)
  end
  return {}, {}, {}
end

return M
