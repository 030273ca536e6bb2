-- notes: a JSON API, a cookie login, an HTML page, a CSS file, an SSE feed
-- of new notes and a timer that prunes old ones; its tests are in spec/.
-- Run it: moonlet run apps/notes/app.lua --reload, then log in as ann
-- (password pw-ann) at http://127.0.0.1:8080/.  The notes live in this
-- generation's memory: a reload starts with none (keep them in a
-- database, or moonlet.shared, to outlive one).
local moonlet = require "moonlet"
local json = moonlet.json

local app = moonlet.app{ secret_key = os.getenv("NOTES_SECRET")
  or "dev-secret-change-me-please" }
local views = moonlet.template.dir("views")
app:static("/static", "static")

local USERS = { ann = "pw-ann", bob = "pw-bob" }
local MAX_AGE = tonumber(os.getenv("NOTES_MAX_AGE") or "") or 3600

local notes, next_id = {}, 1
local listeners = {}            -- queue -> true, one per SSE client

local function user_of(req)
  local u = req.session.user
  if not u then moonlet.abort(401, { error = "log in first" }) end
  return u
end

local function publish(note)
  for q in pairs(listeners) do
    if not q:full() then q:put(note) end
  end
end

local function list()
  local out = json.array()
  for id = 1, next_id - 1 do
    if notes[id] then out[#out + 1] = notes[id] end
  end
  return out
end

-- JSON API -----------------------------------------------------------
app:get("/api/notes", function(req)
  user_of(req)
  return { notes = list() }
end)

app:post("/api/notes", function(req)
  local user = user_of(req)
  local body = req:json()
  if type(body.text) ~= "string" or body.text == "" then
    moonlet.abort(422, { field = "text", error = "required" })
  end
  local note = { id = next_id, text = body.text, by = user,
    at = moonlet.now() }
  notes[next_id], next_id = note, next_id + 1
  publish(note)
  return note, 201
end)

app:get("/api/notes/<int:id>", function(req, id)
  user_of(req)
  return notes[id] or moonlet.abort(404, { error = "no such note", id = id })
end)

app:delete("/api/notes/<int:id>", function(req, id)
  user_of(req)
  if not notes[id] then moonlet.abort(404, { error = "no such note" }) end
  notes[id] = nil
end)

-- login --------------------------------------------------------------
app:before(moonlet.csrf_protect)

app:get("/login", function(req)
  return views:render("login.html", { csrf = req:csrf_token(),
    flashes = req:flashes() })
end)

app:post("/login", function(req)
  local name, pw = req.form.user, req.form.password
  if not name or USERS[name] ~= pw then
    req:flash("wrong user or password", "error")
    return moonlet.redirect("/login", 303)
  end
  req:clear_session()
  req.session.user = name
  return moonlet.redirect("/", 303)
end)

app:post("/logout", function(req)
  req:clear_session()
  return moonlet.redirect("/login", 303)
end)

-- the page -----------------------------------------------------------
app:get("/", function(req)
  if not req.session.user then return moonlet.redirect("/login", 303) end
  return views:render("index.html", { user = req.session.user,
    notes = list(), csrf = req:csrf_token() })
end)

-- SSE feed of new notes ---------------------------------------------
app:get("/events", function(req)
  user_of(req)
  local q = moonlet.queue(100)
  listeners[q] = true
  local _ <close> = setmetatable({}, { __close = function()
    listeners[q] = nil
  end })
  local ev = req:sse()
  while true do
    local note = q:get(30)
    if note then
      if not ev:send{ event = "note", id = note.id, data = note } then break end
    end
  end
end)

-- prune --------------------------------------------------------------
moonlet.every(60, function()
  local cutoff, n = moonlet.now() - MAX_AGE, 0
  for id, note in pairs(notes) do
    if note.at < cutoff then notes[id], n = nil, n + 1 end
  end
  if n > 0 then moonlet.log("info", "pruned", n, "notes") end
end)

return app
