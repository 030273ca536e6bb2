-- GET /coro wraps a text in <i>, <strong>, <body> and <html>, one
-- yielding step at a time: each step waits, as a call to another service
-- would, while the worker goes on serving other requests.
local moonlet = require "moonlet"
local app = moonlet.app()

-- The tags, innermost first, handed out by a generator that waits
-- between items: moonlet's waits pass through your own coroutines.
local function tags()
  return coroutine.wrap(function()
    for _, tag in ipairs { "i", "strong", "body", "html" } do
      moonlet.sleep(0.01)
      coroutine.yield(tag)
    end
  end)
end

app:get("/coro", function(req)
  local text = req.query.text or "Hello"
  for tag in tags() do
    text = ("<%s>%s</%s>"):format(tag, text, tag)
  end
  return text
end)

return app
