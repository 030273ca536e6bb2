-- Routing (API §3), through a real server: spec/apps/routing.lua.
local H = require "helpers"
local cjson = require "cjson"

local APP = "spec/apps/routing.lua"

-- The line of 'file' that contains 'marker' (plain text), so that tests
-- about file:line in messages do not break when the app files change.
local function line_of(file, marker)
  local n = 0
  for line in io.lines(file) do
    n = n + 1
    if line:find(marker, 1, true) then return n end
  end
  error("marker not found in " .. file .. ": " .. marker)
end

local raw_exchange = H.exchange

describe("routing (API §3)", function()
  local srv

  lazy_setup(function()
    srv = H.start(APP)
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
  end)

  local function get_json(path)
    local res = H.get(srv, path)
    assert.equal(200, res.status, path .. ": " .. tostring(res.body))
    assert.equal("application/json", res.headers["content-type"])
    return cjson.decode(res.body), res
  end

  describe("static routes", function()
    it("serves / and a static path", function()
      local res = H.get(srv, "/")
      assert.equal(200, res.status)
      assert.equal("index", res.body)
      res = H.get(srv, "/hello")
      assert.equal(200, res.status)
      assert.equal("Hello, HEAD!", res.body)
    end)

    it("gives 404 with a plain-text body for an unknown path", function()
      local res = H.get(srv, "/no/such/path")
      assert.equal(404, res.status)
      assert.matches("Not Found", res.body)
      assert.matches("^text/plain", res.headers["content-type"])
      assert.equal(tostring(#res.body), res.headers["content-length"])
    end)

    it("does not match a prefix or an extension of a static path", function()
      assert.equal(404, H.get(srv, "/hell").status)
      assert.equal(404, H.get(srv, "/hello/x").status)
      assert.equal(404, H.get(srv, "/helloo").status)
    end)
  end)

  describe("converters", function()
    it("<name> matches one segment and passes a string", function()
      local v = get_json("/user/alice")
      assert.same({ "alice" }, v.args)
      assert.same({ "string" }, v.types)
      assert.same({ name = "alice" }, v.params)
      assert.equal(1, v.n)
    end)

    it("<name> does not match several segments or an empty one", function()
      assert.equal(404, H.get(srv, "/user/a/b").status)
      assert.equal(404, H.get(srv, "/user/").status)
    end)

    it("<string:x> is the same as <x>", function()
      local v = get_json("/str/hello")
      assert.same({ "hello" }, v.args)
      assert.same({ x = "hello" }, v.params)
      assert.same({ x = "string" }, v.ptypes)
    end)

    it("<int:n> passes a Lua integer, as argument and in req.params", function()
      local v = get_json("/sleep/42")
      assert.same({ 42 }, v.args)
      assert.same({ "integer" }, v.types)
      assert.same({ n = 42 }, v.params)
      assert.same({ n = "integer" }, v.ptypes)
      v = get_json("/sleep/0")
      assert.same({ 0 }, v.args)
      assert.same({ "integer" }, v.types)
    end)

    it("<int:n> does not match a segment that is not an integer: 404", function()
      for _, p in ipairs { "/sleep/abc", "/sleep/1.5", "/sleep/12x",
                           "/sleep/-", "/sleep/99999999999999999999999" } do
        local res = H.get(srv, p)
        assert.equal(404, res.status, p .. " gave " .. res.status)
      end
    end)

    it("<float:x> passes a Lua float", function()
      local v = get_json("/price/2.5")
      assert.same({ 2.5 }, v.args)
      assert.same({ "float" }, v.types)
      assert.same({ x = 2.5 }, v.params)
      assert.same({ x = "float" }, v.ptypes)
      assert.equal(404, H.get(srv, "/price/abc").status)
      assert.equal(404, H.get(srv, "/price/1.2.3").status)
    end)

    it("<path:p> takes the rest of the path, slashes included", function()
      local v = get_json("/files/a/b/c.txt")
      assert.same({ "a/b/c.txt" }, v.args)
      assert.same({ p = "a/b/c.txt" }, v.params)
      v = get_json("/files/one")
      assert.same({ "one" }, v.args)
      assert.equal(404, H.get(srv, "/files/").status)
    end)

    it("passes several values in pattern order", function()
      local v = get_json("/multi/x/7/deep/er/path")
      assert.equal(3, v.n)
      assert.same({ "x", 7, "deep/er/path" }, v.args)
      assert.same({ "string", "integer", "string" }, v.types)
      assert.same({ a = "x", b = 7, c = "deep/er/path" }, v.params)
      assert.equal(404, H.get(srv, "/multi/x/y/z").status)
    end)
  end)

  describe("static segments beat parameters", function()
    it("when the parameter route is declared first", function()
      assert.equal("static", H.get(srv, "/order1/me").body)
      assert.equal("param:you", H.get(srv, "/order1/you").body)
    end)

    it("when the static route is declared first", function()
      assert.equal("static", H.get(srv, "/order2/me").body)
      assert.equal("param:you", H.get(srv, "/order2/you").body)
    end)
  end)

  describe("methods", function()
    it("app:route with opts.methods serves each listed method", function()
      assert.equal("form:GET", H.get(srv, "/form").body)
      local res = H.request(srv, "POST", "/form", { body = "a=1" })
      assert.equal(200, res.status)
      assert.equal("form:POST", res.body)
    end)

    it("a method the path does not take is 405 with Allow", function()
      for _, m in ipairs { "PUT", "DELETE", "PATCH" } do
        local res = H.request(srv, m, "/form")
        assert.equal(405, res.status, m)
        assert.equal("GET, HEAD, OPTIONS, POST", res.headers["allow"], m)
      end
      local res = H.request(srv, "POST", "/hello", { body = "" })
      assert.equal(405, res.status)
      assert.equal("GET, HEAD, OPTIONS", res.headers["allow"])
      assert.matches("Method Not Allowed", res.body)
    end)

    it("405 for a parameter route lists its methods", function()
      local res = H.request(srv, "DELETE", "/sleep/3")
      assert.equal(405, res.status)
      assert.equal("GET, HEAD, OPTIONS", res.headers["allow"])
    end)

    it("each method helper serves its method", function()
      for _, m in ipairs { "GET", "POST", "PUT", "PATCH", "DELETE",
                           "OPTIONS" } do
        local res = H.request(srv, m, "/m", { body = "" })
        assert.equal(200, res.status, m)
        assert.equal(m:lower() .. ":" .. m, res.body)
      end
    end)

    it("HEAD is answered by the GET handler, without a body", function()
      local get = H.get(srv, "/hello")
      local head = H.request(srv, "HEAD", "/hello")
      assert.equal(200, head.status)
      assert.equal(tostring(#get.body), head.headers["content-length"])
      assert.equal(get.headers["content-type"], head.headers["content-type"])
      -- nothing at all after the head on the wire
      local raw = raw_exchange(srv.port, "HEAD /hello HTTP/1.1\r\n"
        .. "Host: t\r\nConnection: close\r\n\r\n")
      local head_end = raw:find("\r\n\r\n", 1, true)
      assert.truthy(head_end, raw)
      assert.equal("", raw:sub(head_end + 4))
      assert.matches("^HTTP/1%.1 200", raw)
    end)

    it("HEAD works for parameter routes, with the GET length", function()
      local get = H.get(srv, "/user/bob")
      local head = H.request(srv, "HEAD", "/user/bob")
      assert.equal(200, head.status)
      assert.equal(tostring(#get.body), head.headers["content-length"])
    end)

    it("OPTIONS is answered automatically with Allow", function()
      local res = H.request(srv, "OPTIONS", "/form")
      assert.truthy(res.status == 200 or res.status == 204, res.status)
      assert.equal("GET, HEAD, OPTIONS, POST", res.headers["allow"])
      res = H.request(srv, "OPTIONS", "/user/x")
      assert.truthy(res.status == 200 or res.status == 204, res.status)
      assert.equal("GET, HEAD, OPTIONS", res.headers["allow"])
    end)

    it("OPTIONS on an unknown path is 404", function()
      assert.equal(404, H.request(srv, "OPTIONS", "/no/such").status)
    end)
  end)

  describe("trailing slashes", function()
    it("/docs/ requested as /docs redirects with 308", function()
      local res = H.get(srv, "/docs")
      assert.equal(308, res.status)
      assert.equal("/docs/", res.headers["location"])
      assert.equal("docs", H.get(srv, "/docs/").body)
    end)

    -- Regression: push_route once formatted "%s/%s" with a query pointer
    -- that is not NUL-terminated, so the rest of the request head went
    -- into Location and the client got 500.
    it("the redirect keeps the query string", function()
      local res = H.get(srv, "/docs?x=1&y=a%20b")
      assert.equal(308, res.status)
      assert.equal("/docs/?x=1&y=a%20b", res.headers["location"])
    end)

    it("the redirect also works for other methods (308 keeps them)", function()
      local res = H.request(srv, "HEAD", "/docs")
      assert.equal(308, res.status)
      assert.equal("/docs/", res.headers["location"])
    end)

    it("/nodir requested as /nodir/ is 404", function()
      assert.equal("nodir", H.get(srv, "/nodir").body)
      assert.equal(404, H.get(srv, "/nodir/").status)
    end)

    it("a redirected parameter route keeps its value", function()
      local res = H.get(srv, "/dir/abc")
      assert.equal(308, res.status)
      assert.equal("/dir/abc/", res.headers["location"])
      assert.equal("dir:abc", H.get(srv, "/dir/abc/").body)
    end)

    -- Regression: Location was once built from the decoded path, so
    -- "/dir/a%20b" redirected to "/dir/a b/" (not a valid URI) and
    -- "/dir/a%3Fb" to "/dir/a?b/", another resource with a query.
    it("the redirect Location keeps the path percent-encoded", function()
      local res = H.get(srv, "/dir/a%20b?q=1")
      assert.equal(308, res.status)
      assert.equal("/dir/a%20b/?q=1", res.headers["location"])
      res = H.get(srv, "/dir/a%3Fb")
      assert.equal(308, res.status)
      assert.equal("/dir/a%3Fb/", res.headers["location"])
      -- following the redirect reaches the route with the same value
      assert.equal("dir:a?b", H.get(srv, "/dir/a%3Fb/").body)
    end)
  end)

  describe("percent-encoding", function()
    it("decodes segments before matching", function()
      local v = get_json("/user/a%20b")
      assert.same({ "a b" }, v.args)
      assert.same({ name = "a b" }, v.params)
      v = get_json("/user/%C3%A9t%C3%A9")
      assert.same({ "été" }, v.args)
    end)

    it("matches static segments written with escapes", function()
      assert.equal("Hello, HEAD!", H.get(srv, "/%68ello").body)
    end)

    it("req.path is decoded, req.raw_path is as sent", function()
      local v = get_json("/raw/a%20b/c%2Bd?x=%20")
      assert.equal("/raw/a b/c+d", v.path)
      assert.equal("/raw/a%20b/c%2Bd", v.raw_path)
      assert.same({ "a b/c+d" }, v.args)
    end)

    it("invalid percent-encoding is 400", function()
      for _, p in ipairs { "/%zz", "/user/%zz", "/user/a%2", "/user/%",
                           "/user/a%00b" } do
        local res = H.get(srv, p)
        assert.equal(400, res.status, p)
      end
    end)

    it("serves the next connection after a 400", function()
      assert.equal(400, H.get(srv, "/%zz").status)
      assert.equal("index", H.get(srv, "/").body)
    end)
  end)

  describe("app:url_for", function()
    local function url_for(case)
      local res = H.get(srv, "/urlfor/" .. case)
      assert.equal(200, res.status, res.body)
      return res.body
    end

    it("builds the path of a named route, percent-encoding values", function()
      assert.equal("/user/a%20b%2Fc", url_for("user"))
      assert.equal("/sleep/5", url_for("sleep"))
      assert.equal("/files/a%20b/c.txt", url_for("files"))
      assert.equal("/form", url_for("form"))
    end)

    it("adds the query, and params the pattern does not use", function()
      assert.equal("/user/x?q=1%202&z=%26", url_for("query"))
      assert.equal("/user/x?page=2", url_for("extra"))
    end)

    it("the built paths route back to their handlers", function()
      local v = get_json(url_for("spaced"))
      assert.same({ "a b" }, v.args)
      v = get_json(url_for("files"))
      assert.same({ "a b/c.txt" }, v.args)
      v = get_json(url_for("sleep"))
      assert.same({ 5 }, v.args)
    end)

    -- Regression: url_for encodes '/' in a <name> value as %2F, and the
    -- server once decoded it before splitting the path into segments, so
    -- "/user/a%20b%2Fc" was matched as "/user/a b/c": 404.
    it("a '/' in a <name> value survives url_for and routing", function()
      local built = url_for("user")
      assert.equal("/user/a%20b%2Fc", built)
      local v = get_json(built)
      assert.same({ "a b/c" }, v.args)
      assert.same({ name = "a b/c" }, v.params)
    end)

    it("a literal '%2F' in a value survives url_for and routing", function()
      local built = url_for("tricky")
      assert.equal("/user/50%252F50%2Fx", built)
      local v = get_json(built)
      assert.same({ "50%2F50/x" }, v.args)
      assert.same({ name = "50%2F50/x" }, v.params)
      assert.equal("/user/50%2F50/x", v.path)
      v = get_json("/user/a%252Fb")
      assert.same({ "a%2Fb" }, v.args)
    end)

    it("raises for an unknown name, blaming the caller", function()
      local body = url_for("unknown")
      assert.matches("^ERR:", body)
      assert.matches("no route named 'nope'", body, 1, true)
      assert.matches("routing%.lua:%d+:", body)
    end)

    it("raises for a missing parameter, blaming the caller", function()
      local body = url_for("missing")
      assert.matches("^ERR:", body)
      assert.matches("missing parameter 'name'", body, 1, true)
      assert.matches("routing%.lua:%d+:", body)
      assert.not_matches("url%.lua", body)
    end)
  end)

  describe("app:mount", function()
    it("serves the sub-app's routes under the prefix", function()
      local v = get_json("/api/items/7")
      assert.equal(7, v.id)
      assert.equal("integer", v.type)
      assert.equal("/api/items/7", v.path)
      assert.equal(404, H.get(srv, "/items/7").status)
      assert.equal(404, H.get(srv, "/api/items/x").status)
    end)

    it("runs the sub-app's before hooks for its routes only", function()
      local v = get_json("/api/items/1")
      assert.is_true(v.sub)
      assert.is_true(v.main)      -- the parent's hooks wrap mounted routes
      v = get_json("/ctxcheck")
      assert.is_true(v.main)
      assert.is_false(v.sub)
    end)

    it("names mounted routes with the sub-app's name", function()
      assert.equal("/api/items/7", H.get(srv, "/urlfor/mounted").body)
      -- url_for on the parent from a mounted handler
      assert.equal("/api/items/42", H.get(srv, "/api/where").body)
    end)

    it("the sub-app's own url_for gives the paths as served", function()
      assert.equal("/api/items/3", H.get(srv, "/api/self").body)
    end)

    it("mounted routes get 405 and automatic OPTIONS too", function()
      local res = H.request(srv, "POST", "/api/items/1", { body = "" })
      assert.equal(405, res.status)
      assert.equal("GET, HEAD, OPTIONS", res.headers["allow"])
    end)
  end)

  describe("declaration errors", function()
    it("a duplicate route makes the app fail to load, with file:line", function()
      local file = "spec/apps/routing_dup.lua"
      local line = line_of(file, "-- the duplicate")
      local code, _, err = H.cli { "routes", file }
      assert.equal(1, code)
      assert.matches("routing_dup%.lua:" .. line .. ":", err)
      assert.matches("/a", err, 1, true)
    end)

    it("a bad pattern raises with the user's file:line", function()
      local file = "spec/apps/routing_badpattern.lua"
      local line = line_of(file, "-- the bad pattern")
      local code, _, err = H.cli { "routes", file }
      assert.equal(1, code)
      assert.matches("routing_badpattern%.lua:" .. line .. ":", err)
      assert.matches("bogus", err, 1, true)
    end)

    it("bad opts.methods raises with the user's file:line", function()
      local file = "spec/apps/routing_badmethods.lua"
      local line = line_of(file, "-- the bad opts")
      local code, _, err = H.cli { "routes", file }
      assert.equal(1, code)
      -- the message itself (before any traceback) blames the app file
      local first = err:match("[^\n]*opts%.methods[^\n]*")
      assert.truthy(first, err)
      assert.matches("routing_badmethods%.lua:" .. line .. ":", first)
    end)

    it("an unknown method in opts.methods raises with the user's "
      .. "file:line", function()
      local file = "spec/apps/routing_unknownmethod.lua"
      local line = line_of(file, "-- the unknown method")
      local code, out, err = H.cli { "routes", file }
      assert.equal(1, code, out)
      assert.matches("routing_unknownmethod%.lua:" .. line .. ": unknown "
        .. "HTTP method 'QUERY'", err)
    end)

    it("the same app fails to run, too", function()
      local code, out, err = H.cli { "run", "spec/apps/routing_dup.lua",
                                     "--port", "0" }
      assert.equal(1, code)
      assert.not_matches("listening", out)
      assert.matches("routing_dup%.lua:%d+:", err)
    end)
  end)

  describe("moonlet routes", function()
    it("prints one line per route: METHODS PATTERN NAME", function()
      local code, out, err = H.cli { "routes", APP }
      assert.equal(0, code, err)
      local rows = {}
      local count = 0
      for line in out:gmatch("[^\n]+") do
        count = count + 1
        local methods, pattern, name = line:match("^(%S+)%s+(%S+)%s*(%S*)$")
        assert.truthy(methods, "bad line: " .. line)
        rows[pattern] = rows[pattern] or {}
        rows[pattern][#rows[pattern] + 1] = { methods = methods, name = name }
      end
      -- every route declared in the app file, mounted ones included
      local declared = 0
      for line in io.lines(APP) do
        local m = line:match("^%s*[a-z]+:([a-z]+)%(\"/")
        if m and m ~= "mount" then
          declared = declared + 1
        end
      end
      assert.equal(declared, count)

      local function methods_of(row)
        local set = {}
        for m in row.methods:gmatch("[A-Z]+") do set[#set + 1] = m end
        table.sort(set)
        return table.concat(set, ",")
      end
      assert.equal("GET,POST", methods_of(rows["/form"][1]))
      assert.equal("form", rows["/form"][1].name)
      assert.equal("user", rows["/user/<name>"][1].name)
      assert.equal("GET", methods_of(rows["/user/<name>"][1]))
      assert.equal("sleep", rows["/sleep/<int:n>"][1].name)
      assert.equal("api.item", rows["/api/items/<int:id>"][1].name)
      assert.equal(6, #rows["/m"])
    end)

    it("prints patterns and method lists of 100 characters and more",
      function()
        local long = "/" .. ("long"):rep(30) .. "/<int:id>"
        local file = H.write_app(([[
local app = require("moonlet").app()
app:route("%s", { methods = { "GET", "POST", "PUT", "PATCH", "DELETE",
  "OPTIONS", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE", "LOCK",
  "UNLOCK", "SEARCH", "REPORT", "MKACTIVITY", "CHECKOUT", "MERGE" } },
  print)
app:get("/", print)
return app
]]):format(long))
        local code, out, err = H.cli { "routes", file }
        assert.equal(0, code, err)
        local methods, pattern = out:match("^(%S+)%s+(%S+)%s+%-\n")
        assert.equal(long, pattern)
        assert.is_true(#methods >= 100, methods)
        assert.matches("\nGET%s+/%s+%-\n$", out)
      end)
  end)
end)
