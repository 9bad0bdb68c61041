-- Cancels runaway workers round after round, and prints the thread count
-- and RSS of the process (from /proc/self/status) after the first round and
-- after the last one: "before THREADS RSS_KB" and "after THREADS RSS_KB".
-- Each cancelled worker's state is closed and its pool thread reused, so
-- both numbers come back to where they were.
local atasker = require "atasker"
local rounds = tonumber(arg[1]) or 5

local function status()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("Threads:%s*(%d+)")), tonumber(text:match("VmRSS:%s*(%d+)"))
end

local function round(r)
  local ws = {}
  for i = 1, 4 do
    ws[i] = atasker.background_worker{name = "spin" .. r .. "." .. i, fn = function(kw)
      local t = {}
      for k = 1, 10000 do t[k] = {k} end   -- some memory in the state
      local co = coroutine.wrap(function() while true do pcall(function() end) end end)
      co()
    end}
    ws[i]:start()
  end
  atasker.sleep(0.05)
  for i = 1, 4 do
    ws[i]:stop{wait = 0.05}
    assert(ws[i]:is_stopped(), "round " .. r .. ": worker " .. i .. " still runs")
  end
  collectgarbage()
end

round(0)
print("before", status())
for r = 1, rounds do round(r) end
print("after", status())
