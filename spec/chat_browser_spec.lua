-- apps/chat.lua in a real browser: two headless Chromium tabs on its
-- page, each live over a WebSocket; what one says, the other shows.
local H = require "helpers"
local B = require "browser"

describe("apps/chat.lua in Chromium", function()
  local srv, browser
  setup(function()
    srv = H.start("apps/chat.lua")
    browser = B.start()
  end)
  teardown(function()
    if browser then browser:stop() end
    srv:stop()
  end)

  -- The text of every message a page shows, one per line.
  local SHOWN = [[Array.from(document.querySelectorAll("#messages li"),
    (li) => li.textContent).join("\n")]]

  it("shows what one tab says in the other, over WebSockets", function()
    local url = ("http://127.0.0.1:%d/"):format(srv.port)
    local ann, bo = browser:open(url), browser:open(url)
    for _, page in ipairs { ann, bo } do
      assert.equal("live (WebSocket)", page:wait([[
        document.getElementById("status").textContent === "live (WebSocket)"
        && document.getElementById("status").textContent]]))
    end
    local said = "hello from the first tab " .. os.time()
    -- fetch fails in the first tab: what it says can only go over its
    -- WebSocket (not POST /say)
    ann:eval(([[
      window.fetch = () => Promise.reject(new Error("not a WebSocket"));
      document.getElementById("name").value = "ann";
      document.getElementById("text").value = %q;
      document.getElementById("say").requestSubmit();
    ]]):format(said))
    local shown = bo:wait(("(%s).includes(%q) && %s"):format(SHOWN,
      "ann" .. said, SHOWN))
    assert.matches("ann" .. said, shown, 1, true)
    assert.matches("ann" .. said, ann:wait(SHOWN), 1, true)
  end)
end)
