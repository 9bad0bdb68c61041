-- Background tasks on the thread pool: start four tasks, wait for their
-- results, and print them in order. Each task runs on a pool thread in a Lua
-- state of its own; its arguments and its result are copied.
-- Prints:
--   1 squared is 1
--   2 squared is 4
--   3 squared is 9
--   4 squared is 16
--   sum: 30
local atasker = require "atasker"

local square = atasker.background_task(function(n)
  atasker.sleep(0.01 * (5 - n))   -- finish in reverse order
  return n * n
end, {priority = atasker.TASK_HIGH})

local tasks = {}
for n = 1, 4 do tasks[n] = square(n) end

local sum = 0
for n, result in ipairs(atasker.wait_completed(tasks)) do
  print(n .. " squared is " .. result)
  sum = sum + result
end
print("sum: " .. sum)
