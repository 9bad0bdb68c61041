-- os.exit cannot be caught: pcall(os.exit, N) and xpcall end the program with N, in the main state (arg[1] =
-- "main") or in a task (arg[1] = "task"), also when xpcall's message handler would turn the exit into a string
-- (arg[1] = "handler"): no handler sees it. Nothing after the call prints.
local atasker = require "atasker"
if arg[1] == "handler" then
  print("before")
  print(xpcall(function() os.exit(5) end, function(m) return "handled: " .. tostring(m) end))
  print("after os.exit: not reached")
elseif arg[1] == "main" then
  print("before")
  xpcall(function() pcall(os.exit, 3) end, debug.traceback)
  print("after os.exit: not reached")
else
  atasker.background_task(function()
    pcall(os.exit, 4)
    print("task after os.exit: not reached")
  end)()
end
