-- A deferred answer, with one moonlet.future shared by requests.
-- GET /simple waits, as long as it takes, for someone to fire;
-- GET /simple/fire?text=hello resolves the future, and every waiting
-- /simple (and any that comes later) answers <i><u>hello</u></i>.
-- A second fire answers that it was already fired; GET /simple/reset
-- puts a fresh future in its place, so the next /simple waits again.
-- The text is HTML-escaped before it is wrapped.
local moonlet = require "moonlet"
local app = moonlet.app()

local fired = moonlet.future()

local escapes = { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;",
  ['"'] = "&quot;", ["'"] = "&#39;" }

local function escape(s)
  return (s:gsub("[&<>\"']", escapes))
end

app:get("/simple", function(req)
  local text = fired:get()       -- a waiter whose client leaves is dropped
  return "<i><u>" .. escape(text) .. "</u></i>"
end)

app:get("/simple/fire", function(req)
  local text = req.query.text
  if text == nil then
    moonlet.abort(400, "fire needs a text: /simple/fire?text=hello")
  end
  if fired:done() then
    return "Already fired: GET /simple/reset to start again."
  end
  fired:set(text)
  return "Fired: every /simple waiting has its answer."
end)

app:get("/simple/reset", function(req)
  if fired:done() then           -- an unfired future keeps its waiters
    fired = moonlet.future()
  end
  return "Reset: /simple waits for the next fire."
end)

app:get("/", function(req)
  return "Open /simple in a tab, then /simple/fire?text=hello in another."
end)

return app
