-- Static files (API §9), through a real server.  The spec writes its app
-- and fixtures in a temp dir: the app serves "www" next to it (a relative
-- directory, resolved against the app file, not the server's cwd), the
-- same directory by its absolute path, and again from a mounted app.
local H = require "helpers"
local socket = require "socket"

local APP = [[
local moonlet = require "moonlet"
local app = moonlet.app()
local here = debug.getinfo(1, "S").source:match("^@(.*)/")
app:static("/s", "www", { name = "file" })
app:static("/abs/", here .. "/www")
local bp = moonlet.app()
bp:static("/files", "www")
app:mount("/bp", bp)
app:before(function(req)
  if req.path:find("^/s/private") then return "no", 403 end
end)
app:after(function(req, resp) resp.headers["X-After"] = "1" end)
app:errorhandler(404, function(req) return "no file at " .. req.path end)
app:get("/", function() return "root" end)
app:get("/url", function()
  return app:url_for("file", { filename = "a b.txt" })
end)
return app
]]

-- Bytes 0..255 and CR/LF/NUL: what a text-minded path would damage.
local BINARY = (function()
  local t = {}
  for i = 0, 255 do t[#t + 1] = string.char(i) end
  return table.concat(t):rep(64) .. "\0\r\n\r\n\0"
end)()

local TYPES = {
  html = "text/html; charset=utf-8", css = "text/css; charset=utf-8",
  js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", xml = "text/xml; charset=utf-8",
  svg = "image/svg+xml", png = "image/png", jpg = "image/jpeg",
  jpeg = "image/jpeg", gif = "image/gif", webp = "image/webp",
  ico = "image/x-icon", wasm = "application/wasm", pdf = "application/pdf",
  woff = "font/woff", woff2 = "font/woff2", mp4 = "video/mp4",
  webm = "video/webm", mp3 = "audio/mpeg", wav = "audio/wav",
  zip = "application/zip", gz = "application/gzip",
  tar = "application/x-tar", csv = "text/csv; charset=utf-8",
  md = "text/markdown; charset=utf-8", PNG = "image/png",
  unknownext = "application/octet-stream",
}

local function write(path, data)
  local f = assert(io.open(path, "wb"))
  f:write(data)
  f:close()
end

local function sh(cmd)
  assert(os.execute(cmd), cmd)
end

-- The server's resident memory in KiB, and its open descriptors.
local function rss_kib(pid)
  return tonumber(H.slurp("/proc/" .. pid .. "/status")
    :match("VmRSS:%s*(%d+)"))
end

local function nfds(pid)
  local p = io.popen("ls /proc/" .. pid .. "/fd | wc -l")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

-- Sends a raw request; returns the open socket for reading.
local function send_raw(srv, text, timeout)
  local c = H.raw(srv.port, timeout or 10)
  c:send(text)
  return c
end

local function get(srv, path, headers)
  return H.get(srv, path, { headers = headers })
end

describe("static files (API §9)", function()
  local srv, dir, www

  lazy_setup(function()
    local app
    app, dir = H.write_app(APP)
    www = dir .. "/www"
    sh("mkdir -p " .. H.quote(www .. "/sub") .. " " .. H.quote(www
      .. "/empty") .. " " .. H.quote(dir .. "/outside"))
    write(www .. "/hello.txt", "hello, world\n")
    write(www .. "/a b.txt", "spaced\n")
    write(www .. "/index.html", "<h1>home</h1>\n")
    write(www .. "/sub/index.html", "<h1>sub</h1>\n")
    write(www .. "/private.txt", "private\n")
    write(www .. "/bin.dat", BINARY)
    write(www .. "/empty.txt", "")
    write(dir .. "/secret.txt", "top secret\n")
    write(dir .. "/outside/index.html", "outside\n")
    for ext in pairs(TYPES) do
      write(www .. "/t." .. ext, "x")
    end
    write(www .. "/old.txt", "old\n")
    sh("touch -d '2015-10-21 07:28:00 UTC' " .. H.quote(www .. "/old.txt"))
    sh(("cd %s && ln -s ../secret.txt link_out && ln -s hello.txt link_in"
      .. " && ln -s ../outside dir_out && ln -s /etc/passwd abs_out")
      :format(H.quote(www)))
    srv = H.start(app, { args = { "--log-level", "debug" } })
  end)

  lazy_teardown(function()
    if srv then srv:stop() end
    if dir then os.execute("rm -rf " .. H.quote(dir)) end
  end)

  describe("200", function()
    it("sends a file with its type, length, validators and Accept-Ranges",
      function()
      local res = get(srv, "/s/hello.txt")
      assert.equal(200, res.status)
      assert.equal("hello, world\n", res.body)
      assert.equal("text/plain; charset=utf-8", res.headers["content-type"])
      assert.equal("13", res.headers["content-length"])
      assert.equal("bytes", res.headers["accept-ranges"])
      assert.matches('^W/"d%-%x+"$', res.headers["etag"])
      assert.matches("^%a%a%a, %d%d %a%a%a %d%d%d%d %d%d:%d%d:%d%d GMT$",
        res.headers["last-modified"])
      assert.truthy(res.headers["date"])
    end)

    it("sends binary bytes unchanged", function()
      local res = get(srv, "/s/bin.dat")
      assert.equal(200, res.status)
      assert.equal(#BINARY, #res.body)
      assert.is_true(res.body == BINARY)
      assert.equal("application/octet-stream", res.headers["content-type"])
    end)

    it("sends an empty file", function()
      local res = get(srv, "/s/empty.txt")
      assert.equal(200, res.status)
      assert.equal("0", res.headers["content-length"])
      assert.equal("", res.body)
    end)

    it("gives each extension its type, in any case", function()
      for ext, t in pairs(TYPES) do
        local res = get(srv, "/s/t." .. ext)
        assert.equal(200, res.status)
        assert.equal(t, res.headers["content-type"], ext)
      end
    end)

    it("decodes the path (a space) and builds its URL with url_for",
      function()
      assert.equal("spaced\n", get(srv, "/s/a%20b.txt").body)
      assert.equal("/s/a%20b.txt", get(srv, "/url").body)
    end)

    it("serves a directory given by absolute path, and from a mount",
      function()
      assert.equal("hello, world\n", get(srv, "/abs/hello.txt").body)
      assert.equal("hello, world\n", get(srv, "/bp/files/hello.txt").body)
    end)

    it("follows a symlink that stays inside the directory", function()
      local res = get(srv, "/s/link_in")
      assert.equal(200, res.status)
      assert.equal("hello, world\n", res.body)
    end)

    it("runs before hooks (not after hooks: the head is sent from C)",
      function()
      local res = get(srv, "/s/private.txt")
      assert.equal(403, res.status)
      res = get(srv, "/s/hello.txt")
      assert.is_nil(res.headers["x-after"])
    end)
  end)

  describe("directories", function()
    it("serves index.html for the prefix and a directory", function()
      local res = get(srv, "/s/")
      assert.equal(200, res.status)
      assert.equal("<h1>home</h1>\n", res.body)
      assert.equal("text/html; charset=utf-8", res.headers["content-type"])
      assert.equal("<h1>sub</h1>\n", get(srv, "/s/sub/").body)
      assert.equal("<h1>sub</h1>\n", get(srv, "/bp/files/sub/").body)
    end)

    it("redirects (308) a directory without its slash, query kept",
      function()
      local res = get(srv, "/s/sub?x=1")
      assert.equal(308, res.status)
      assert.equal("/s/sub/?x=1", res.headers["location"])
      res = get(srv, "/s")
      assert.equal(308, res.status)
      assert.equal("/s/", res.headers["location"])
    end)

    it("404s a directory without index.html, and a file with a slash",
      function()
      assert.equal(404, get(srv, "/s/empty/").status)
      assert.equal(404, get(srv, "/s/hello.txt/").status)
    end)
  end)

  describe("conditional requests", function()
    local etag, modified

    before_each(function()
      local res = get(srv, "/s/hello.txt")
      etag, modified = res.headers["etag"], res.headers["last-modified"]
    end)

    it("304s on If-None-Match: the tag, a list, *, weak comparison",
      function()
      for _, v in ipairs { etag, '"nope", ' .. etag, "*", etag:sub(3),
                           ' "a" ,' .. etag .. ' ' } do
        local res = get(srv, "/s/hello.txt", { ["If-None-Match"] = v })
        assert.equal(304, res.status, v)
        assert.equal("", res.body)
        assert.equal(etag, res.headers["etag"])
        assert.equal(modified, res.headers["last-modified"])
        assert.is_nil(res.headers["content-length"])
      end
      local res = get(srv, "/s/hello.txt", { ["If-None-Match"] = '"other"' })
      assert.equal(200, res.status)
    end)

    it("304s on If-Modified-Since at or after Last-Modified, not later "
      .. "than now", function()
      local res = get(srv, "/s/hello.txt", { ["If-Modified-Since"] = modified })
      assert.equal(304, res.status)
      -- RFC 9110 §13.1.3: a date later than the server's time is invalid
      res = get(srv, "/s/hello.txt",
        { ["If-Modified-Since"] = "Fri, 31 Dec 2100 23:59:59 GMT" })
      assert.equal(200, res.status)
      res = get(srv, "/s/hello.txt",
        { ["If-Modified-Since"] = "Sun, 06 Nov 1994 08:49:37 GMT" })
      assert.equal(200, res.status)
      res = get(srv, "/s/hello.txt", { ["If-Modified-Since"] = "yesterday" })
      assert.equal(200, res.status)
    end)

    it("lets If-None-Match win over If-Modified-Since", function()
      local res = get(srv, "/s/hello.txt", { ["If-None-Match"] = '"other"',
        ["If-Modified-Since"] = modified })
      assert.equal(200, res.status)
      assert.equal("hello, world\n", res.body)
    end)
  end)

  describe("ranges", function()
    local function range(spec, headers)
      headers = headers or {}
      headers.Range = spec
      return get(srv, "/s/hello.txt", headers)
    end

    it("206s bytes=a-b, a-, -n (and clamps b)", function()
      local cases = {
        { "bytes=0-4", "hello", "bytes 0-4/13" },
        { "bytes=7-", "world\n", "bytes 7-12/13" },
        { "bytes=-6", "world\n", "bytes 7-12/13" },
        { "bytes=-100", "hello, world\n", "bytes 0-12/13" },
        { "bytes=12-1000", "\n", "bytes 12-12/13" },
        { "BYTES=1-1", "e", "bytes 1-1/13" },
      }
      for _, t in ipairs(cases) do
        local res = range(t[1])
        assert.equal(206, res.status, t[1])
        assert.equal(t[2], res.body, t[1])
        assert.equal(t[3], res.headers["content-range"], t[1])
        assert.equal(tostring(#t[2]), res.headers["content-length"], t[1])
        assert.equal("text/plain; charset=utf-8", res.headers["content-type"])
      end
    end)

    it("206s a range of a binary file", function()
      local res = get(srv, "/s/bin.dat", { Range = "bytes=250-269" })
      assert.equal(206, res.status)
      assert.is_true(res.body == BINARY:sub(251, 270))
    end)

    it("416s an unsatisfiable range with bytes */SIZE", function()
      for _, spec in ipairs { "bytes=13-", "bytes=100-200", "bytes=-0" } do
        local res = range(spec)
        assert.equal(416, res.status, spec)
        assert.equal("bytes */13", res.headers["content-range"], spec)
      end
      local res = get(srv, "/s/empty.txt", { Range = "bytes=0-" })
      assert.equal(416, res.status)
      assert.equal("bytes */0", res.headers["content-range"])
    end)

    it("sends the whole file for several ranges or a bad one", function()
      for _, spec in ipairs { "bytes=0-1,3-4", "bytes=5-2", "bytes=x-",
                              "items=0-1", "bytes=1-2-3" } do
        local res = range(spec)
        assert.equal(200, res.status, spec)
        assert.equal("hello, world\n", res.body, spec)
        assert.is_nil(res.headers["content-range"])
      end
    end)

    it("applies If-Range only when it matches Last-Modified", function()
      local modified = get(srv, "/s/hello.txt").headers["last-modified"]
      local res = range("bytes=0-4", { ["If-Range"] = modified })
      assert.equal(206, res.status)
      res = range("bytes=0-4",
        { ["If-Range"] = "Sun, 06 Nov 1994 08:49:37 GMT" })
      assert.equal(200, res.status)
      res = range("bytes=0-4", { ["If-Range"] = '"some-tag"' })
      assert.equal(200, res.status)
      res = get(srv, "/s/old.txt", { Range = "bytes=1-",
        ["If-Range"] = "Wed, 21 Oct 2015 07:28:00 GMT" })
      assert.equal(206, res.status)
      assert.equal("ld\n", res.body)
    end)

    it("dates Last-Modified in IMF-fixdate from the file's mtime",
      function()
      local res = get(srv, "/s/old.txt")
      assert.equal("Wed, 21 Oct 2015 07:28:00 GMT",
        res.headers["last-modified"])
      assert.equal(304, get(srv, "/s/old.txt", { ["If-Modified-Since"] =
        "Wed, 21 Oct 2015 07:28:00 GMT" }).status)
      assert.equal(200, get(srv, "/s/old.txt", { ["If-Modified-Since"] =
        "Wed, 21 Oct 2015 07:27:59 GMT" }).status)
    end)
  end)

  describe("HEAD and keep-alive", function()
    it("answers HEAD with the head only", function()
      local c = send_raw(srv, "HEAD /s/bin.dat HTTP/1.1\r\nHost: t\r\n\r\n"
        .. "GET /s/hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close"
        .. "\r\n\r\n")
      local res = H.read_response(c, { head = true })
      assert.equal(200, res.status)
      assert.equal(tostring(#BINARY), res.headers["content-length"])
      assert.equal("application/octet-stream", res.headers["content-type"])
      -- the next response follows at once: HEAD sent no body
      res = H.read_response(c)
      assert.equal(200, res.status)
      assert.equal("hello, world\n", res.body)
      c:close()
    end)

    it("keeps the connection for pipelined files, ranges and 304s",
      function()
      local etag = get(srv, "/s/hello.txt").headers["etag"]
      local c = send_raw(srv,
        "GET /s/bin.dat HTTP/1.1\r\nHost: t\r\n\r\n"
        .. "GET /s/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=-6\r\n\r\n"
        .. "GET /s/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: " .. etag
        .. "\r\n\r\n"
        .. "GET /s/nope HTTP/1.1\r\nHost: t\r\n\r\n"
        .. "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
      local res = H.read_response(c)
      assert.equal(200, res.status)
      assert.is_true(res.body == BINARY)
      res = H.read_response(c)
      assert.equal(206, res.status)
      assert.equal("world\n", res.body)
      assert.equal(304, H.read_response(c).status)
      assert.equal(404, H.read_response(c).status)
      res = H.read_response(c)
      assert.equal("root", res.body)
      c:close()
    end)
  end)

  describe("nothing outside the directory", function()
    it("404s .., encoded .., ..%2f, symlinks out and absolute paths",
      function()
      local paths = {
        "/s/../secret.txt", "/s/%2e%2e/secret.txt", "/s/%2E%2E/secret.txt",
        "/s/..%2fsecret.txt", "/s/..%2Fsecret.txt", "/s/sub/../../secret.txt",
        "/s/sub/%2e%2e/%2e%2e/secret.txt", "/s/.%2e/secret.txt",
        "/s/link_out", "/s/dir_out/", "/s/dir_out/index.html", "/s/abs_out",
        "/s//etc/passwd", "/s/%2fetc%2fpasswd", "/abs/%2Fetc/passwd",
        "/s/..%5csecret.txt", "/s/sub/..", "/bp/files/../../secret.txt",
        "http://t/s/../secret.txt",
      }
      for _, p in ipairs(paths) do
        local res = get(srv, p)
        assert.equal(404, res.status, p)
        assert.is_nil(res.body:find("top secret", 1, true), p)
        assert.is_nil(res.body:find("root:", 1, true), p)
      end
    end)

    it("never serves a path with NUL (the server refuses %00)", function()
      local res = get(srv, "/s/hello.txt%00.png")
      assert.is_true(res.status == 400 or res.status == 404)
    end)

    it("gives a missing file the app's 404 page", function()
      local res = get(srv, "/s/no/such.txt")
      assert.equal(404, res.status)
      assert.equal("no file at /s/no/such.txt", res.body)
      assert.equal("1", res.headers["x-after"])
    end)
  end)

  describe("big files", function()
    local big = 200 * 1024 * 1024
    local mib            -- the MiB rand.bin repeats

    lazy_setup(function()
      sh("truncate -s " .. big .. " " .. H.quote(www .. "/big.bin"))
      -- 32 MiB of a repeated pseudo-random MiB, for a slow reader to check
      local t, x = {}, 7
      for i = 1, 1024 * 1024 / 4 do
        x = (x * 1103515245 + 12345) % 2147483648
        t[i] = string.pack("<I4", x)
      end
      mib = table.concat(t)
      local f = assert(io.open(www .. "/rand.bin", "wb"))
      for _ = 1, 32 do f:write(mib) end
      f:close()
    end)

    lazy_teardown(function()
      os.remove(www .. "/big.bin")
      os.remove(www .. "/rand.bin")
    end)

    it("serves 200 MiB completely with flat memory", function()
      get(srv, "/s/hello.txt")                  -- warm up
      local before = rss_kib(srv.pid)
      local c = send_raw(srv, "GET /s/big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
        30)
      local res = H.read_response(c, { head = true })
      assert.equal(200, res.status)
      assert.equal(tostring(big), res.headers["content-length"])
      local got, peak, zero = 0, before, ("\0"):rep(1024 * 1024)
      while got < big do
        local chunk, err, partial = c:receive(math.min(1024 * 1024,
          big - got))
        chunk = chunk or partial
        assert.truthy(chunk and #chunk > 0, err)
        assert.is_true(chunk == zero:sub(1, #chunk))
        got = got + #chunk
        if got % (16 * 1024 * 1024) == 0 then
          peak = math.max(peak, rss_kib(srv.pid))
        end
      end
      assert.equal(big, got)
      peak = math.max(peak, rss_kib(srv.pid))
      -- the same connection goes on
      c:send("GET /s/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
      assert.equal("hello, world\n", H.read_response(c).body)
      c:close()
      assert.is_true(peak - before < 10 * 1024,
        ("RSS grew by %d KiB"):format(peak - before))
    end)

    it("gives a slow reader the whole file, serving others meanwhile",
      function()
      local before = rss_kib(srv.pid)
      -- a small window, set before connecting: the socket is often full
      local c = assert(socket.tcp4())
      c:settimeout(30)
      assert(c:setoption("recv-buffer-size", 8192))
      assert(c:connect("127.0.0.1", srv.port))
      c:send("GET /s/rand.bin HTTP/1.1\r\nHost: t\r\nConnection: close"
        .. "\r\n\r\n")
      local res = H.read_response(c, { head = true })
      assert.equal(200, res.status)
      local n, peak = 0, before
      while true do
        local chunk, err, partial = c:receive(256 * 1024)
        chunk = chunk or partial
        if chunk == nil or #chunk == 0 then
          assert.equal("closed", err)
          break
        end
        local off = n % (1024 * 1024)
        assert.is_true(chunk == (mib .. mib):sub(off + 1,
          off + #chunk), "bytes differ at " .. n)
        n = n + #chunk
        if n % (4 * 1024 * 1024) == 0 then
          H.pause(0.05)
          peak = math.max(peak, rss_kib(srv.pid))
          assert.equal("hello, world\n", get(srv, "/s/hello.txt").body)
        end
      end
      c:close()
      assert.equal(32 * 1024 * 1024, n)
      assert.is_true(peak - before < 10 * 1024,
        ("RSS grew by %d KiB"):format(peak - before))
    end)

    it("stops a transfer when its client leaves, leaking nothing",
      function()
      get(srv, "/s/hello.txt")
      local fds = nfds(srv.pid)
      for _ = 1, 3 do
        local c = send_raw(srv, "GET /s/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        local res = H.read_response(c, { head = true })
        assert.equal(200, res.status)
        assert.truthy(c:receive(1024 * 1024))
        c:close()
      end
      assert.truthy(H.wait_for_log(srv, "transfer cancelled with %d+ of "
        .. big .. " bytes left", 2))
      local deadline = H.now() + 2
      while nfds(srv.pid) ~= fds and H.now() < deadline do
        H.pause(0.05)
      end
      assert.equal(fds, nfds(srv.pid))
      assert.equal("hello, world\n", get(srv, "/s/hello.txt").body)
    end)
  end)
end)
