-- Throughput: submit N trivial background tasks as fast as possible, then wait until
-- all are completed. Usage: atasker-lua bench/lua/throughput.lua [N]
-- Prints: RESULT tasks <n>, RESULT seconds <s>, RESULT tasks_per_s <rate>, RESULT cpu_us_per_task (the
-- process's CPU time over the run, os.clock, / N)
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "100000"))

local function trivial() end

local task = atasker.background_task(trivial)
local t0, c0 = atasker.monotonic(), os.clock()
local tasks = {}
for i = 1, n do
  tasks[i] = task()
end
atasker.wait_completed(tasks)
local elapsed, cpu = atasker.monotonic() - t0, os.clock() - c0

print(string.format("RESULT tasks %d", n))
print(string.format("RESULT seconds %.6f", elapsed))
print(string.format("RESULT tasks_per_s %.1f", n / elapsed))
print(string.format("RESULT cpu_us_per_task %.3f", cpu / n * 1e6))
