-- luv's thread pool (the peer of bench/lua/throughput.lua and latency.lua), run by Debian's lua5.4 with lua-luv.
-- Usage: lua5.4 bench/luv/throughput.lua [N] [ROUNDS] [WARMUP]
--   burst: N uv.new_work():queue(i) calls of a trivial function, then uv.run() until every after-work callback
--     ran: RESULT tasks_per_s and cpu_us_per_task (the process's CPU time, os.clock, over N).
--   serial: ROUNDS round trips one at a time, each queued from the previous one's after-work callback: from
--     before queue() to the after-work callback, RESULT roundtrip_p50_us / roundtrip_p99_us (nearest rank).
-- luv's pool has 4 threads unless UV_THREADPOOL_SIZE says otherwise; each runs the work function in a
-- lua_State of its own, as atasker-lua's pool threads do.
local uv = require "luv"

local n = math.tointeger(tonumber(arg[1] or "100000"))
local rounds = math.tointeger(tonumber(arg[2] or "2000"))
local warmup = math.tointeger(tonumber(arg[3] or "200"))

local done = 0
local burst = uv.new_work(function(i) return i end, function() done = done + 1 end)
local t0, c0 = uv.hrtime(), os.clock()
for i = 1, n do
  burst:queue(i)
end
uv.run()
local elapsed, cpu = (uv.hrtime() - t0) / 1e9, os.clock() - c0
assert(done == n, "done " .. done .. " of " .. n)

local samples, i, queued_at = {}, 0, 0
local serial
serial = uv.new_work(function(k) return k end, function()
  i = i + 1
  if i > warmup then
    samples[#samples + 1] = (uv.hrtime() - queued_at) / 1e3
  end
  if i < warmup + rounds then
    queued_at = uv.hrtime()
    serial:queue(i)
  end
end)
queued_at = uv.hrtime()
serial:queue(0)
uv.run()
table.sort(samples)
local function percentile(p)
  return samples[math.max(1, math.ceil(p / 100 * #samples))]
end

print(string.format("RESULT tasks %d", n))
print(string.format("RESULT seconds %.6f", elapsed))
print(string.format("RESULT tasks_per_s %.1f", n / elapsed))
print(string.format("RESULT cpu_us_per_task %.3f", cpu / n * 1e6))
print(string.format("RESULT roundtrip_p50_us %.1f", percentile(50)))
print(string.format("RESULT roundtrip_p99_us %.1f", percentile(99)))
