--- Signed-cookie sessions (req.session), CSRF tokens and flash messages.
local H = require "helpers"

assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
local moonlet = require "moonlet"
local testing = require "moonlet.testing"
local core = require "moonlet.core"

local SECRET = "a-secret-of-at-least-16-bytes"

local function make_app(settings)
  local app = moonlet.app(settings or { secret_key = SECRET })
  app:post("/login/<name>", function(req, name)
    req:clear_session()
    req.session.user = name
    req.session.n = 1
    req:flash("welcome " .. name)
    return "in"
  end)
  app:get("/me", function(req)
    return { user = req.session.user, n = req.session.n,
      flashes = req:flashes() }
  end)
  app:post("/logout", function(req)
    req.session.user = nil
    return "out"
  end)
  app:get("/form", function(req)
    return req:csrf_token()
  end)
  app:post("/form", function(req)
    return "accepted"
  end)
  app:before(function(req)
    if req.path == "/form" then return moonlet.csrf_protect(req) end
  end)
  app:get("/big", function(req)
    req.session.big = ("x"):rep(5000)
    return "big"
  end)
  return app
end

describe("libcrypto for sessions", function()
  it("computes HMAC-SHA256 (RFC 4231 case 2)", function()
    local mac = core.hmac_sha256("Jefe", "what do ya want for nothing?")
    assert.equal("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
      (mac:gsub(".", function(c) return ("%02x"):format(c:byte()) end)))
  end)

  it("round-trips base64url and refuses what is not", function()
    for _, s in ipairs { "", "f", "fo", "foo", "foob", "\0\255\254" } do
      assert.equal(s, core.b64url_decode(core.b64url_encode(s)))
    end
    assert.equal("_-8", core.b64url_encode("\255\239"):sub(1, 3))
    assert.is_nil(core.b64url_decode("a+b/"))
    assert.is_nil(core.b64url_decode("abcde"))
    assert.is_true(core.equal("abc", "abc"))
    assert.is_false(core.equal("abc", "abd"))
    assert.equal(32, #core.random_bytes(32))
  end)
end)

describe("req.session", function()
  local client
  setup(function() client = testing.client(make_app()) end)

  it("is kept in a signed cookie between requests", function()
    assert.equal(200, client:post("/login/ann", "").status)
    local me = client:get("/me"):json()
    assert.equal("ann", me.user)
    assert.equal(1, me.n)
    assert.same({ { "message", "welcome ann" } }, me.flashes)
    assert.same({}, client:get("/me"):json().flashes)   -- shown once
    local res = client:get("/me")
    assert.is_nil(res.headers["set-cookie"])            -- unchanged: none
  end)

  it("sets HttpOnly, SameSite=Lax and a max age", function()
    local res = client:post("/login/bob", "")
    local sc = res.headers["set-cookie"]
    assert.matches("^session=[%w_-]+%.%d+%.[%w_-]+;", sc)
    assert.matches("HttpOnly", sc)
    assert.matches("SameSite=Lax", sc)
    assert.matches("Max%-Age=2678400", sc)
  end)

  it("ignores a cookie whose data or signature was changed", function()
    client:post("/login/carl", "")
    local value = client.cookies.session
    local body, stamp, sig = value:match("^(.-)%.(%d+)%.(.*)$")
    local forged = core.b64url_encode('{"user":"admin"}') .. "." .. stamp
      .. "." .. sig
    local res = client:get("/me", { headers = { Cookie = "session=" .. forged } })
    assert.is_nil(res:json().user)
    res = client:get("/me", { headers = { Cookie = "session=" .. body
      .. "." .. stamp .. "." .. sig:sub(2) .. "A" } })
    assert.is_nil(res:json().user)
    res = client:get("/me", { headers = { Cookie = "session=garbage" } })
    assert.equal(200, res.status)
    assert.is_nil(res:json().user)
  end)

  it("forgets an emptied session", function()
    client:post("/login/dee", "")
    local res = client:post("/logout", "")
    -- n and the flashes remain: the session is not empty
    assert.matches("^session=[^;]+;", res.headers["set-cookie"])
    assert.is_nil(client:get("/me"):json().user)
  end)

  it("refuses a session too big for a cookie", function()
    assert.equal(500, client:get("/big").status)
  end)
end)

describe("secrets", function()
  it("rotate: an old secret still verifies, the new one signs", function()
    local client = testing.client(make_app { secret_key = SECRET })
    client:post("/login/old", "")
    local old_cookie = client.cookies.session
    client = testing.client(make_app { secret_keys = {
      "the-new-secret-of-16-bytes", SECRET } })
    client.cookies.session = old_cookie
    assert.equal("old", client:get("/me"):json().user)
    client:post("/login/new", "")
    assert.not_equal(old_cookie, client.cookies.session)
    -- without the old secret, the old cookie is an empty session
    local only_new = testing.client(make_app { secret_key =
      "the-new-secret-of-16-bytes" })
    only_new.cookies.session = old_cookie
    assert.is_nil(only_new:get("/me"):json().user)
  end)

  it("come from MOONLET_SECRET_KEY, and are required", function()
    local app = H.write_app([[
local moonlet = require "moonlet"
local app = moonlet.app()
app:get("/", function(req) req.session.x = 1 return "ok" end)
return app
]])
    local srv = H.start(app, { env = "MOONLET_SECRET_KEY=" .. SECRET })
    local res = H.get(srv, "/")
    srv:stop()
    assert.equal(200, res.status)
    assert.matches("^session=", res.headers["set-cookie"])
    srv = H.start(app, { env = "MOONLET_SECRET_KEY=" })
    assert.equal(500, H.get(srv, "/").status)
    assert.truthy(H.wait_for_log(srv, "sessions need a secret"))
    srv:stop()
    local short = testing.client(make_app { secret_key = "short" })
    assert.equal(500, short:get("/me").status)
  end)
end)

describe("CSRF", function()
  local client
  setup(function() client = testing.client(make_app()) end)

  it("refuses a form without the session's token", function()
    local token = client:get("/form").body
    assert.equal(43, #token)
    local form = { ["Content-Type"] = "application/x-www-form-urlencoded" }
    assert.equal(403, client:post("/form", "x=1", { headers = form }).status)
    assert.equal(403, client:post("/form", "csrf_token=nope",
      { headers = form }).status)
    assert.equal(200, client:post("/form", "csrf_token=" .. token,
      { headers = form }).status)
    assert.equal(200, client:post("/form", "{}", { headers = {
      ["X-CSRF-Token"] = token } }).status)
  end)
end)
