-- Submit-to-start latency of tasks submitted one at a time.
-- Usage: atasker-lua bench/lua/latency.lua [N] [WARMUP]
-- Each round takes atasker.monotonic() in the submitting (main) state, submits one
-- task whose first statement takes atasker.monotonic(), and waits for it:
-- latency = start - submit, as bench/python/latency.py does with time.perf_counter().
-- Prints: RESULT samples, RESULT p50_us, RESULT p99_us, RESULT roundtrip_p50_us / _p99_us (submit to
-- wait_completed's return, as bench/luv/throughput.lua measures luv's), and the same percentiles of
-- the tasks' own fields (time_started - time_queued) as RESULT fields_p50_us / _p99_us.
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "2000"))
local warmup = math.tointeger(tonumber(arg[2] or "200"))

local function started_at()
  return atasker.monotonic()
end

local task = atasker.background_task(started_at)
local latencies, fields, trips = {}, {}, {}
for i = 1, warmup + n do
  local submitted = atasker.monotonic()
  local t = task()
  local started = atasker.wait_completed(t)
  local back = atasker.monotonic()
  if i > warmup then
    latencies[#latencies + 1] = started - submitted
    fields[#fields + 1] = t.time_started - t.time_queued
    trips[#trips + 1] = back - submitted
  end
end

-- nearest rank, the same formula as bench/python/latency.py
local function percentile(sorted, p)
  return sorted[math.max(1, math.ceil(p / 100 * #sorted))]
end

table.sort(latencies)
table.sort(fields)
table.sort(trips)
print(string.format("RESULT samples %d", #latencies))
print(string.format("RESULT p50_us %.1f", percentile(latencies, 50) * 1e6))
print(string.format("RESULT p99_us %.1f", percentile(latencies, 99) * 1e6))
print(string.format("RESULT fields_p50_us %.1f", percentile(fields, 50) * 1e6))
print(string.format("RESULT fields_p99_us %.1f", percentile(fields, 99) * 1e6))
print(string.format("RESULT roundtrip_p50_us %.1f", percentile(trips, 50) * 1e6))
print(string.format("RESULT roundtrip_p99_us %.1f", percentile(trips, 99) * 1e6))
