-- Durable jobs end to end, on the store of ATASKER_STORE (SQLite or PostgreSQL; bench/run.py's jobs rows):
-- `put N` adds N trivial jobs to queue "bench" (one transaction each);
-- `latency N BIN` measures put -> start across two processes (p50, p99; RESULT latency_p50_ms, latency_p99_ms);
-- `work CONC` runs a worker until the queue is empty; `drive N HOSTS CONC BIN` puts N jobs (put_many, 1000 a
-- transaction), then starts HOSTS processes of BIN (this atasker-lua) on the same store, waits until they have all
-- exited (each once the queue is empty on every host) and prints the rates (RESULT jobs_per_s: N over the time
-- from the hosts' start to the last one's exit, their start-up included; RESULT puts_per_s):
--   ATASKER_STORE=sqlite:///tmp/bench.db atasker-lua bench/lua/jobs.lua drive 20000 4 16 .build/release/atasker-lua
local jobs = require "atasker.jobs"
local q = jobs.queue("bench")
local mode = arg[1]

if mode == "put" then
  for i = 1, tonumber(arg[2]) do q:put(i) end
elseif mode == "work" then
  local w = jobs.worker{queue = q, concurrency = tonumber(arg[2]), stop_when_empty = true, poll = 0.05,
    fn = function(n) return n end}
  w:start()
elseif mode == "serve" then
  -- for `latency`: records put -> start of each job as its result; a job "stop" stops the worker
  local lq = jobs.queue("latency")
  jobs.worker{queue = lq, name = "latency", poll = 60, fn = function(v)
    if v == "stop" then
      setmetatable({name = "latency"}, jobs.Worker):stop()
      return 0
    end
    return atasker.time() - v
  end}:start()
elseif mode == "latency" then
  -- `latency N BIN`: one serving process of BIN; N jobs put one at a time, 5 ms apart, from this process
  local n, bin = tonumber(arg[2]), arg[3]
  local lq = jobs.queue("latency")
  local store = os.getenv("ATASKER_STORE")
  os.execute(string.format("%q --store %q %q serve &", bin, store, arg[0]))
  atasker.sleep(1)   -- the server starts and looks at its empty queue once
  local ids = {}
  for i = 1, n do
    ids[i] = lq:put(atasker.time())
    atasker.sleep(0.005)
  end
  local last = lq:put("stop")
  while lq:get_job(last).state ~= "completed" do atasker.sleep(0.05) end
  local lat = {}
  for i, id in ipairs(ids) do lat[i] = lq:get_job(id).result * 1000 end
  table.sort(lat)
  print(string.format("put -> start across processes, %d jobs: p50 %.2f ms, p99 %.2f ms", n,
    lat[math.ceil(n * 0.5)], lat[math.ceil(n * 0.99)]))
  print(string.format("RESULT latency_p50_ms %.3f", lat[math.ceil(n * 0.5)]))
  print(string.format("RESULT latency_p99_ms %.3f", lat[math.ceil(n * 0.99)]))
elseif mode == "drive" then
  local n, hosts, conc, bin = tonumber(arg[2]), tonumber(arg[3]), arg[4], arg[5]
  local store = os.getenv("ATASKER_STORE")
  local t0 = atasker.monotonic()
  local batch = {}
  for i = 1, n do
    batch[#batch + 1] = i
    if #batch == 1000 or i == n then
      q:put_many(batch)
      batch = {}
    end
  end
  local t1 = atasker.monotonic()
  local cmd = {}
  for h = 1, hosts do
    cmd[#cmd + 1] = string.format("%q --store %q %q work %s &", bin, store, arg[0], conc)
  end
  cmd[#cmd + 1] = "wait"
  local t2 = atasker.monotonic()
  os.execute(table.concat(cmd, " "))
  local t3 = atasker.monotonic()
  local info = q:info()
  print(string.format("put %d jobs in %.2f s (%.0f puts/s); %d host(s) x %s did them in %.2f s: %.0f jobs/s; left %d",
    n, t1 - t0, n / (t1 - t0), hosts, conc, t3 - t2, n / (t3 - t2), info.ready + info.later + info.running))
  local left = info.ready + info.later + info.running
  if left ~= 0 then error(string.format("%d jobs left undone", left)) end
  print(string.format("RESULT jobs_per_s %.1f", n / (t3 - t2)))
  print(string.format("RESULT puts_per_s %.1f", n / (t1 - t0)))
end
