-- Queue worker throughput: put N small items (integers) from the main state into one
-- queue worker whose executor does nothing, then stop it with drain=true, which returns
-- once every item has run. Usage: atasker-lua bench/lua/queue.lua [N]
-- Prints: RESULT items, RESULT seconds (first put to the end of the drain),
-- RESULT put_seconds (the puts alone), RESULT items_per_s, RESULT executions, RESULT cpu_us_per_item (the
-- process's CPU time over the run, os.clock, / N).
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "1000000"))

local w = atasker.background_worker{q = true, name = "sink", fn = function(item, kw) end}
w:start()
local t0, c0 = atasker.monotonic(), os.clock()
for i = 1, n do
  w:put(i)
end
local put = atasker.monotonic() - t0
w:stop{drain = true}
local elapsed, cpu = atasker.monotonic() - t0, os.clock() - c0
assert(w.executions == n, "executions: " .. w.executions .. ", expected " .. n)

print(string.format("RESULT items %d", n))
print(string.format("RESULT seconds %.6f", elapsed))
print(string.format("RESULT put_seconds %.6f", put))
print(string.format("RESULT items_per_s %.1f", n / elapsed))
print(string.format("RESULT executions %d", w.executions))
print(string.format("RESULT cpu_us_per_item %.3f", cpu / n * 1e6))
