-- GET /stream answers text/plain as it goes: START at once, MIDDLE 3 s
-- later, END 5 s after that, each on its own line.  Each write reaches the
-- client when it is made (a chunk on HTTP/1.1); the response ends when the
-- handler returns.  Try: curl -N http://127.0.0.1:8080/stream
local moonlet = require "moonlet"
local app = moonlet.app()

app:get("/stream", function(req)
  local out = req:stream{ ["Content-Type"] = "text/plain; charset=utf-8" }
  out:write("START\n")
  moonlet.sleep(3)
  out:write("MIDDLE\n")
  moonlet.sleep(5)
  out:write("END\n")
end)

app:get("/", function(req)
  return "Try curl -N on /stream: three lines, eight seconds."
end)

return app
