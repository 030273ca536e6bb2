--- moonlet.template and moonlet.escape: templates in files next to the
-- app, compiled once per generation, reloaded with --reload.
local H = require "helpers"

assert(os.execute("make -s --no-print-directory module BUILD=build "
  .. ">/dev/null"), "make module failed")
package.cpath = "./build/?.so;" .. package.cpath
local moonlet = require "moonlet"
local template = moonlet.template

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

describe("moonlet.template", function()
  it("escapes <%= %>, writes <%- %> raw, runs <% %>", function()
    local t = template.compile([[
<ul>
<% for _, n in ipairs(notes) do -%>
  <li><%= n %></li>
<% end -%>
</ul><%- raw %><%= missing %>]])
    assert.equal([[
<ul>
  <li>&lt;b&gt;&amp;&quot;&#39;</li>
  <li>2</li>
</ul><b>ok</b>]], t:render{ notes = { "<b>&\"'", 2 }, raw = "<b>ok</b>" })
  end)

  it("moonlet.escape escapes the five characters and nil", function()
    assert.equal("&lt;a href=&quot;x&quot;&gt;&amp;&#39;", moonlet.escape(
      [[<a href="x">&']]))
    assert.equal("", moonlet.escape(nil))
    assert.equal("3", moonlet.escape(3))
  end)

  it("reports errors as name:LINE", function()
    local ok, err = pcall(template.compile, "a\nb\n<% if x then %>\n", "t.html")
    assert.is_false(ok)
    assert.matches("^t%.html:%d+:", err)
    ok, err = pcall(template.compile, "line 1\n<%= x", "u.html")
    assert.matches("^u%.html:2: a '<%%' with no '%%>'", err)
    local t = template.compile("1\n2\n<%= a.b %>", "v.html")
    ok, err = pcall(t.render, t, {})
    assert.matches("^v%.html:3: attempt to index", err)
  end)

  describe("a directory of templates", function()
    local dir
    setup(function()
      dir = os.tmpname()
      os.remove(dir)
      os.execute("mkdir -p " .. dir .. "/partials")
      write(dir .. "/layout.html",
        "<html><title><%= title %></title><%- content %></html>")
      write(dir .. "/page.html", '<% layout "layout.html" %>'
        .. "<% for _, n in ipairs(notes) do %>"
        .. '<%- render("partials/note.html", { note = n }) %><% end %>')
      write(dir .. "/partials/note.html", "<p><%= title %>:<%= note %></p>")
      write(dir .. "/.hidden", "<% broken")
    end)
    teardown(function() os.execute("rm -rf " .. dir) end)

    it("renders layouts and partials with the caller's variables", function()
      local views = template.dir(dir)
      assert.equal("<html><title>T&amp;</title><p>T&amp;:a</p>"
        .. "<p>T&amp;:&lt;b&gt;</p></html>",
        views:render("page.html", { title = "T&", notes = { "a", "<b>" } }))
      assert.has_error(function() views:render("nope.html") end,
        "no template 'nope.html' in " .. dir)
    end)

    it("fails at load, naming the file and line", function()
      write(dir .. "/bad.html", "ok\n<%= x %>\n<% if %>")
      local ok, err = pcall(template.dir, dir)
      os.remove(dir .. "/bad.html")
      assert.is_false(ok)
      assert.matches("bad%.html:3:", err)
    end)
  end)
end)

describe("templates in a served app", function()
  local srv, dir, app
  setup(function()
    app, dir = H.write_app([[
local moonlet = require "moonlet"
local views = moonlet.template.dir("views")
local app = moonlet.app()
app:get("/", function() return views:render("index.html", { who = "<you>" }) end)
app:get("/err", function() return views:render("err.html", {}) end)
return app
]])
    os.execute("mkdir -p " .. dir .. "/views")
    write(dir .. "/views/index.html", "hello <%= who %>")
    write(dir .. "/views/err.html", "line 1\nline 2 <%= nothing.here %>\n")
    srv = H.start(app, { args = { "--reload" } })
  end)
  teardown(function()
    srv:stop()
    os.execute("rm -rf " .. H.quote(dir))
  end)

  it("renders next to the app, escaped", function()
    local res = H.get(srv, "/")
    assert.equal(200, res.status)
    assert.equal("hello &lt;you&gt;", res.body)
    assert.matches("text/html", res.headers["content-type"])
  end)

  it("logs a failing template as file:LINE", function()
    assert.equal(500, H.get(srv, "/err").status)
    assert.truthy(H.wait_for_log(srv, "views/err%.html:2: attempt to index"))
  end)

  it("reloads an edited template, and keeps serving on a broken one",
    function()
      write(dir .. "/views/index.html", "bonjour <%= who %>")
      local deadline = H.now() + 5
      local body
      repeat
        H.pause(0.1)
        body = H.get(srv, "/").body
      until body:match("^bonjour") or H.now() > deadline
      assert.equal("bonjour &lt;you&gt;", body)
      write(dir .. "/views/index.html", "line 1\n<% if then %>")
      assert.truthy(H.wait_for_log(srv, "views/index%.html:2:[^\n]*", 5))
      assert.equal("bonjour &lt;you&gt;", H.get(srv, "/").body)
    end)
end)
