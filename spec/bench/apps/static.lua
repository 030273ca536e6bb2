-- bench: GET /files/... -> app:static over the directory the harness
-- fills (BENCH_STATIC_DIR): 4k.bin and 1m.bin
local moonlet = require "moonlet"
local app = moonlet.app()

app:static("/files", assert(os.getenv("BENCH_STATIC_DIR")))

return app
