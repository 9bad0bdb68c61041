-- Async interval workers on one aloop: schedule lag, CPU and memory of many of them.
-- Usage: atasker-lua bench/lua/async_interval.lua WORKERS INTERVAL HOLD
-- Starts WORKERS async interval workers (background_worker{async=true, interval=...}) on
-- one aloop, their first ticks spread evenly over one interval (each start gets the
-- _delay_before that puts its first tick at base + i * interval / WORKERS), and holds
-- them for HOLD seconds once every worker has run (its first execution opens its Lua
-- state and is left out).
--
-- Each execution takes atasker.monotonic() first and compares it with its tick's ideal
-- time t0 + k * interval (k the tick's index: the next one after the last run, or a
-- later one when ticks were skipped). Lags of the ticks whose ideal time falls in the
-- hold go into a fixed histogram in the worker's own state (32 slots: 25 µs buckets up
-- to 750 µs, then 750 µs to 1 ms, then 1 ms and more; about 0.5 KB, counted in the
-- worker's memory), which each worker adds to atasker.shared once, at its last tick: the
-- hold makes no host call per execution. Percentiles are the upper edge of their bucket
-- (25 µs resolution below 750 µs). The executor uses no library but atasker ('//' for
-- floors), so a worker's state holds only what an async worker needs.
-- At the start and the end of the hold the main state reads the RSS and thread count
-- (/proc/self/status) and the process CPU time (os.clock()).
-- Prints RESULT lines: p50_us p99_us max_us, samples, skipped (in the hold),
-- execs_per_s and nominal_per_s over the hold, cpu_pct, cpu_us_per_exec, threads,
-- rss_before_kb, rss_after_kb, kb_per_worker ((after - before) / WORKERS), start_s.
local atasker = require "atasker"

local nworkers = math.tointeger(tonumber(arg[1] or "10000"))
local interval = tonumber(arg[2] or "0.1")
local hold = tonumber(arg[3] or "10")

local function status()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)")), tonumber(text:match("Threads:%s*(%d+)"))
end

local s = atasker.supervisor
s:create_aloop("bench", {default = true})

local state = {k = 0, runs = 0, skipped = 0, max = 0}   -- copied into each worker's state
local function tick(kw)
  local now = atasker.monotonic()
  local st = state
  local k = (now - kw.t0) // kw.interval
  if st.runs > 0 and k <= st.k then
    -- the clock says this is the tick of the run before: that run (or this one) started more
    -- than an interval after its tick came due, and was taken for the next tick. This run is
    -- the next tick's, unless that tick is still to come: then both are the same tick's (an
    -- index in the future would make every later run of the worker early)
    k = st.k + 1
    if kw.t0 + k * kw.interval > now then k = st.k end
  end
  local ideal = kw.t0 + k * kw.interval
  local inhold = ideal >= kw.h0 and ideal < kw.h1
  if st.runs > 0 and inhold and k > st.k + 1 then st.skipped = st.skipped + k - st.k - 1 end
  st.k = k
  st.runs = st.runs + 1
  if st.runs > 1 and inhold then
    local hist = st.hist
    if hist == nil then
      hist = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
              0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
      st.hist = hist
    end
    local us = (now - ideal) * 1e6
    if us < 0 then us = 0 end   -- not before its tick, but for rounding
    local b
    if us < 750 then b = us // 25 + 1 elseif us < 1000 then b = 31 else b = 32 end
    hist[b] = hist[b] + 1
    if us > st.max then st.max = us end
  end
  if ideal >= kw.h1 then
    local stats = atasker.shared("async-interval")
    for b = 1, st.hist and 32 or 0 do
      if st.hist[b] > 0 then stats:incr(b, st.hist[b]) end
    end
    stats:incr("skipped", st.skipped)
    stats:incr("done", 1)
    local m = stats:get("max")
    while (m == nil or st.max > m) and not stats:cas("max", m, st.max) do m = stats:get("max") end
    return false
  end
end

local rss_before = status()
local workers = {}
for i = 1, nworkers do
  workers[i] = atasker.background_worker{async = true, interval = interval, fn = tick,
                                         name = "tick-" .. i}
end

-- first ticks at base + (i - 1) * step, once the starts are done (about 30 µs each)
local base = atasker.monotonic() + 0.2 + nworkers * 40e-6
local step = interval / nworkers
-- every worker has opened its state by base + interval (plus slack for the openings)
local h0 = base + interval + math.max(1, nworkers * 100e-6)
local h1 = h0 + hold
for i = 1, nworkers do
  local t0 = base + (i - 1) * step
  workers[i]:start{t0 = t0, interval = interval, h0 = h0, h1 = h1,
                   _delay_before = math.max(0, t0 - atasker.monotonic())}
end
local started = atasker.monotonic()

local function executions()
  local sum = 0
  for i = 1, nworkers do sum = sum + workers[i].executions end
  return sum
end

if h0 > atasker.monotonic() then atasker.sleep(h0 - atasker.monotonic()) end
local t1 = atasker.monotonic()
local cpu1, ex1 = os.clock(), executions()
atasker.sleep(h1 - atasker.monotonic())
local t2 = atasker.monotonic()
local cpu2, ex2 = os.clock(), executions()
local rss_after, threads = status()

local stats = atasker.shared("async-interval")
local deadline = atasker.monotonic() + 30 + 2 * interval
while (stats:get("done") or 0) < nworkers do
  if atasker.monotonic() > deadline then error("workers did not stop") end
  atasker.sleep(0.05)
end

-- the upper edge of each bucket, in µs
local edges = {}
for b = 1, 30 do edges[b] = b * 25 end
edges[31], edges[32] = 1000, math.huge
local total = 0
for b = 1, 32 do total = total + (stats:get(b) or 0) end
local function percentile(p)
  local rank, seen = math.max(1, math.ceil(p / 100 * total)), 0
  for b = 1, 32 do
    seen = seen + (stats:get(b) or 0)
    if seen >= rank then return b == 32 and (stats:get("max") or 0) or edges[b] end
  end
  return 0
end

local elapsed = t2 - t1
print(string.format("RESULT workers %d", nworkers))
print(string.format("RESULT samples %d", total))
print(string.format("RESULT p50_us %.1f", percentile(50)))
print(string.format("RESULT p99_us %.1f", percentile(99)))
print(string.format("RESULT max_us %.1f", stats:get("max") or 0))
print(string.format("RESULT skipped %d", stats:get("skipped") or 0))
print(string.format("RESULT execs_per_s %.1f", (ex2 - ex1) / elapsed))
print(string.format("RESULT nominal_per_s %.1f", nworkers / interval))
print(string.format("RESULT cpu_us_per_exec %.2f", (cpu2 - cpu1) / math.max(1, ex2 - ex1) * 1e6))
print(string.format("RESULT cpu_pct %.1f", (cpu2 - cpu1) / elapsed * 100))
print(string.format("RESULT threads %d", threads))
print(string.format("RESULT rss_before_kb %d", rss_before))
print(string.format("RESULT rss_after_kb %d", rss_after))
print(string.format("RESULT kb_per_worker %.2f", (rss_after - rss_before) / nworkers))
print(string.format("RESULT start_s %.3f", started - (base - 0.2 - nworkers * 40e-6)))
