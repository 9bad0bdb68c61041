-- A coroutine that never yields holds its aloop: the supervisor reports it
-- after s.aloop_block_warning seconds, with the worker's name and the Lua
-- traceback of where it runs, and cancels it after s.aloop_block_cancel
-- seconds; the other workers of the aloop then run again. Its next
-- execution is cancelled the same way (the cancel of the first must not
-- leave the worker's coroutine unhookable). Prints "ticks before N",
-- "ticks after M", "errors 1", then "errors 2" and "ticks again ok".
local atasker = require "atasker"
local s = atasker.supervisor
s.aloop_block_warning = 0.2
s.aloop_block_cancel = 0.6

local ticks = atasker.shared("block")
local ticker = atasker.background_worker{async = true, interval = 0.01, name = "ticker",
  fn = function(kw) atasker.shared("block"):incr("ticks") end}
ticker:start()
-- waits for what it checks, 10 s at most (a bound for a busy machine)
local function eventually(fn)
  local deadline = atasker.monotonic() + 10
  while not fn() and atasker.monotonic() < deadline do atasker.sleep(0.005) end
  return fn()
end
local ticked = eventually(function() return (ticks:get("ticks") or 0) >= 5 end)

local spinner = atasker.background_worker{async = true, e = true, name = "spinner", fn = function(kw)
  local function busy()
    local x = 0
    while true do x = x + 1 end
  end
  atasker.shared("block"):set("spinning", atasker.monotonic())
  busy()
end}
spinner:start()
spinner:trigger()
eventually(function() return ticks:get("spinning") end)
-- the spinner holds the aloop thread from now until it is cancelled at 0.6 s: the ticker is held back
local before = ticks:get("ticks")
atasker.sleep(0.3)
local held = ticks:get("ticks") == before or atasker.monotonic() - ticks:get("spinning") >= 0.55
print("ticks before", ticked and held and "ok" or before)
-- cancelled: the ticker runs again
local again = eventually(function() return ticks:get("ticks") >= before + 10 end)
print("ticks after", again and "ok" or (ticks:get("ticks") - before))
eventually(function() return spinner.errors >= 1 end)
print("errors", spinner.errors)
-- a second execution spins too: cancelled again
ticks:set("spinning", nil)
spinner:trigger()
eventually(function() return ticks:get("spinning") end)
eventually(function() return spinner.errors >= 2 end)
print("errors", spinner.errors)
local third = ticks:get("ticks")
print("ticks again", eventually(function() return ticks:get("ticks") >= third + 10 end) and "ok" or "held")
ticker:stop()
spinner:stop()
