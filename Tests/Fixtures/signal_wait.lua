-- Starts a task that runs for a while and tells the test that it started;
-- the top-level code ends, and the program waits for the task. On SIGINT or
-- SIGTERM the running task still finishes and prints "task done".
local atasker = require "atasker"
local seconds = tonumber(arg[1]) or 1
atasker.background_task(function(s)
  print("task started")
  io.stdout:flush()
  atasker.sleep(s)
  print("task done")
end)(seconds)
