-- Interval workers: schedule accuracy, and the cost of many of them.
-- Usage: atasker-lua bench/lua/interval.lua WORKERS INTERVAL HOLD
-- Starts WORKERS interval workers at INTERVAL seconds, their start times spread evenly
-- over one interval, and holds them for HOLD seconds.
--
-- Each execution takes atasker.monotonic() first and compares it with its ideal time
-- t0 + k * interval, where t0 is taken just before w:start() and k is the tick's index
-- (executions + skipped ticks before it; k = 0 is the first execution, which opens the
-- worker's Lua state: it is counted apart, as first_*; first_max_us is the lower edge of
-- its bucket). The lateness goes into a
-- histogram in atasker.shared (1 µs buckets below 1 ms, 10 µs to 10 ms, 1 ms above), so a
-- worker keeps no samples in its own state and its memory is the worker's alone.
-- The hold begins one interval after the first start and once every worker has run twice
-- (as async_interval.lua waits for one run each): with thousands of workers the pool may
-- still be busy opening states, and catching up with the ticks that came due meanwhile,
-- for a while after the last start (startup_max_us shows it). The main state copies the histogram
-- at the start of the hold, one second (or one interval, if longer) before its end and at
-- its end: the percentiles are over the ticks of the hold, the drift over those of its
-- last second.
-- At the end of the hold the main state also reads the executions of every worker, the
-- RSS and thread count (/proc/self/status) and the process CPU time (os.clock()).
-- Prints RESULT lines: p50_us p99_us max_us (ticks of the hold; the lower edge of the
-- bucket), first_max_us, first_mean_us, startup_max_us (ticks k >= 1 before the hold),
-- skipped, drift_us (the median lateness of the ticks in the last second of the hold)
-- and drift_max_us, execs_per_s and nominal_per_s over the
-- hold, cpu_us_per_exec, cpu_pct, threads, rss_before_kb, rss_after_kb, kb_per_worker
-- ((after - before) / WORKERS), start_s, wait_s (from the last start to the hold).
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

local function bucket(us)
  if us < 1000 then return math.floor(us) end
  if us < 10000 then return 1000 + math.floor((us - 1000) / 10) * 10 end
  return 10000 + math.floor((us - 10000) / 1000) * 1000
end

local function tick(kw)
  local now = atasker.monotonic()
  local w = kw._worker
  local k = w.executions + w.skipped
  local late = (now - (kw.t0 + k * kw.interval)) * 1e6
  local stats = atasker.shared("interval-bench")
  if w.executions == 0 then  -- the first (k > 0 if it started so late that ticks were skipped)
    -- counted, never compared and swapped: a get/cas loop on one key run by every worker
    -- makes the threads queue on the shared table's lock when many run at once (and, when
    -- the first executions fall behind, every one of them is a new maximum)
    stats:incr("first_sum", late)
    stats:incr("f" .. bucket(math.max(late, 0)))
    return
  end
  stats:incr(bucket(math.max(late, 0)))
  if w.executions == 1 then stats:incr("second_done") end
end

local stats = atasker.shared("interval-bench")

-- a warm-up worker, started, run once and stopped before anything is measured: the first
-- start of a program runs code that nothing ran before (the measured workers' ticks count
-- from t0, taken before their start)
do
  local ran = atasker.shared("interval-bench-warmup")
  local warm = atasker.background_worker{interval = interval, name = "warm-up",
    fn = function() atasker.shared("interval-bench-warmup"):incr("runs") end}
  warm:start{t0 = atasker.monotonic(), interval = interval}
  local deadline = atasker.monotonic() + 30
  while (ran:get("runs") or 0) < 2 do
    if atasker.monotonic() > deadline then error("the warm-up worker did not run") end
    atasker.sleep(0.001)
  end
  warm:stop{wait = true}
end

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
  workers[i]:start{t0 = t0, interval = interval}
end
local started = atasker.monotonic()

local function executions()
  local sum = 0
  for i = 1, nworkers do
    sum = sum + workers[i].executions
  end
  return sum
end

-- a copy of the histogram: {bucket = count}
local function snapshot()
  local copy = {}
  for _, key in ipairs(stats:keys()) do
    if math.type(key) == "integer" then copy[key] = stats:get(key) end
  end
  return copy
end

local function sleep_until(t)
  local now = atasker.monotonic()
  if t > now then atasker.sleep(t - now) end
end

-- the hold: from one interval after the first start, once every worker has run twice,
-- to HOLD seconds later
local deadline = atasker.monotonic() + 60 + 2 * interval + nworkers * 0.001
while (stats:get("second_done") or 0) < nworkers do
  if atasker.monotonic() > deadline then error("the workers did not all run twice") end
  atasker.sleep(math.min(0.01, interval / 2))
end
sleep_until(base + interval)
local t1 = atasker.monotonic()
local before = snapshot()
local cpu1, ex1 = os.clock(), executions()
local t2 = t1 + hold
sleep_until(t2 - math.max(interval, 1))
local last = snapshot()
sleep_until(t2)
t2 = atasker.monotonic()
local after = snapshot()
local cpu2, ex2 = os.clock(), executions()
local rss_after, threads = status()

for i = 1, nworkers do
  workers[i]:stop()
end
deadline = atasker.monotonic() + 60
for i = 1, nworkers do
  while not workers[i]:is_stopped() do
    if atasker.monotonic() > deadline then error("workers did not stop") end
    atasker.sleep(0.01)
  end
end

local skipped = 0
for i = 1, nworkers do
  skipped = skipped + workers[i].skipped
end

-- the histogram of the ticks between two copies, as sorted buckets and counts
local function between(from, to)
  local keys, counts, total = {}, {}, 0
  for key, count in pairs(to) do
    local n = count - (from[key] or 0)
    if n > 0 then
      keys[#keys + 1] = key
      counts[key] = n
      total = total + n
    end
  end
  table.sort(keys)
  return {keys = keys, counts = counts, total = total}
end

-- nearest-rank percentile: the bucket's lower bound
local function percentile(h, p)
  if h.total == 0 then return 0 / 0 end
  local rank, seen = math.max(1, math.ceil(p / 100 * h.total)), 0
  for _, key in ipairs(h.keys) do
    seen = seen + h.counts[key]
    if seen >= rank then return key end
  end
end

local function largest(h)
  return h.keys[#h.keys] or 0 / 0
end

local held = between(before, after)
local ending = between(last, after)
local startup = between({}, before)
local elapsed = t2 - t1
print(string.format("RESULT workers %d", nworkers))
print(string.format("RESULT samples %d", held.total))
print(string.format("RESULT p50_us %.1f", percentile(held, 50)))
print(string.format("RESULT p99_us %.1f", percentile(held, 99)))
print(string.format("RESULT max_us %.1f", largest(held)))
local first_max = 0
for _, key in ipairs(stats:keys()) do
  if type(key) == "string" and key:match("^f%d+$") then
    first_max = math.max(first_max, tonumber(key:sub(2)))
  end
end
print(string.format("RESULT first_max_us %.1f", first_max))
print(string.format("RESULT first_mean_us %.1f", stats:get("first_sum") / nworkers))
print(string.format("RESULT startup_max_us %.1f", startup.total > 0 and largest(startup) or 0))
print(string.format("RESULT skipped %d", skipped))
print(string.format("RESULT drift_us %.1f", percentile(ending, 50)))
print(string.format("RESULT drift_max_us %.1f", largest(ending)))
print(string.format("RESULT execs_per_s %.1f", (ex2 - ex1) / elapsed))
print(string.format("RESULT nominal_per_s %.1f", nworkers / interval))
print(string.format("RESULT cpu_us_per_exec %.2f", (cpu2 - cpu1) / (ex2 - ex1) * 1e6))
print(string.format("RESULT cpu_pct %.1f", (cpu2 - cpu1) / elapsed * 100))
print(string.format("RESULT threads %d", threads))
print(string.format("RESULT rss_before_kb %d", rss_before))
print(string.format("RESULT rss_after_kb %d", rss_after))
print(string.format("RESULT kb_per_worker %.2f", (rss_after - rss_before) / nworkers))
print(string.format("RESULT start_s %.3f", started - base))
print(string.format("RESULT wait_s %.3f", t1 - started))
