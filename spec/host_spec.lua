-- Host, trailers and the request target (RFC 9112 §3.2, §7.1.2; RFC 9110
-- §7.2): what llhttp lets through and a server must refuse or normalize.
local H = require "helpers"
local cjson = require "cjson"

describe("Host, trailers and the target", function()
  local srv
  setup(function() srv = H.start("spec/apps/host.lua") end)
  teardown(function() srv:stop() end)

  -- The answer to raw bytes: {status, body as JSON when 200}, and
  -- whether the server then closed.
  local function ask(bytes)
    local c = H.raw(srv.port, 2)
    c:send(bytes)
    local res = assert(H.read_response(c))
    if res.status == 200 then res.json = cjson.decode(res.body) end
    c:settimeout(1)
    local _, err = c:receive("*a")  -- nothing more: "closed", not "timeout"
    res.closed = err == nil or err == "closed"
    c:close()
    return res
  end

  for name, head in pairs {
    ["no Host in HTTP/1.1"] = "GET /p HTTP/1.1\r\n\r\n",
    ["two Host lines"] = "GET /p HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ["a space in Host"] = "GET /p HTTP/1.1\r\nHost: a b\r\n\r\n",
    ["userinfo in Host"] = "GET /p HTTP/1.1\r\nHost: u@a\r\n\r\n",
    ["a port that is not a number"] = "GET /p HTTP/1.1\r\nHost: a:b\r\n\r\n",
    ["an absolute target with no host"] = "GET http:///p HTTP/1.1\r\n"
      .. "Host: a\r\n\r\n",
    ["an absolute target with a bad host"] = "GET http://a b/p HTTP/1.1\r\n"
      .. "Host: a\r\n\r\n",
    ["a scheme other than http(s)"] = "GET ftp://a/p HTTP/1.1\r\nHost: a"
      .. "\r\n\r\n",
    ["'*' for a method other than OPTIONS"] = "GET * HTTP/1.1\r\nHost: a"
      .. "\r\n\r\n",
  } do
    it("answers 400 and closes for " .. name, function()
      local res = ask(head)
      assert.equal(400, res.status)
      assert.is_true(res.closed)
    end)
  end

  it("answers 400 to a bad Host at once, not after waiting for the body",
    function()
      local c = H.raw(srv.port, 1)
      c:send("POST /p HTTP/1.1\r\nHost: a b\r\nContent-Length: 10\r\n\r\n")
      assert.equal("HTTP/1.1 400 Bad Request", c:receive("*l"))
      c:close()
    end)

  for _, host in ipairs { "a", "a:8080", "127.0.0.1:1", "[::1]:8080",
                          "xn--bcher-kva.example", "a.b-c_d~e%41", "" } do
    it("takes Host: " .. host, function()
      local res = ask("GET /p HTTP/1.1\r\nHost: " .. host .. "\r\n"
        .. "Connection: close\r\n\r\n")
      assert.equal(200, res.status)
      assert.equal(host, res.json.host)
    end)
  end

  it("takes HTTP/1.0 without Host", function()
    local res = ask("GET /p HTTP/1.0\r\n\r\n")
    assert.equal(200, res.status)
    assert.equal("none", res.json.host)
  end)

  it("keeps trailers out of the headers, Host and framing included",
    function()
      local res = ask("POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
        .. "chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\nHost: evil"
        .. "\r\nX-Trailer: 1\r\nContent-Length: 99\r\n\r\n")
      assert.equal(200, res.status)
      assert.equal("a", res.json.host)
      assert.equal("abc", res.json.body)
      assert.is_nil(res.json.headers["x-trailer"])
      assert.is_nil(res.json.headers["content-length"])
    end)

  it("routes an absolute target on its path, with its host as Host",
    function()
      local res = ask("GET http://h.example:81/p?q=1 HTTP/1.1\r\nHost: a\r\n"
        .. "Connection: close\r\n\r\n")
      assert.equal(200, res.status)
      assert.equal("h.example:81", res.json.host)
      assert.equal("/p", res.json.path)
      assert.equal("/p", res.json.raw_path)
      assert.equal("1", res.json.q)
      res = ask("GET HTTPS://h/p HTTP/1.1\r\nHost: a\r\nConnection: close"
        .. "\r\n\r\n")
      assert.equal(200, res.status)
      assert.equal("h", res.json.host)
    end)
end)
