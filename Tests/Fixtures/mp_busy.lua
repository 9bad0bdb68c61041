-- An mp task that runs long, with the pool's default stop timeout (5 s): a second Ctrl-C must not wait for it.
local atasker = require "atasker"
local t = atasker.background_task(function()
  print("child pid " .. atasker.getpid())
  io.stdout:flush()
  atasker.sleep(60)
end, {mp = true})()
atasker.wait_completed(t)
