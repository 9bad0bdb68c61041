-- An mp task that runs long: the tests stop or kill this program while the
-- child runs, and check that the child goes too.
local atasker = require "atasker"
atasker.supervisor:set_mp_pool{pool_size = 1, stop_timeout = 1}
local t = atasker.background_task(function()
  print("child pid " .. atasker.getpid())
  atasker.sleep(30)
  return "slept"
end, {mp = true})()
print("parent pid " .. atasker.getpid())
print(atasker.wait_completed(t))
