-- Three runaway workers that never return: a bare loop, a loop that calls
-- pcall around its body, and a loop inside a coroutine. Each is stopped with
-- stop{wait=0.3}, which cancels it: its execution fails with
-- "worker 'NAME' cancelled at runaway.lua:LINE". Then a task runs, to show
-- that the pool goes on, and "done" is printed.
local atasker = require "atasker"

local function bare(kw)
  local n = 0
  while true do n = n + 1 end
end

local function guarded(kw)
  while true do
    pcall(function()
      local n = 0
      while true do n = n + 1 end
    end)
  end
end

local function nested(kw)
  local co = coroutine.wrap(function()
    local n = 0
    while true do n = n + 1 end
  end)
  co()
end

local workers = {}
for _, spec in ipairs{{"bare", bare}, {"guarded", guarded}, {"nested", nested}} do
  local w = atasker.background_worker{name = spec[1], fn = spec[2]}
  w:start()
  workers[#workers + 1] = w
end
atasker.sleep(0.2)
for _, w in ipairs(workers) do
  w:stop{wait = 0.3}
  print(w.name, w:is_stopped(), w.errors)
end
local t = atasker.background_task(function() return 42 end)()
print("task", atasker.wait_completed(t, 5))
print("done")
