-- Handles compare equal for the same task or aloop; an aloop counts a task from its
-- submission; aloop tasks and aloop:run give their first result, as background tasks do.
local atasker = require "atasker"
local s = atasker.supervisor

local release = atasker.shared("release")
local t = atasker.background_task(function()
  while not atasker.shared("release"):get("task") do atasker.sleep(0.005) end
end)()
print("task ==", s:get_task(t.id) == t)
print("task ~= other", s:get_task(t.id) ~= atasker.background_task(function() end)())
release:set("task", true)

local a = s:create_aloop("A")
print("aloop ==", s:get_aloop("A") == a, s:get_aloop("A") ~= s:create_aloop("B"))

local at = a:background_task(function()
  while not atasker.shared("release"):get("go") do atasker.sleep(0.005) end
  return 6 * 7, "extra"
end)
print("pending at submission", a.pending)
release:set("go", true)
print("aloop task", atasker.wait_completed(at))
print("aloop:run", a:run(function(x, y) return x * y, "extra" end, 6, 7))
print("loop= task", atasker.wait_completed(atasker.background_task(function(x) return x, "extra" end, {loop = "A"})(5)))
print("pending after", a.pending)
print("background task", atasker.wait_completed(atasker.background_task(function(x) return x, "extra" end)(3)))
