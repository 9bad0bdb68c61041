-- A child that is killed by a fatal signal (the test sends it) fails its task naming the signal, and a new child
-- runs the next task. Prints "child pid N", then the failed task's error, then "after: ok".
local atasker = require "atasker"
local t = atasker.background_task(function()
  print("child pid " .. atasker.getpid())
  io.stdout:flush()
  atasker.sleep(60)
  return "not killed"
end, {mp = true})()
local ok, err = pcall(atasker.wait_completed, t)
print("failed:", not ok, t.status, err)
local again = atasker.wait_completed(atasker.background_task(function() return "ok" end, {mp = true})())
print("after: " .. again)
