-- Interval workers: schedule accuracy, and the cost of many of them.
-- Usage: atasker-lua bench/lua/interval.lua WORKERS INTERVAL HOLD
-- Starts WORKERS interval workers at INTERVAL seconds, their start times spread evenly
-- over one interval, and holds them for HOLD seconds after the last start.
--
-- Each execution takes atasker.monotonic() first and compares it with its ideal time
-- t0 + k * interval, where t0 is taken just before w:start() and k is the tick's index
-- (executions + skipped ticks before it; k = 0 is the first execution, which opens the
-- worker's Lua state: it is counted apart, as first_*). The lateness goes into a
-- histogram in atasker.shared (1 µs buckets below 1 ms, 10 µs to 10 ms, 1 ms above), so a
-- worker keeps no samples in its own state and its memory is the worker's alone.
-- At the end of the hold the main state reads the executions of every worker, the RSS
-- and thread count (/proc/self/status) and the process CPU time (os.clock()).
-- Prints RESULT lines: p50_us p99_us max_us (ticks k >= 1), first_max_us, skipped,
-- drift_us (the lateness of each worker's tick at the end of the hold; the largest),
-- execs_per_s and nominal_per_s over the hold, cpu_us_per_exec, cpu_pct, threads,
-- rss_before_kb, rss_after_kb, kb_per_worker ((after - before) / WORKERS), start_s.
local atasker = require "atasker"

local nworkers = math.tointeger(tonumber(arg[1] or "1"))
local interval = tonumber(arg[2] or "0.01")
local hold = tonumber(arg[3] or "10")

local function status()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)")), tonumber(text:match("Threads:%s*(%d+)"))
end

-- ticks per worker: through the hold, plus a margin so that every worker still runs
-- when the hold ends
local last_tick = math.floor(hold / interval + 0.5) + 1
local margin = math.max(2, math.ceil(0.2 / interval))

local function bucket(us)
  if us < 1000 then return math.floor(us) end
  if us < 10000 then return 1000 + math.floor((us - 1000) / 10) * 10 end
  return 10000 + math.floor((us - 10000) / 1000) * 1000
end

-- raises shared[key] to value (atomically, with cas)
local function raise_max(stats, key, value)
  local m = stats:get(key)
  while (m == nil or value > m) and not stats:cas(key, m, value) do
    m = stats:get(key)
  end
end

local mine = {max = 0}  -- an upvalue: each start of a worker gets its own copy
local function tick(kw)
  local now = atasker.monotonic()
  local w = kw._worker
  local k = w.executions + w.skipped
  local late = (now - (kw.t0 + k * kw.interval)) * 1e6
  local stats = atasker.shared("interval-bench")
  if k == 0 then
    stats:incr("first_sum", late)
    raise_max(stats, "first_max", late)
    return
  end
  stats:incr(bucket(math.max(late, 0)))
  if late > mine.max then mine.max = late end
  if k == kw.last_tick then
    -- the tick at the end of the hold: its lateness is this worker's drift
    raise_max(stats, "drift", late)
    raise_max(stats, "max", mine.max)
  elseif k >= kw.last_tick + kw.margin then
    raise_max(stats, "max", mine.max)
    return false
  end
end

local stats = atasker.shared("interval-bench")
local rss_before = status()
local workers = {}
for i = 1, nworkers do
  workers[i] = atasker.background_worker{interval = interval, fn = tick,
                                         name = "tick-" .. i}
end

-- start worker i at base + (i - 1) * interval / nworkers
local base = atasker.monotonic() + 0.05
local step = interval / nworkers
for i = 1, nworkers do
  local at = base + (i - 1) * step
  local now = atasker.monotonic()
  if at - now > 0.0005 then
    atasker.sleep(at - now)
  end
  local t0 = atasker.monotonic()
  workers[i]:start{t0 = t0, interval = interval, last_tick = last_tick, margin = margin}
end
local started = atasker.monotonic()

local function executions()
  local sum = 0
  for i = 1, nworkers do
    sum = sum + workers[i].executions
  end
  return sum
end

-- the hold: from one interval after the first start to HOLD seconds later
local t1 = base + interval
if t1 > atasker.monotonic() then atasker.sleep(t1 - atasker.monotonic()) end
t1 = atasker.monotonic()
local cpu1, ex1 = os.clock(), executions()
local t2 = t1 + hold
atasker.sleep(t2 - atasker.monotonic())
t2 = atasker.monotonic()
local cpu2, ex2 = os.clock(), executions()
local rss_after, threads = status()

-- wait for the workers to stop themselves (margin ticks after the hold)
local deadline = atasker.monotonic() + (margin + 2) * interval + 30
for i = 1, nworkers do
  while not workers[i]:is_stopped() do
    if atasker.monotonic() > deadline then error("workers did not stop") end
    atasker.sleep(math.min(0.05, interval))
  end
end

local skipped = 0
for i = 1, nworkers do
  skipped = skipped + workers[i].skipped
end

-- percentiles from the histogram: the bucket's lower bound, nearest rank
local keys, total = {}, 0
for _, key in ipairs(stats:keys()) do
  if math.type(key) == "integer" then
    keys[#keys + 1] = key
    total = total + stats:get(key)
  end
end
table.sort(keys)
local function percentile(p)
  local rank, seen = math.max(1, math.ceil(p / 100 * total)), 0
  for _, key in ipairs(keys) do
    seen = seen + stats:get(key)
    if seen >= rank then return key end
  end
end

local elapsed = t2 - t1
print(string.format("RESULT workers %d", nworkers))
print(string.format("RESULT samples %d", total))
print(string.format("RESULT p50_us %.1f", percentile(50)))
print(string.format("RESULT p99_us %.1f", percentile(99)))
print(string.format("RESULT max_us %.1f", stats:get("max")))
print(string.format("RESULT first_max_us %.1f", stats:get("first_max")))
print(string.format("RESULT first_mean_us %.1f", stats:get("first_sum") / nworkers))
print(string.format("RESULT skipped %d", skipped))
print(string.format("RESULT drift_us %.1f", stats:get("drift")))
print(string.format("RESULT execs_per_s %.1f", (ex2 - ex1) / elapsed))
print(string.format("RESULT nominal_per_s %.1f", nworkers / interval))
print(string.format("RESULT cpu_us_per_exec %.2f", (cpu2 - cpu1) / (ex2 - ex1) * 1e6))
print(string.format("RESULT cpu_pct %.1f", (cpu2 - cpu1) / elapsed * 100))
print(string.format("RESULT threads %d", threads))
print(string.format("RESULT rss_before_kb %d", rss_before))
print(string.format("RESULT rss_after_kb %d", rss_after))
print(string.format("RESULT kb_per_worker %.2f", (rss_after - rss_before) / nworkers))
print(string.format("RESULT start_s %.3f", started - base))
