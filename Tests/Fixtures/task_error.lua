local atasker = require "atasker"
local t = atasker.background_task(function()
  error("failed inside the task")
end)()
atasker.wait_completed(t)
