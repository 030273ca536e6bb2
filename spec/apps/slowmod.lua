-- A module whose top level waits: only a yieldable require can load it.
local moonlet = require "moonlet"
moonlet.sleep(0.05)
return { value = "slow module loaded" }
