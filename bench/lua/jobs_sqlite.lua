-- Durable jobs on SQLite, end to end: `put N` adds N trivial jobs to queue "bench" (one transaction each);
-- `work CONC` runs a worker until the queue is empty; `drive N HOSTS CONC BIN` puts N jobs (put_many, 1000 a transaction), then starts HOSTS
-- processes of BIN (this atasker-lua) on the same file, waits for them and prints the rates:
--   atasker-lua --store sqlite:///tmp/bench.db bench/lua/jobs_sqlite.lua drive 20000 4 16 .build/release/atasker-lua
local jobs = require "atasker.jobs"
local q = jobs.queue("bench")
local mode = arg[1]

if mode == "put" then
  for i = 1, tonumber(arg[2]) do q:put(i) end
elseif mode == "work" then
  local w = jobs.worker{queue = q, concurrency = tonumber(arg[2]), stop_when_empty = true, poll = 0.05,
    fn = function(n) return n end}
  w:start()
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
end
