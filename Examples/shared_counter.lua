-- A table shared by every thread: 8 tasks each add 1,000 to one counter,
-- atomically, and a callback per task records that it ran (a callback
-- runs before its task counts as completed). The script's own
-- locals are not visible in tasks: values reach them as arguments and come
-- back as results or through atasker.shared.
-- Prints:
--   counter: 8000
--   callbacks: 8
local atasker = require "atasker"

local stats = atasker.shared("stats")
stats:set("counter", 0)

local add = atasker.background_task(function(times)
  local s = atasker.shared("stats")
  for _ = 1, times do s:incr("counter") end
  return times
end, {callback = function(result)
  atasker.shared("stats"):incr("callbacks")
end})

local tasks = {}
for i = 1, 8 do tasks[i] = add(1000) end
-- a task's callback runs before the task counts as completed
atasker.wait_completed(tasks)

print("counter: " .. stats:get("counter"))
print("callbacks: " .. stats:get("callbacks"))
