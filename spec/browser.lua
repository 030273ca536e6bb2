--- Headless Chromium for specs: started on a temporary profile with its
-- DevTools protocol on an ephemeral port of 127.0.0.1, driven over that
-- protocol through ws_helpers' frame-level WebSocket client (nothing else
-- to install), and stopped by its PID.  Debian's chromium, which
-- `make test-deps` installs: a spec that needs it fails without it.
local H = require "helpers"
local W = require "ws_helpers"
local cjson = require "cjson"

local B = {}
local Browser, Page = {}, {}
Browser.__index = Browser
Page.__index = Page

B.bin = os.getenv("CHROMIUM") or "chromium"

local FLAGS = table.concat({ "--headless", "--no-sandbox", "--disable-gpu",
  "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
  "--disable-extensions", "--mute-audio",
  "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0" }, " ")

local function alive(pid)
  return os.execute(("kill -0 %d 2>/dev/null"):format(pid)) == true
end

--- Starts Chromium (30 s at most); returns the browser, or raises with
-- what it said.
function B.start()
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. H.quote(dir)))
  local b = setmetatable({ dir = dir, id = 0 }, Browser)
  os.execute(("%s %s --user-data-dir=%s about:blank >%s 2>&1 & echo $! >%s")
    :format(B.bin, FLAGS, H.quote(dir), H.quote(dir .. "/log"),
      H.quote(dir .. "/pid")))
  b.pid = tonumber(H.slurp(dir .. "/pid"))
  local deadline = H.now() + 30
  local port, path
  repeat       -- Chromium writes where it listens once it does
    port, path = H.slurp(dir .. "/DevToolsActivePort"):match("^(%d+)\n(%S+)")
    if not port then H.pause(0.05) end
  until port or H.now() > deadline or not alive(b.pid)
  if not port then
    local log = H.slurp(dir .. "/log")
    b:stop()
    error("chromium did not start (" .. B.bin .. "): " .. log:sub(-2000))
  end
  b.ws = W.connect(tonumber(port), path, { timeout = 30 })
  return b
end

--- Sends a DevTools command (to a page's session when given) and returns
-- its result, skipping the events that come meanwhile; raises on an
-- error.
function Browser:call(method, params, session)
  self.id = self.id + 1
  local id = self.id
  self.ws:send(W.frame(1, cjson.encode({ id = id, method = method,
    params = params or {}, sessionId = session })))
  while true do
    local text, how = W.read_message(self.ws)
    if not text then error("devtools " .. method .. ": " .. tostring(how)) end
    local m = cjson.decode(text)
    if m.id == id then
      if m.error then
        error(("devtools %s: %s"):format(method, m.error.message))
      end
      return m.result
    end
  end
end

--- Opens url in a new tab; returns the page.
function Browser:open(url)
  local t = self:call("Target.createTarget", { url = url })
  local s = self:call("Target.attachToTarget", { targetId = t.targetId,
    flatten = true })
  return setmetatable({ browser = self, session = s.sessionId }, Page)
end

--- Closes the browser, by its PID if it does not go (and its profile).
function Browser:stop()
  if self.ws then
    pcall(self.call, self, "Browser.close")
    self.ws:close()
    self.ws = nil
  end
  local deadline = H.now() + 5
  while self.pid and alive(self.pid) and H.now() < deadline do
    H.pause(0.05)
  end
  if self.pid and alive(self.pid) then
    os.execute(("kill -KILL %d 2>/dev/null"):format(self.pid))
  end
  os.execute("rm -rf " .. H.quote(self.dir))
end

--- The value of a JavaScript expression in the page (JSON-able values;
-- a promise is awaited); raises with the page's exception.
function Page:eval(js)
  local r = self.browser:call("Runtime.evaluate", { expression = js,
    returnByValue = true, awaitPromise = true }, self.session)
  if r.exceptionDetails then
    local e = r.exceptionDetails.exception
    error("page: " .. tostring(e and e.description or
      r.exceptionDetails.text))
  end
  return r.result.value
end

--- Waits (timeout s, 20 by default) until the expression is true in the
-- page; returns its value, or raises saying what it was waiting for.
function Page:wait(js, timeout)
  local deadline = H.now() + (timeout or 20)
  local ok, v
  repeat
    ok, v = pcall(self.eval, self, js)
    if ok and v and v ~= cjson.null then return v end
    H.pause(0.05)
  until H.now() > deadline
  error("page: waited in vain for " .. js .. (ok and "" or ": " .. v))
end

return B
