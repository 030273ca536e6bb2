-- The notes app's tests: `busted` in apps/notes (its .busted), or
-- spec/notes_spec.lua from the top of the repository.
local testing = require "moonlet.testing"
local APP = (debug.getinfo(1, "S").source:match("^@(.-)spec/[^/]*$") or "")
  .. "app.lua"

local function login(client, user, pw)
  local token = client:get("/login").body:match('name="csrf_token" value="([^"]+)"')
  return client:post("/login", "csrf_token=" .. token .. "&user=" .. user
    .. "&password=" .. pw, { headers = {
      ["Content-Type"] = "application/x-www-form-urlencoded" } }), token
end

describe("notes", function()
  local client, token
  setup(function()
    client = testing.client(APP, { virtual_time = true })
  end)
  teardown(function() client:close() end)

  it("sends a stranger to the login page", function()
    local res = client:get("/")
    assert.status(303, res)
    assert.equal("/login", res.headers.location)
    assert.status(401, client:get("/api/notes"))
  end)

  it("refuses a wrong password, with a flash message", function()
    local res = login(client, "ann", "nope")
    assert.status(303, res)
    assert.matches("wrong user or password", client:get("/login").body)
  end)

  it("logs in, and keeps notes through the JSON API", function()
    local res
    res = login(client, "ann", "pw-ann")
    assert.status(303, res)
    -- the login made a new session: its token is on the pages it renders
    token = client:get("/").body:match('name="csrf_token" value="([^"]+)"')
    local h = { headers = { ["X-CSRF-Token"] = token } }
    assert.same({ notes = {} }, client:get("/api/notes"):json())
    assert.equal("[]", client:get("/api/notes").body:match('"notes":(%[%])'))
    res = client:post("/api/notes", { text = "buy <milk>" }, h)
    assert.status(201, res)
    local note = res:json()
    assert.equal(1, note.id)
    assert.equal("ann", note.by)
    assert.equal("buy <milk>", client:get("/api/notes/" .. note.id):json().text)
    assert.status(422, client:post("/api/notes", {}, h))
    assert.same({ field = "text", error = "required" },
      client:post("/api/notes", {}, h):json())
    assert.status(403, client:post("/api/notes", { text = "x" }))  -- no token
  end)

  it("shows the notes on the page, escaped, with the CSS", function()
    local res = client:get("/")
    assert.status(200, res)
    assert.matches("<li>buy &lt;milk&gt; <small>by ann</small></li>", res.body, 1, true)
    assert.matches('href="/static/notes.css"', res.body, 1, true)
    res = client:get("/static/notes.css")
    assert.status(200, res)
    assert.matches("^text/css", res.headers["content-type"])
  end)

  it("streams new notes as server-sent events", function()
    local feed = client:stream("/events")
    assert.equal(200, feed.status)
    client:post("/api/notes", { text = "second" }, { headers = {
      ["X-CSRF-Token"] = token } })
    local ev = feed:read()
    assert.equal("note", ev.event)
    assert.equal("second", require("moonlet").json.decode(ev.data).text)
    feed:close()
  end)

  it("prunes notes older than an hour", function()
    assert.equal(2, #client:get("/api/notes"):json().notes)
    client.clock:advance(3660)
    assert.same({}, client:get("/api/notes"):json().notes)
    assert.matches("pruned 2 notes", client.log)
  end)
end)
