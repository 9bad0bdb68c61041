-- Runaway code at the end of the program: a worker in a bare loop, a task
-- in a loop that calls pcall, and (with arg[1] == "stuck") a task stuck in
-- one long C call: opening the FIFO arg[2], which blocks until a writer
-- comes. It prints "running" once all of them run. On SIGINT, the stop
-- deadline cancels the loops; the C call is named as stuck, and the program
-- still exits at its deadline.
local atasker = require "atasker"
local started = atasker.shared("started")

atasker.background_worker{name = "spin", fn = function(kw)
  started:incr("n", 1)
  while true do end
end}:start()

atasker.background_task(function()
  started:incr("n", 1)
  while true do pcall(function() while true do end end) end
end)()

local want = 2
if arg[1] == "stuck" then
  want = 3
  atasker.background_task(function(fifo)
    started:incr("n", 1)
    io.open(fifo, "r")
    print("open returned")
  end)(arg[2])
end
while (started:get("n") or 0) < want do atasker.sleep(0.01) end
print("running")
io.stdout:flush()
