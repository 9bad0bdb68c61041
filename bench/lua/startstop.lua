-- Workers started and stopped per second. Usage: atasker-lua bench/lua/startstop.lua [N]
-- Creates N plain workers with an empty executor, then for each in turn: w:start() and
-- w:stop{wait=true}, which returns once the worker has stopped (its running execution
-- finished, its Lua state closed). A plain worker runs its executor again and again
-- while started; a stop that comes before the first execution runs none
-- (RESULT executions counts them). bench/python/startstop.py does the same in atasker.
-- Prints: RESULT workers, RESULT seconds (first start to last stop),
-- RESULT workers_per_s (started and stopped), RESULT executions, RESULT create_per_s.
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "10000"))

local function spin(kw) end

local c0 = atasker.monotonic()
local workers = {}
for i = 1, n do
  workers[i] = atasker.background_worker{fn = spin, name = "spin-" .. i}
end
local t0 = atasker.monotonic()
for i = 1, n do
  workers[i]:start()
  workers[i]:stop{wait = true}
end
local elapsed = atasker.monotonic() - t0
local ran = 0
for i = 1, n do
  ran = ran + workers[i].executions
end

print(string.format("RESULT workers %d", n))
print(string.format("RESULT seconds %.6f", elapsed))
print(string.format("RESULT workers_per_s %.1f", n / elapsed))
print(string.format("RESULT executions %d", ran))
print(string.format("RESULT create_per_s %.1f", n / (t0 - c0)))
