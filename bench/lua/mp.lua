-- Process-pool (mp) tasks with two children: round trip and throughput.
-- Usage: atasker-lua bench/lua/mp.lua [N] [WARMUP] [TASKS]
-- The same as bench/python/mp.py: set_mp_pool{pool_size=2, reserve_normal=0,
-- reserve_high=0}; the trivial task returns its argument.
-- Warm-up: pairs of tasks that sleep 50 ms and return atasker.getpid(), until both
-- children have answered (both spawned); then WARMUP round trips that are not counted.
-- Round trip, N times one at a time: atasker.monotonic(), submit one task,
-- wait_completed (its result), atasker.monotonic() again.
-- Throughput: submit TASKS tasks as fast as possible, then wait for all of them;
-- tasks/s = TASKS / (time the last completed - time of the first submit).
-- Prints: RESULT children, RESULT samples, RESULT p50_us, RESULT p99_us,
-- RESULT tasks, RESULT seconds, RESULT tasks_per_s. Percentiles are nearest-rank.
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "2000"))
local warmup = math.tointeger(tonumber(arg[2] or "200"))
local tasks_n = math.tointeger(tonumber(arg[3] or "20000"))

atasker.supervisor:set_mp_pool{pool_size = 2, reserve_normal = 0, reserve_high = 0}

-- the time limit of each task: a stuck child fails its task instead of hanging here
local opts = {mp = true, timeout = 30}
local echo = atasker.background_task(function(x) return x end, opts)
local pid = atasker.background_task(function(delay)
  atasker.sleep(delay)
  return atasker.getpid()
end, opts)

local seen, children = {}, 0
for _ = 1, 40 do
  local a, b = pid(0.05), pid(0.05)
  for _, t in ipairs{a, b} do
    local p = atasker.wait_completed(t)
    if not seen[p] then seen[p], children = true, children + 1 end
  end
  if children >= 2 then break end
end
assert(children >= 2, "only " .. children .. " child answered the warm-up")

for i = 1, warmup do
  atasker.wait_completed(echo(i))
end
local latencies = {}
for i = 1, n do
  local t0 = atasker.monotonic()
  local r = atasker.wait_completed(echo(i))
  latencies[i] = atasker.monotonic() - t0
  assert(r == i, "task " .. i .. " returned " .. tostring(r))
end

local tasks = {}
local t0 = atasker.monotonic()
for i = 1, tasks_n do
  tasks[i] = echo(i)
end
atasker.wait_completed(tasks)
local elapsed = atasker.monotonic() - t0
local last = atasker.wait_completed(tasks[tasks_n])
assert(last == tasks_n, "the last task returned " .. tostring(last))

-- nearest rank, the same formula as bench/python/mp.py
local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(p / 100 * #sorted))]
end

table.sort(latencies)
print(string.format("RESULT children %d", children))
print(string.format("RESULT samples %d", #latencies))
print(string.format("RESULT p50_us %.1f", percentile(latencies, 50) * 1e6))
print(string.format("RESULT p99_us %.1f", percentile(latencies, 99) * 1e6))
print(string.format("RESULT tasks %d", tasks_n))
print(string.format("RESULT seconds %.6f", elapsed))
print(string.format("RESULT tasks_per_s %.1f", tasks_n / elapsed))
