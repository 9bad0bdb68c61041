-- A coroutine that never yields holds its aloop: the supervisor reports it
-- after s.aloop_block_warning seconds, with the worker's name and the Lua
-- traceback of where it runs, and cancels it after s.aloop_block_cancel
-- seconds; the other workers of the aloop then run again. Prints
-- "ticks before N", "ticks after M" and "errors 1".
local atasker = require "atasker"
local s = atasker.supervisor
s.aloop_block_warning = 0.2
s.aloop_block_cancel = 0.6

local ticker = atasker.background_worker{async = true, interval = 0.01, name = "ticker",
  fn = function(kw) atasker.shared("block"):incr("ticks") end}
ticker:start()
atasker.sleep(0.1)

local spinner = atasker.background_worker{async = true, e = true, name = "spinner", fn = function(kw)
  local function busy()
    local x = 0
    while true do x = x + 1 end
  end
  busy()
end}
spinner:start()
spinner:trigger()
atasker.sleep(0.3)   -- the spinner holds the aloop: the ticker is held back
local before = atasker.shared("block"):get("ticks")
atasker.sleep(0.6)   -- cancelled at 0.6 s: the ticker runs again
local after = atasker.shared("block"):get("ticks")
print("ticks before", before >= 5 and before <= 25 and "ok" or before)
print("ticks after", after - before >= 10 and "ok" or (after - before))
ticker:stop()
spinner:stop()
print("errors", spinner.errors)
