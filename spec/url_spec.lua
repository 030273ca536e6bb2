local url = require "moonlet.url"

-- Calls f and returns the error it raises (a string), or fails the test.
local function error_of(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  return err
end

-- The message must point at this spec file (error level 2), not at url.lua.
local function assert_blames_caller(err)
  assert.is_truthy(err:find("url_spec%.lua:%d+:"), err)
end

describe("moonlet.url", function()
  describe("decode", function()
    it("decodes percent escapes, in either case", function()
      assert.equal("a b/c", url.decode("a%20b%2fc"))
      assert.equal("\0\255", url.decode("%00%fF"))
      assert.equal("é", url.decode("%C3%A9"))
    end)

    it("returns strings without escapes unchanged", function()
      assert.equal("", url.decode(""))
      assert.equal("abc", url.decode("abc"))
    end)

    it("keeps '+' as '+'", function()
      assert.equal("a+b", url.decode("a+b"))
      assert.equal("a+b", url.decode("a%2Bb"))
    end)

    it("decodes once only: %2525 is %25", function()
      assert.equal("%25", url.decode("%2525"))
      assert.equal("%", url.decode("%25"))
    end)

    it("rejects invalid escapes", function()
      for _, s in ipairs { "%zz", "%4", "%", "a%", "%4g", "%g4", "%%41",
                           "%41%", "ok%20then%2" } do
        local v, err = url.decode(s)
        assert.is_nil(v, s)
        assert.equal("invalid percent-encoding", err)
      end
    end)

    it("raises on a non-string", function()
      assert_blames_caller(error_of(function() url.decode(nil) end))
    end)
  end)

  describe("decode_form", function()
    it("turns '+' into a space before decoding", function()
      assert.equal("a b c", url.decode_form("a+b%20c"))
      assert.equal("a+b", url.decode_form("a%2Bb"))
    end)

    it("keeps invalid escapes literally", function()
      assert.equal("%zz", url.decode_form("%zz"))
      assert.equal("x%4", url.decode_form("x%4"))
      assert.equal("%A", url.decode_form("%%41"))
      assert.equal("100% sure", url.decode_form("100%+sure"))
    end)
  end)

  describe("encode", function()
    it("keeps unreserved characters", function()
      local s = "ABCXYZabcxyz0189-._~"
      assert.equal(s, url.encode(s))
    end)

    it("escapes everything else with uppercase hex", function()
      assert.equal("a%20b%2Fc%3F%26%3D%2B%25", url.encode("a b/c?&=+%"))
      assert.equal("%C3%A9%00%FF", url.encode("é\0\255"))
      assert.equal("", url.encode(""))
    end)

    it("accepts numbers", function()
      assert.equal("42", url.encode(42))
      assert.equal("-1.5", url.encode(-1.5))
    end)

    it("round-trips through decode", function()
      local all = {}
      for c = 0, 255 do all[#all + 1] = string.char(c) end
      local s = table.concat(all)
      assert.equal(s, url.decode(url.encode(s)))
    end)
  end)

  describe("encode_path", function()
    it("keeps '/' but escapes the rest like encode", function()
      assert.equal("/a%20b/c%3Fd/", url.encode_path("/a b/c?d/"))
      assert.equal("%25%2B~", url.encode_path("%+~"))
    end)
  end)

  describe("parse_query", function()
    it("returns the first value and all values of each name", function()
      local first, all = url.parse_query("a=1&a=2&b&c=")
      assert.same({ a = "1", b = "", c = "" }, first)
      assert.same({ a = { "1", "2" }, b = { "" }, c = { "" } }, all)
    end)

    it("skips empty pairs", function()
      local first, all = url.parse_query("&&a=1&&&b=2&")
      assert.same({ a = "1", b = "2" }, first)
      assert.same({ a = { "1" }, b = { "2" } }, all)
    end)

    it("decodes names and values with decode_form", function()
      local first = url.parse_query("na+me%21=v+a%20l&x=%zz&q=a%2Bb")
      assert.same({ ["na me!"] = "v a l", x = "%zz", q = "a+b" }, first)
    end)

    it("keeps '=' after the first one in the value", function()
      assert.same({ a = "b=c" }, (url.parse_query("a=b=c")))
    end)

    it("accepts an empty name", function()
      assert.same({ [""] = "x" }, (url.parse_query("=x")))
    end)

    it("returns empty tables for nil or ''", function()
      local f, a = url.parse_query(nil)
      assert.same({}, f)
      assert.same({}, a)
      f, a = url.parse_query("")
      assert.same({}, f)
      assert.same({}, a)
    end)

    it("keeps many values in order", function()
      local parts = {}
      for i = 1, 1000 do parts[i] = "k=" .. i end
      local first, all = url.parse_query(table.concat(parts, "&"))
      assert.equal("1", first.k)
      assert.equal(1000, #all.k)
      assert.equal("1000", all.k[1000])
    end)
  end)

  describe("build_query", function()
    it("sorts names and encodes names and values", function()
      assert.equal("a=x%20y&b%26c=1&z=%3D",
                   url.build_query { z = "=", a = "x y", ["b&c"] = 1 })
    end)

    it("repeats the name for a list, in order", function()
      assert.equal("a=2&a=1&b=x", url.build_query { b = "x", a = { 2, 1 } })
    end)

    it("writes numbers and booleans with tostring", function()
      assert.equal("f=1.5&n=3&t=true&u=false",
                   url.build_query { n = 3, f = 1.5, t = true, u = false })
    end)

    it("gives nothing for an empty list and '' for an empty table", function()
      assert.equal("", url.build_query {})
      assert.equal("b=1", url.build_query { a = {}, b = 1 })
    end)

    it("round-trips through parse_query", function()
      local t = { ["a b"] = { "1", "x&y", "é" }, c = "+" }
      local _, all = url.parse_query(url.build_query(t))
      assert.same({ ["a b"] = { "1", "x&y", "é" }, c = { "+" } }, all)
    end)

    it("raises on bad values", function()
      assert_blames_caller(error_of(function()
        url.build_query { a = function() end }
      end))
      assert_blames_caller(error_of(function() url.build_query { a = { {} } } end))
      assert_blames_caller(error_of(function() url.build_query { [1] = "x" } end))
      assert_blames_caller(error_of(function() url.build_query("a=1") end))
    end)
  end)

  describe("compile_pattern", function()
    it("splits static text and parameters", function()
      assert.same({
        "/user/", { name = "name", conv = "string" },
        "/", { name = "n", conv = "int" },
        "/", { name = "x", conv = "float" },
        "/", { name = "p", conv = "path" },
        "/", { name = "s", conv = "string" }, ".json",
      }, url.compile_pattern(
        "/user/<name>/<int:n>/<float:x>/<path:p>/<string:s>.json"))
    end)

    it("handles a pattern without parameters", function()
      assert.same({ "/" }, url.compile_pattern("/"))
      assert.same({ "/a/b/" }, url.compile_pattern("/a/b/"))
    end)

    it("handles adjacent parameters and a trailing parameter", function()
      assert.same({ "/", { name = "a", conv = "string" },
                    { name = "b", conv = "int" } },
                  url.compile_pattern("/<a><int:b>"))
    end)

    local bad = {
      ["no leading slash"] = { "user/<x>", "must start with '/'" },
      ["empty"] = { "", "must start with '/'" },
      ["unclosed"] = { "/a/<x", "unclosed '<'" },
      ["nested"] = { "/a/<x<y>", "unclosed '<'" },
      ["stray >"] = { "/a/x>", "'>' without '<'" },
      ["empty name"] = { "/a/<>", "invalid parameter name ''" },
      ["empty name after converter"] = { "/a/<int:>", "invalid parameter name ''" },
      ["bad name"] = { "/a/<1x>", "invalid parameter name '1x'" },
      ["name with space"] = { "/a/<int: x>", "invalid parameter name ' x'" },
      ["unknown converter"] = { "/a/<uuid:x>", "unknown converter 'uuid'" },
      ["empty converter"] = { "/a/<:x>", "unknown converter ''" },
      ["converter arguments"] = { "/a/<string(length=2):x>",
                                  "converter arguments are not supported" },
      ["duplicate"] = { "/<a>/<int:a>", "duplicate parameter 'a'" },
    }
    for what, case in pairs(bad) do
      it("raises on a bad pattern: " .. what, function()
        local err = error_of(function() url.compile_pattern(case[1]) end)
        assert_blames_caller(err)
        local expected = "bad route pattern '" .. case[1] .. "': " .. case[2]
        assert.equal(expected, err:sub(-#expected))
      end)
    end

    it("raises on a non-string", function()
      assert_blames_caller(error_of(function() url.compile_pattern(nil) end))
    end)
  end)

  describe("build_path", function()
    local function build(pattern, params)
      return url.build_path(url.compile_pattern(pattern), params, pattern)
    end

    it("fills in parameters", function()
      assert.equal("/user/bob/7", build("/user/<name>/<int:n>",
                                        { name = "bob", n = 7, extra = 1 }))
    end)

    it("encodes '/' in string parameters but not in path ones", function()
      assert.equal("/s/a%2Fb%20c", build("/s/<s>", { s = "a/b c" }))
      assert.equal("/p/a/b%20c", build("/p/<path:p>", { p = "a/b c" }))
      assert.equal("/p/%3F%23", build("/p/<path:p>", { p = "?#" }))
    end)

    it("copies static text as it is", function()
      assert.equal("/a b/x", build("/a b/<s>", { s = "x" }))
    end)

    it("accepts numbers for string and path parameters", function()
      assert.equal("/3/1.5", build("/<s>/<path:p>", { s = 3, p = 1.5 }))
    end)

    it("writes integral floats as integers for int", function()
      assert.equal("/3", build("/<int:n>", { n = 3.0 }))
      assert.equal("/-2", build("/<int:n>", { n = -2 }))
      assert.equal("/9007199254740993", build("/<int:n>", { n = 9007199254740993 }))
    end)

    it("writes floats so that they read back the same", function()
      assert.equal("/1.5", build("/<float:x>", { x = 1.5 }))
      assert.equal("/3.0", build("/<float:x>", { x = 3 }))
      assert.equal("/3.0", build("/<float:x>", { x = 3.0 }))
      local x = 0.1 + 0.2
      assert.equal(x, tonumber(build("/<float:x>", { x = x }):sub(2)))
    end)

    it("raises on a missing parameter, naming it and the pattern", function()
      local err = error_of(function() build("/u/<int:id>", {}) end)
      -- build is a local function of this file, so the blame still lands here
      assert_blames_caller(err)
      assert.truthy(err:find("missing parameter 'id' for '/u/<int:id>'", 1, true), err)
      err = error_of(function()
        url.build_path(url.compile_pattern("/<a>"), nil, "/<a>")
      end)
      assert.truthy(err:find("missing parameter 'a' for '/<a>'", 1, true), err)
    end)

    it("leaves out the pattern when it is not given", function()
      local err = error_of(function()
        url.build_path(url.compile_pattern("/<a>"), {})
      end)
      assert.equal("missing parameter 'a'", err:match(": (missing.*)$"))
    end)

    it("raises on a non-integer for int", function()
      for _, v in ipairs { 1.5, "3", true, 1 / 0, 0 / 0 } do
        local err = error_of(function() build("/<int:n>", { n = v }) end)
        assert_blames_caller(err)
        assert.truthy(err:find("parameter 'n' for '/<int:n>' must be an integer",
                               1, true), err)
      end
    end)

    it("raises on a non-number or non-finite number for float", function()
      for _, v in ipairs { "1.5", {}, 1 / 0, -1 / 0, 0 / 0 } do
        local err = error_of(function() build("/<float:x>", { x = v }) end)
        assert_blames_caller(err)
        assert.truthy(err:find("parameter 'x' for '/<float:x>' must be", 1, true), err)
      end
    end)

    it("raises on other types for string and path", function()
      for _, pattern in ipairs { "/<s>", "/<path:s>" } do
        local err = error_of(function() build(pattern, { s = true }) end)
        assert_blames_caller(err)
        assert.truthy(err:find("must be a string or a number, got boolean", 1, true), err)
      end
    end)
  end)
end)
