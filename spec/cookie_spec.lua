local cookie = require "moonlet.cookie"

-- Calls f, which must raise; returns the message after checking that it
-- blames this file (error level 2), not cookie.lua.
local function error_of(f)
  local ok, err = pcall(f)
  assert.is_false(ok, "expected an error")
  assert.truthy(err:find("cookie_spec%.lua:%d+:"), err)
  return err
end

local function imf_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

describe("moonlet.cookie", function()
  describe("parse", function()
    it("parses name=value pairs", function()
      assert.same({ a = "1", b = "2" }, cookie.parse("a=1; b=2"))
      assert.same({ a = "1", b = "2" }, cookie.parse("a=1;b=2"))
    end)

    it("trims blanks around names and values", function()
      assert.same({ a = "1", b = "x y" }, cookie.parse("  a = 1 ;\tb=  x y  ;  "))
    end)

    it("strips one pair of surrounding double quotes", function()
      assert.same({ a = "q", b = '"q"', c = "", d = '"', e = 'x"' },
                  cookie.parse([[a="q"; b=""q""; c=""; d="; e=x"]]))
    end)

    it("keeps the first occurrence of a name", function()
      assert.same({ a = "1", b = "2" }, cookie.parse("a=1; b=2; a=3"))
    end)

    it("skips pairs without '=' and empty names", function()
      assert.same({ b = "2" }, cookie.parse("flag; =1; b=2;;"))
    end)

    it("keeps '=' inside values", function()
      assert.same({ t = "a=b==" }, cookie.parse("t=a=b=="))
    end)

    it("does not percent-decode values", function()
      assert.same({ a = "x%20y", b = "1+2" }, cookie.parse("a=x%20y; b=1+2"))
    end)

    it("returns an empty table for nil or ''", function()
      assert.same({}, cookie.parse(nil))
      assert.same({}, cookie.parse(""))
      assert.same({}, cookie.parse("   "))
    end)

    it("raises on a non-string", function()
      error_of(function() cookie.parse(42) end)
    end)
  end)

  describe("build", function()
    it("builds name=value without options", function()
      assert.equal("sid=abc", cookie.build("sid", "abc"))
      assert.equal("sid=abc", cookie.build("sid", "abc", {}))
      assert.equal("n=42", cookie.build("n", 42))
      assert.equal("empty=", cookie.build("empty", ""))
    end)

    it("accepts every token character in a name", function()
      local name = "Az09!#$%&'*+-.^_`|~"
      assert.equal(name .. "=v", cookie.build(name, "v"))
    end)

    it("accepts every cookie-octet in a value", function()
      local octets = { "!" }
      for c = 0x23, 0x2B do octets[#octets + 1] = string.char(c) end
      for c = 0x2D, 0x3A do octets[#octets + 1] = string.char(c) end
      for c = 0x3C, 0x5B do octets[#octets + 1] = string.char(c) end
      for c = 0x5D, 0x7E do octets[#octets + 1] = string.char(c) end
      local value = table.concat(octets)
      assert.equal("a=" .. value, cookie.build("a", value))
    end)

    it("adds Path, Domain, Secure, HttpOnly and SameSite", function()
      assert.equal("a=1; Path=/app; Domain=example.com; Secure; HttpOnly; SameSite=Strict",
                   cookie.build("a", 1, { path = "/app", domain = "example.com",
                                          secure = true, httponly = true,
                                          samesite = "Strict" }))
    end)

    it("leaves out false flags", function()
      assert.equal("a=1", cookie.build("a", 1, { secure = false, httponly = false,
                                                 samesite = false }))
    end)

    it("normalizes the case of SameSite", function()
      assert.equal("a=1; SameSite=Lax", cookie.build("a", 1, { samesite = "lax" }))
      assert.equal("a=1; SameSite=None", cookie.build("a", 1, { samesite = "NONE" }))
      assert.equal("a=1; SameSite=Strict", cookie.build("a", 1, { samesite = "sTrIcT" }))
    end)

    it("adds Max-Age and the matching Expires", function()
      local before = os.time()
      local header = cookie.build("a", 1, { max_age = 3600 })
      local after = os.time()
      local date = header:match("^a=1; Max%-Age=3600; Expires=(.+)$")
      assert.truthy(date, header)
      assert.truthy(date == imf_date(before + 3600) or date == imf_date(after + 3600),
                    date)
    end)

    it("accepts an integral float for max_age", function()
      assert.truthy(cookie.build("a", 1, { max_age = 60.0 }):find("; Max-Age=60;", 1, true))
    end)

    it("expires at the epoch for max_age <= 0", function()
      assert.equal("a=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                   cookie.build("a", "", { max_age = 0 }))
      assert.equal("a=; Max-Age=-5; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                   cookie.build("a", "", { max_age = -5 }))
    end)

    it("formats a numeric expires as an IMF-fixdate", function()
      assert.equal("a=1; Expires=Sun, 09 Sep 2001 01:46:40 GMT",
                   cookie.build("a", 1, { expires = 1000000000 }))
      assert.equal("a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT",
                   cookie.build("a", 1, { expires = 0.5 }))
    end)

    it("uses a string expires as it is", function()
      assert.equal("a=1; Expires=Wed, 21 Oct 2015 07:28:00 GMT",
                   cookie.build("a", 1, { expires = "Wed, 21 Oct 2015 07:28:00 GMT" }))
    end)

    it("lets expires replace the Expires derived from max_age", function()
      assert.equal("a=1; Max-Age=10; Expires=Sun, 09 Sep 2001 01:46:40 GMT",
                   cookie.build("a", 1, { max_age = 10, expires = 1000000000 }))
    end)

    it("raises on an invalid name", function()
      for _, name in ipairs { "", "a b", "a=b", "a;b", "a,b", "a\"b", "a(b)",
                              "a/b", "a@b", "a:b", "a\tb", "a\0b", "\127", "é",
                              "a[b]", "a?b", "a{b}", "a\\b" } do
        local err = error_of(function() cookie.build(name, "v") end)
        assert.truthy(err:find("invalid cookie name", 1, true), err)
      end
      error_of(function() cookie.build(nil, "v") end)
      error_of(function() cookie.build(1, "v") end)
    end)

    it("raises on a value with bytes that need encoding", function()
      for _, value in ipairs { "a b", "a;b", "a,b", 'a"b', '"quoted"', "a\\b",
                               "a\tb", "a\r\nSet-Cookie: x=y", "\0", "\31",
                               "\127", "é" } do
        local err = error_of(function() cookie.build("a", value) end)
        assert.truthy(err:find("encode it", 1, true), err)
      end
    end)

    it("raises on a value that is not a string or number", function()
      error_of(function() cookie.build("a", nil) end)
      error_of(function() cookie.build("a", true) end)
    end)

    it("raises on a Path or Domain that could break the header", function()
      for _, key in ipairs { "path", "domain" } do
        for _, v in ipairs { "/a;b", "/a\r\nX: y", "/a\0", "/\127" } do
          local err = error_of(function() cookie.build("a", 1, { [key] = v }) end)
          assert.truthy(err:find("cookie option '" .. key .. "'", 1, true), err)
        end
        error_of(function() cookie.build("a", 1, { [key] = 1 }) end)
      end
    end)

    it("raises on a bad SameSite", function()
      for _, v in ipairs { "lax ", "", "Relaxed", true, 1 } do
        local err = error_of(function() cookie.build("a", 1, { samesite = v }) end)
        assert.truthy(err:find("samesite", 1, true), err)
      end
    end)

    it("raises on a bad max_age", function()
      for _, v in ipairs { 1.5, "60", true, 1 / 0 } do
        local err = error_of(function() cookie.build("a", 1, { max_age = v }) end)
        assert.truthy(err:find("max_age", 1, true), err)
      end
    end)

    it("raises on a bad expires", function()
      error_of(function() cookie.build("a", 1, { expires = true }) end)
      error_of(function() cookie.build("a", 1, { expires = 0 / 0 }) end)
      error_of(function() cookie.build("a", 1, { expires = "x; Secure" }) end)
    end)

    it("raises on an unknown option, such as a misspelt flag", function()
      local err = error_of(function() cookie.build("a", 1, { httpOnly = true }) end)
      assert.truthy(err:find("unknown cookie option 'httpOnly'", 1, true), err)
      error_of(function() cookie.build("a", 1, { "secure" }) end)
    end)

    it("raises on options that are not a table", function()
      error_of(function() cookie.build("a", 1, "Secure") end)
    end)

    it("round-trips through parse", function()
      local header = cookie.build("sid", "a.b-c_d~e%20f", { path = "/" })
      local pair = header:match("^[^;]*")
      assert.same({ sid = "a.b-c_d~e%20f" }, cookie.parse(pair))
    end)
  end)
end)
