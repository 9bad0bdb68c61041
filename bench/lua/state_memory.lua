-- What a worker's own Lua state costs, by what its executor uses.
-- Usage: atasker-lua bench/lua/state_memory.lua [WORKERS] [VARIANT]
-- Starts WORKERS interval workers (default 1000, at 0.05 s) whose executor uses what VARIANT
-- names. VARIANT is one of (each adds to the one
-- before it):
--   bare      an executor that counts its executions in an upvalue, nothing else (its
--             'atasker' upvalue brings the module table, empty until a field is read)
--   monotonic + atasker.monotonic() (loads the 'atasker' module)
--   shared    + atasker.shared(name):incr(1) (a shared-table handle and one method)
--   math      + math.max and math.floor (loads 'math')
--   worker    + kw._worker.executions (a worker-handle property)
--   interval  + shared:get, shared:cas and a table upvalue, as bench/lua/interval.lua does
-- (default: interval). At its third execution each worker runs a full collection and reads
-- collectgarbage("count") before it touches anything else, so the figure is its live heap
-- alone: what Lua counts, without the allocator's slack (page rests, malloc headers).
-- Prints RESULT lines: heap_kb (the mean of the workers), rss_kb_per_worker (the RSS of the
-- process once every worker has reported, all of them still running, minus the RSS before
-- they were created, per worker: the state with its slack, plus the Swift objects of a
-- worker). Run one variant per process: a second run would reuse the memory of the first.
local atasker = require "atasker"

local nworkers = math.tointeger(tonumber(arg[1] or "1000"))
local variant = arg[2] or "interval"
local order = {"bare", "monotonic", "shared", "math", "worker", "interval"}
local level
for i, name in ipairs(order) do
  if name == variant then level = i end
end
if level == nil then error("unknown variant '" .. variant .. "'") end

local function rss()
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("a")
  f:close()
  return tonumber(text:match("VmRSS:%s*(%d+)"))
end

local seen = {n = 0, max = 0}  -- an upvalue: each start of a worker gets its own copy
local function executor(kw)
  if level >= 2 then
    local now = atasker.monotonic()
    if level >= 3 then
      local stats = atasker.shared("state-memory-use")
      stats:incr("calls")
      if level >= 4 then
        local x = math.floor(math.max(now, 0))
        if level >= 5 then
          x = x + kw._worker.executions
          if level >= 6 then
            local m = stats:get("calls")
            if m > seen.max then seen.max = m end
            stats:cas("max", stats:get("max"), seen.max)
          end
        end
      end
    end
  end
  seen.n = seen.n + 1
  if seen.n == 3 then
    collectgarbage()
    local heap = collectgarbage("count")
    local stats = atasker.shared("state-memory")
    stats:incr("heap", heap)
    stats:incr("reported")
  end
end

local stats = atasker.shared("state-memory")
local before = rss()
local workers = {}
for i = 1, nworkers do
  workers[i] = atasker.background_worker{interval = 0.05, fn = executor, name = "m-" .. i}
end
for i = 1, nworkers do
  workers[i]:start{}
end
local deadline = atasker.monotonic() + 60
while (stats:get("reported") or 0) < nworkers do
  if atasker.monotonic() > deadline then error("workers did not report") end
  atasker.sleep(0.05)
end
local after = rss()
for i = 1, nworkers do
  workers[i]:stop()
end

print(string.format("RESULT variant %s", variant))
print(string.format("RESULT workers %d", nworkers))
print(string.format("RESULT heap_kb %.2f", stats:get("heap") / nworkers))
print(string.format("RESULT rss_kb_per_worker %.2f", (after - before) / nworkers))
