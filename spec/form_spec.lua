local form = require "moonlet.form"

local CRLF = "\r\n"

-- Joins lines with CRLF, byte for byte: no trailing line break is added.
local function crlf(...)
  return table.concat({ ... }, CRLF)
end

describe("moonlet.form", function()
  describe("parse with other content types", function()
    it("returns three empty tables for a missing content type", function()
      local f, files, all = form.parse(nil, "a=1")
      assert.same({}, f)
      assert.same({}, files)
      assert.same({}, all)
    end)

    it("returns three empty tables for unknown types", function()
      for _, ct in ipairs { "text/plain", "application/json", "",
                            "application/x-www-form-urlencodedX",
                            "multipart/mixed; boundary=x" } do
        local f, files, all = form.parse(ct, "a=1")
        assert.same({}, f, ct)
        assert.same({}, files, ct)
        assert.same({}, all, ct)
      end
    end)

    it("raises on a body that is not a string", function()
      local ok, err = pcall(function()
        form.parse("application/x-www-form-urlencoded", {})
      end)
      assert.is_false(ok)
      assert.truthy(err:find("form_spec%.lua:%d+:"), err)
    end)
  end)

  describe("parse with application/x-www-form-urlencoded", function()
    it("parses first values, all values, and no files", function()
      local f, files, all = form.parse("application/x-www-form-urlencoded",
                                       "a=1&a=2&b&c=x+y%21&&d=%zz")
      assert.same({ a = "1", b = "", c = "x y!", d = "%zz" }, f)
      assert.same({}, files)
      assert.same({ a = { "1", "2" }, b = { "" }, c = { "x y!" }, d = { "%zz" } }, all)
    end)

    it("accepts any case and parameters after the type", function()
      local f = form.parse(" Application/X-WWW-Form-URLEncoded ; charset=UTF-8",
                           "k=v")
      assert.same({ k = "v" }, f)
    end)

    it("treats a missing body as empty", function()
      local f, files, all = form.parse("application/x-www-form-urlencoded", nil)
      assert.same({}, f)
      assert.same({}, files)
      assert.same({}, all)
    end)
  end)

  describe("parse with multipart/form-data", function()
    local CT = "multipart/form-data; boundary=XyZ"

    it("parses fields and files from a CRLF body", function()
      local binary = "\0\1\255PNG\r\n--XyZnot\r\n--X\n--XyZ-\r\n\r\n--\r\n"
      local body = crlf(
        "--XyZ",
        'Content-Disposition: form-data; name="title"',
        "",
        "Hello, world",
        "--XyZ",
        'Content-Disposition: form-data; name="upload"; filename="pic.png"',
        "Content-Type: image/png",
        "",
        binary,
        "--XyZ",
        'Content-Disposition: form-data; name="title"',
        "",
        "second",
        "--XyZ--",
        "")
      local f, files, all = form.parse(CT, body)
      assert.same({ title = "Hello, world" }, f)
      assert.same({ title = { "Hello, world", "second" } }, all)
      assert.same({
        upload = { filename = "pic.png", content_type = "image/png", body = binary },
      }, files)
    end)

    it("keeps CR, LF and '--' inside values", function()
      local value = "line1\r\nline2\n\r\n--\r\n-- XyZ\r\n--Xy\r\n"
      local body = crlf(
        "--XyZ",
        'Content-Disposition: form-data; name="text"',
        "",
        value,
        "--XyZ--")
      local f = form.parse(CT, body)
      assert.equal(value, f.text)
    end)

    it("handles a value that is only the start of the boundary", function()
      -- "--XyZW" begins like the delimiter but is not followed by a line
      -- break or "--", so it is content.
      local body = crlf(
        "--XyZ",
        'Content-Disposition: form-data; name="a"',
        "",
        "x",
        "--XyZW",
        "y",
        "--XyZ--")
      local f = form.parse(CT, body)
      assert.equal("x\r\n--XyZW\r\ny", f.a)
    end)

    it("ignores the preamble and the epilogue", function()
      local body = crlf(
        "This is a preamble.",
        "--XyZ followed by text is no delimiter, nor is this: --XyZ",
        "--XyZ",
        'Content-Disposition: form-data; name="a"',
        "",
        "1",
        "--XyZ--",
        "This is an epilogue.",
        "--XyZ",
        'Content-Disposition: form-data; name="b"',
        "",
        "2",
        "--XyZ--",
        "")
      local f, files, all = form.parse(CT, body)
      assert.same({ a = "1" }, f)
      assert.same({ a = { "1" } }, all)
      assert.same({}, files)
    end)

    it("accepts transport padding after a delimiter", function()
      local body = crlf(
        "--XyZ \t",
        'Content-Disposition: form-data; name="a"',
        "",
        "1",
        "--XyZ--")
      assert.same({ a = "1" }, (form.parse(CT, body)))
    end)

    it("reads a quoted boundary, with any parameter case", function()
      local ct = 'Multipart/Form-Data; charset=utf-8; BOUNDARY="b=o;u n:d"'
      local body = crlf(
        "--b=o;u n:d",
        'Content-Disposition: form-data; name="a"',
        "",
        "1",
        "--b=o;u n:d--")
      assert.same({ a = "1" }, (form.parse(ct, body)))
    end)

    it("reads a token boundary with characters such as '=' and '/'", function()
      local ct = "multipart/form-data; boundary=----Web/Kit=Form+Bo'und(ary)"
      local body = crlf(
        "------Web/Kit=Form+Bo'und(ary)",
        'Content-Disposition: form-data; name="a"',
        "",
        "1",
        "------Web/Kit=Form+Bo'und(ary)--")
      assert.same({ a = "1" }, (form.parse(ct, body)))
    end)

    it("unescapes quoted names and filenames", function()
      local body = crlf(
        "--XyZ",
        [[Content-Disposition: form-data; name="say \"hi\"; now"; filename="a\\b.txt"]],
        "",
        "x",
        "--XyZ",
        [[content-disposition:form-data;name=plain]],
        "",
        "y",
        "--XyZ--")
      local f, files = form.parse(CT, body)
      assert.same({ plain = "y" }, f)
      assert.same({ ['say "hi"; now'] = {
        filename = [[a\b.txt]],
        content_type = "application/octet-stream",
        body = "x",
      } }, files)
    end)

    it("ignores filename* and unknown parameters", function()
      local body = crlf(
        "--XyZ",
        "Content-Disposition: form-data; name=\"f\"; filename*=UTF-8''%C3%A9.txt; "
          .. 'filename="e.txt"; size=3',
        "",
        "abc",
        "--XyZ--")
      local _, files = form.parse(CT, body)
      assert.equal("e.txt", files.f.filename)
    end)

    it("keeps the first file of a name, and empty file parts", function()
      local body = crlf(
        "--XyZ",
        'Content-Disposition: form-data; name="f"; filename=""',
        "Content-Type: application/octet-stream",
        "",
        "",
        "--XyZ",
        'Content-Disposition: form-data; name="f"; filename="second.txt"',
        "",
        "2",
        "--XyZ--")
      local f, files, all = form.parse(CT, body)
      assert.same({}, f)
      assert.same({}, all)
      assert.same({ f = { filename = "", content_type = "application/octet-stream",
                          body = "" } }, files)
    end)

    it("gives an empty value for an empty field", function()
      local body = crlf(
        "--XyZ",
        'Content-Disposition: form-data; name="empty"',
        "",
        "",
        "--XyZ--")
      assert.same({ empty = "" }, (form.parse(CT, body)))
    end)

    it("skips parts without a name or without headers", function()
      local body = crlf(
        "--XyZ",
        "Content-Disposition: form-data",
        "",
        "no name",
        "--XyZ",
        "Content-Type: text/plain",
        "",
        "no disposition",
        "--XyZ",
        "",
        "no headers",
        "--XyZ",
        'Content-Disposition: form-data; name="ok"',
        "",
        "yes",
        "--XyZ--")
      local f, files, all = form.parse(CT, body)
      assert.same({ ok = "yes" }, f)
      assert.same({}, files)
      assert.same({ ok = { "yes" } }, all)
    end)

    it("reads header names in any case and lets the first one win", function()
      local body = crlf(
        "--XyZ",
        'CONTENT-DISPOSITION :  form-data; name="f"; filename="a.txt"',
        "content-type: text/plain",
        "Content-Type: image/gif",
        'Content-Disposition: form-data; name="g"',
        "",
        "hi",
        "--XyZ--")
      local _, files = form.parse(CT, body)
      assert.same({ f = { filename = "a.txt", content_type = "text/plain",
                          body = "hi" } }, files)
    end)

    it("accepts bare LF line breaks", function()
      local body = table.concat({
        "--XyZ",
        'Content-Disposition: form-data; name="a"',
        "",
        "1\r",   -- a CR before the delimiter's LF is still dropped
        "--XyZ",
        'Content-Disposition: form-data; name="b"',
        "",
        "2",
        "--XyZ--",
      }, "\n")
      assert.same({ a = "1", b = "2" }, (form.parse(CT, body)))
    end)

    it("returns empty tables for an empty body or one with no parts", function()
      local f, files, all = form.parse(CT, "")
      assert.same({}, f)
      assert.same({}, files)
      assert.same({}, all)
      f, files, all = form.parse(CT, "--XyZ--\r\n")
      assert.same({}, f)
      assert.same({}, files)
      assert.same({}, all)
    end)

    it("fails on a missing boundary", function()
      for _, ct in ipairs { "multipart/form-data", "multipart/form-data; boundary=",
                            'multipart/form-data; boundary=""',
                            "multipart/form-data; charset=utf-8" } do
        local f, err = form.parse(ct, "--x--")
        assert.is_nil(f, ct)
        assert.equal("missing multipart boundary", err)
      end
    end)

    describe("fails on a malformed body", function()
      local full = crlf(
        "--XyZ",
        'Content-Disposition: form-data; name="a"',
        "",
        "value",
        "--XyZ--",
        "")

      it("accepts the full body (control)", function()
        assert.same({ a = "value" }, (form.parse(CT, full)))
      end)

      it("truncated anywhere before the close delimiter", function()
        -- Every strict prefix that ends before "--XyZ--" is complete.
        local close = full:find("\r\n--XyZ--", 1, true)
        for n = 1, close + #"\r\n--XyZ--" - 2 do
          local f, err = form.parse(CT, full:sub(1, n))
          assert.is_nil(f, ("prefix of %d bytes"):format(n))
          assert.equal("malformed multipart body", err)
        end
      end)

      it("with no delimiter at all", function()
        local f, err = form.parse(CT, "just some text\r\n")
        assert.is_nil(f)
        assert.equal("malformed multipart body", err)
      end)

      it("with a boundary other than the announced one", function()
        local f, err = form.parse("multipart/form-data; boundary=other", full)
        assert.is_nil(f)
        assert.equal("malformed multipart body", err)
      end)

      it("with a part whose headers never end", function()
        local body = crlf(
          "--XyZ",
          'Content-Disposition: form-data; name="a"',
          "--XyZ",
          'Content-Disposition: form-data; name="b"',
          "",
          "2",
          "--XyZ--")
        local f, err = form.parse(CT, body)
        assert.is_nil(f)
        assert.equal("malformed multipart body", err)
      end)
    end)

    it("is fast on large and adversarial bodies", function()
      -- A 4 MB file full of near-boundaries and line breaks, plus many
      -- small parts: a quadratic parser would take minutes here.
      local noise = ("\r\n--XyZ-\r\n-\n--Xy\r\n\r\n"):rep(200000)
      local parts = { "--XyZ",
                      'Content-Disposition: form-data; name="big"; filename="n"',
                      "", noise }
      for i = 1, 20000 do
        parts[#parts + 1] = "--XyZ"
        parts[#parts + 1] = 'Content-Disposition: form-data; name="f' .. i .. '"'
        parts[#parts + 1] = ""
        parts[#parts + 1] = tostring(i)
      end
      parts[#parts + 1] = "--XyZ--"
      local body = table.concat(parts, CRLF)
      local t0 = os.clock()
      local f, files = form.parse(CT, body)
      local elapsed = os.clock() - t0
      assert.equal(noise, files.big.body)
      assert.equal("20000", f.f20000)
      assert.is_true(elapsed < 2, ("took %.2fs"):format(elapsed))

      -- Headers made of one huge line of blanks must not be quadratic.
      local blanks = crlf("--XyZ",
                          "Content-Disposition: form-data" .. (" "):rep(30000) .. "x",
                          "", "v", "--XyZ--")
      t0 = os.clock()
      assert.same({}, (form.parse(CT, blanks)))
      assert.is_true(os.clock() - t0 < 1)
    end)
  end)
end)
