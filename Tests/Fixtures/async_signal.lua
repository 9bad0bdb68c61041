-- An async worker and an aloop task that wait for a long time when SIGINT
-- comes: the program stops gracefully, cancels them at the stop deadline
-- (each fails with "cancelled at file:line" where it waits) and dies by
-- SIGINT. Prints "waiting" once both wait.
local atasker = require "atasker"
local w = atasker.background_worker{async = true, name = "sleeper", fn = function(kw)
  atasker.shared("sig"):incr("n")
  atasker.sleep(60)
end}
w:start()
local t = atasker.background_task(function()
  atasker.shared("sig"):incr("n")
  atasker.sleep(60)
end, {loop = true})()
while (atasker.shared("sig"):get("n") or 0) < 2 do atasker.sleep(0.01) end
print("waiting")
io.stdout:flush()
