-- API §4: the request object, as a handler sees it, through a real server.
local H = require "helpers"
local cjson = require "cjson"

local srv

-- One raw request (text as sent) on a new connection; the response.
local function raw(text, opts)
  local c = H.raw(srv.port)
  assert(c:send(text))
  local res = assert(H.read_response(c, opts))
  c:close()
  return res
end

local function json(res)
  assert.are.equal(200, res.status, res.body)
  assert.matches("^application/json", res.headers["content-type"])
  return cjson.decode(res.body)
end

local function multipart(boundary, parts)
  local out = {}
  for _, p in ipairs(parts) do
    out[#out + 1] = "--" .. boundary .. "\r\n"
    local disp = 'Content-Disposition: form-data; name="' .. p.name .. '"'
    if p.filename then
      disp = disp .. '; filename="' .. p.filename .. '"'
    end
    out[#out + 1] = disp .. "\r\n"
    if p.type then
      out[#out + 1] = "Content-Type: " .. p.type .. "\r\n"
    end
    out[#out + 1] = "\r\n" .. p.body .. "\r\n"
  end
  out[#out + 1] = "--" .. boundary .. "--\r\n"
  return table.concat(out)
end

describe("requests (§4)", function()
  setup(function()
    srv = H.start("spec/apps/request_echo.lua")
  end)

  teardown(function()
    -- a clean exit after SIGTERM: no crash, no sanitizer report
    local log = srv:log()
    assert.are.equal(0, srv:stop(), log)
  end)

  describe("fields read from the request line", function()
    it("gives method, path, raw_path, query_string, version, remote_addr",
      function()
        local t = json(H.get(srv, "/echo?x=1&y=two"))
        assert.are.equal("GET", t.method)
        assert.are.equal("/echo", t.path)
        assert.are.equal("/echo", t.raw_path)
        assert.are.equal("x=1&y=two", t.query_string)
        assert.are.equal("1.1", t.version)
        assert.are.equal("127.0.0.1", t.remote_addr)
      end)

    it("passes other methods through", function()
      for _, m in ipairs { "POST", "PUT", "DELETE", "PATCH" } do
        local t = json(H.request(srv, m, "/echo"))
        assert.are.equal(m, t.method)
      end
    end)

    it("percent-decodes path but keeps raw_path as sent", function()
      local t = json(H.get(srv, "/echo/a%20b/42?q=%2F"))
      assert.are.equal("/echo/a b/42", t.path)
      assert.are.equal("/echo/a%20b/42", t.raw_path)
      assert.are.equal("q=%2F", t.query_string)
    end)

    it("decodes %2F in a segment without splitting it", function()
      local t = json(H.get(srv, "/echo/a%2Fb/3"))
      assert.are.equal("/echo/a/b/3", t.path)
      assert.are.equal("/echo/a%2Fb/3", t.raw_path)
      assert.are.equal("a/b", t.params.name)
      assert.are.equal("a/b", t.args.name)
    end)

    it("decodes %25 to a literal '%', even next to a %2F", function()
      -- "%252F" is the text "%2F", not a slash
      local t = json(H.get(srv, "/echo/x%252Fy/3"))
      assert.are.equal("/echo/x%2Fy/3", t.path)
      assert.are.equal("x%2Fy", t.params.name)
      t = json(H.get(srv, "/echo/x%252Fy%2Fz/3"))
      assert.are.equal("/echo/x%2Fy/z/3", t.path)
      assert.are.equal("x%2Fy/z", t.params.name)
      assert.are.equal("x%2Fy/z", t.args.name)
    end)

    it("answers 400 to a path with invalid percent-encoding or %00",
      function()
        assert.are.equal(400, H.get(srv, "/echo/a%zzb/3").status)
        assert.are.equal(400, H.get(srv, "/echo/a%00b/3").status)
        assert.are.equal(200, H.get(srv, "/echo").status)
      end)

    it("gives an empty query_string when there is no query", function()
      local t = json(H.get(srv, "/echo"))
      assert.are.equal("", t.query_string)
    end)

    it("says version 1.0 for an HTTP/1.0 request", function()
      local t = json(raw("GET /echo HTTP/1.0\r\nHost: x\r\n\r\n"))
      assert.are.equal("1.0", t.version)
    end)

    it("gives route params in req.params and as handler arguments",
      function()
        local t = json(H.get(srv, "/echo/alice/7"))
        assert.are.same({ name = "alice", n = 7 }, t.params)
        assert.are.same({ name = "alice", n = 7, n_type = "integer" }, t.args)
      end)

    it("gives an empty params table for a route without parameters",
      function()
        local t = json(H.get(srv, "/echo"))
        assert.are.same({}, t.params)
      end)
  end)

  describe("req.ctx", function()
    it("is shared between a before hook and the handler", function()
      local t = json(H.get(srv, "/ctx/set"))
      assert.are.equal("yes", t.from_before)
      assert.is_true(t.same)
    end)

    it("is fresh for every request", function()
      local t1 = json(H.get(srv, "/ctx/set"))
      assert.are.equal("nil", t1.before)
      local t2 = json(H.get(srv, "/ctx/get"))
      assert.are.equal("nil", t2.mark)
      assert.are.equal("yes", t2.from_before)
    end)

    it("is fresh for the next request on a kept-alive connection",
      function()
        local c = H.raw(srv.port)
        c:send("GET /ctx/set HTTP/1.1\r\nHost: x\r\n\r\n")
        local r1 = assert(H.read_response(c))
        c:send("GET /ctx/get HTTP/1.1\r\nHost: x\r\n\r\n")
        local r2 = assert(H.read_response(c))
        c:close()
        assert.are.equal("nil", json(r1).before)
        assert.are.equal("nil", json(r2).mark)
      end)
  end)

  describe("headers", function()
    it("answers any spelling of a name, in req.headers and req:header",
      function()
        local t = json(H.get(srv, "/headers", { headers = { ["X-Custom"] = "v1" } }))
        assert.are.equal("v1", t.upper)
        assert.are.equal("v1", t.lower)
        assert.are.equal("v1", t.mixed)
        assert.are.equal("v1", t.fn)
        assert.are.equal("v1", t.fn_lower)
        assert.are.equal("nil", t.missing)
        assert.are.equal("nil", t.missing_fn)
      end)

    it("stores names lower-cased", function()
      local t = json(H.get(srv, "/headers", { headers = { ["X-Custom"] = "v1" } }))
      assert.are.equal("v1", t.all["x-custom"])
      assert.is_nil(t.all["X-Custom"])
      assert.are.equal("127.0.0.1:" .. srv.port, t.all.host)
    end)

    it("gives the same answer in req.headers and req:header for a long name",
      function()
        local name = "X-" .. ("n"):rep(298)
        local t = json(H.get(srv, "/header_named?name=" .. name,
          { headers = { [name] = "v" } }))
        assert.are.equal("v", t.fn)
        assert.are.equal("v", t.table)
      end)

    it("joins repeated headers with ', ' in order", function()
      local t = json(raw("GET /headers HTTP/1.1\r\nHost: x\r\n"
        .. "X-Multi: one\r\nx-multi: two\r\nX-MULTI: three\r\n"
        .. "Connection: close\r\n\r\n"))
      assert.are.equal("one, two, three", t.multi)
      assert.are.equal("one, two, three", t.multi_fn)
    end)
  end)

  describe("query", function()
    it("gives the first value in req.query and all in req:query_all",
      function()
        local t = json(H.get(srv, "/query?a=1&b=x&a=2&a=3"))
        assert.are.equal("1", t.first_a)
        assert.are.equal("x", t.query.b)
        assert.are.same({ "1", "2", "3" }, t.all_a)
      end)

    it("gives an empty list from query_all for a missing name", function()
      local t = json(H.get(srv, "/query?a=1"))
      -- cjson encodes an empty table as an object
      assert.are.same({}, t.all_none)
    end)

    it("decodes '+' and %20 as spaces, and other escapes", function()
      local t = json(H.get(srv, "/query?a=hello+world&b=x%20y&c=%26%3D%2B"
        .. "&d%20e=f"))
      assert.are.equal("hello world", t.first_a)
      assert.are.equal("x y", t.query.b)
      assert.are.equal("&=+", t.query.c)
      assert.are.equal("f", t.query["d e"])
    end)

    it("gives an empty table when there is no query", function()
      local t = json(H.get(srv, "/query"))
      assert.are.same({}, t.query)
    end)
  end)

  describe("body", function()
    it("is the empty string when there is none", function()
      local t = json(H.get(srv, "/echo"))
      assert.are.equal("", t.body)
      assert.are.equal("string", t.body_type)
    end)

    it("is the whole body as sent", function()
      local body = ("0123456789"):rep(1000)
      local t = json(H.post(srv, "/echo", body))
      assert.are.equal(body, t.body)
    end)

    it("keeps binary bytes", function()
      local body = "\0\1\2\255\254\r\n\0end"
      local res = H.post(srv, "/echo-raw", body)
      assert.are.equal(200, res.status)
      assert.are.equal(body, res.body)
    end)
  end)

  describe("forms", function()
    it("parses an urlencoded body", function()
      local t = json(H.post(srv, "/form", "name=J%C3%B6rg+M&x=1&x=2&e=",
        { headers = { ["Content-Type"] = "application/x-www-form-urlencoded" } }))
      assert.are.equal("Jörg M", t.form.name)
      assert.are.equal("1", t.form.x)
      assert.are.equal("", t.form.e)
      assert.are.same({}, t.files)
    end)

    it("gives an empty form for another content type", function()
      local t = json(H.post(srv, "/form", "a=1",
        { headers = { ["Content-Type"] = "text/plain" } }))
      assert.are.same({}, t.form)
    end)

    it("parses a multipart body with fields and a binary file", function()
      local bin = {}
      for i = 0, 255 do bin[#bin + 1] = string.char(i) end
      bin = table.concat(bin) .. "\r\n--not-the-boundary\r\n"
      local hex = bin:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)
      local body = multipart("XyZb0undary", {
        { name = "title", body = "hello world" },
        { name = "upload", filename = "data.bin",
          type = "application/octet-stream", body = bin },
        { name = "note", filename = "n.txt", type = "text/plain",
          body = "text file" },
      })
      local t = json(H.post(srv, "/form", body, { headers = {
        ["Content-Type"] = "multipart/form-data; boundary=XyZb0undary" } }))
      assert.are.equal("hello world", t.form.title)
      assert.is_nil(t.form.upload)
      local f = t.files.upload
      assert.are.equal("data.bin", f.filename)
      assert.are.equal("application/octet-stream", f.content_type)
      assert.are.equal(#bin, f.len)
      assert.are.equal(hex, f.hex)
      assert.are.equal("n.txt", t.files.note.filename)
      assert.are.equal("text/plain", t.files.note.content_type)
      assert.are.equal(("text file"):gsub(".", function(ch)
        return ("%02x"):format(ch:byte()) end), t.files.note.hex)
    end)

    it("answers 400 to a malformed multipart body", function()
      local res = H.post(srv, "/form", "this is not multipart at all",
        { headers = { ["Content-Type"] = "multipart/form-data; boundary=abc" } })
      assert.are.equal(400, res.status)
    end)

    it("answers 400 to a multipart body without a close delimiter",
      function()
        local res = H.post(srv, "/form",
          '--abc\r\nContent-Disposition: form-data; name="a"\r\n\r\nvalue',
          { headers = { ["Content-Type"] = "multipart/form-data; boundary=abc" } })
        assert.are.equal(400, res.status)
      end)

    it("answers 400 to multipart without a boundary", function()
      local res = H.post(srv, "/form", "--abc--\r\n",
        { headers = { ["Content-Type"] = "multipart/form-data" } })
      assert.are.equal(400, res.status)
    end)
  end)

  describe("cookies", function()
    it("parses the Cookie header", function()
      local t = json(H.get(srv, "/cookies", { headers = {
        Cookie = 'session=abc123; theme="dark"; empty=' } }))
      assert.are.same({ session = "abc123", theme = "dark", empty = "" },
        t.cookies)
    end)

    it("is an empty table without a Cookie header", function()
      local t = json(H.get(srv, "/cookies"))
      assert.are.same({}, t.cookies)
    end)
  end)

  describe("req:json()", function()
    it("decodes a JSON body", function()
      local t = json(H.post(srv, "/json", '{"a":[1,2,3],"b":{"c":"d"}}',
        { headers = { ["Content-Type"] = "application/json" } }))
      assert.are.same({ a = { 1, 2, 3 }, b = { c = "d" } }, t.got)
    end)

    it("answers 400 to a body that is not JSON", function()
      local res = H.post(srv, "/json", "{not json",
        { headers = { ["Content-Type"] = "application/json" } })
      assert.are.equal(400, res.status)
    end)

    it("answers 400 to an empty body", function()
      local res = H.post(srv, "/json", "")
      assert.are.equal(400, res.status)
    end)

    it("logs no 500 for a bad JSON body", function()
      H.post(srv, "/json", "[1,2", {})
      assert.is_nil(srv:log():match("/json"))
    end)
  end)

  describe("a request object used after its response", function()
    it("raises a clear error and the server goes on", function()
      assert.are.equal(200, H.get(srv, "/stash").status)
      local t = json(H.get(srv, "/stale"))
      assert.is_false(t.method_ok)
      assert.matches("request is finished", t.method_err)
      assert.is_false(t.header_ok)
      assert.matches("request is finished", t.header_err)
      assert.is_false(t.query_ok)
      assert.matches("request is finished", t.query_err)
      assert.is_true(t.tostring_ok)
      assert.matches("finished", t.tostring)
      assert.are.equal("GET", t.current)
      -- the worker is fine
      assert.are.equal(200, H.get(srv, "/echo").status)
      assert.is_nil(H.server.status(srv))
    end)
  end)
end)
