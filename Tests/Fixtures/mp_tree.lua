-- A pool child and what it starts, for the tests that stop or kill this
-- program and then look for what is left of the child's process group.
--   "grandchild": an mp task runs os.execute("sleep 1000"); the shell prints
--     "grandchild started" first, and the task never returns.
--   "idle": an mp task returns its child's pid, then the child stays idle
--     (warm) while an interval worker keeps the program running.
-- Each prints "child pid N" and waits to be stopped or killed.
local atasker = require "atasker"
atasker.supervisor:set_mp_pool{pool_size = 1, stop_timeout = tonumber(arg[2]) or 1}
if arg[1] == "grandchild" then
  atasker.background_task(function()
    print("child pid " .. atasker.getpid())
    io.stdout:flush()
    os.execute("echo grandchild started; exec sleep 1000")
  end, {mp = true})()
else
  local t = atasker.background_task(function() return atasker.getpid() end, {mp = true})()
  print("child pid " .. atasker.wait_completed(t, 30))
  atasker.background_worker{name = "keep", interval = 0.5, fn = function() end}:start()
end
