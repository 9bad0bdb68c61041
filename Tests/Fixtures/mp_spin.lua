-- An mp task whose child spins in Lua and never calls the host: the test
-- kills this program with SIGKILL and checks that the child goes too.
local atasker = require "atasker"
local t = atasker.background_task(function()
  print("child pid " .. atasker.getpid())
  io.stdout:flush()
  while true do end
end, {mp = true})()
print(atasker.wait_completed(t))
