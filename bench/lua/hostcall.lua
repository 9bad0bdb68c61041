-- Host calls: the cost of one call from Lua into the host, timed inside a worker's
-- executor over N calls each (os.clock() around each loop). Calls timed:
-- atasker.monotonic() (a plain C function, the floor), w.executions (a worker handle
-- property), and s:get(5), s:incr(5), s:set(5, i), s:get("key") on a shared table.
-- Usage: atasker-lua bench/lua/hostcall.lua [N]
-- Prints: RESULT <name>_ns <ns per call>, one line per call timed.
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "1000000"))

local function executor(kw)
  local w = kw._worker
  local s = atasker.shared("x")
  s:set("key", "value")
  local function timed(name, f)
    local t0 = os.clock()
    f()
    local ns = (os.clock() - t0) * 1e9 / n
    print(string.format("RESULT %s_ns %.1f", name, ns))
  end
  timed("monotonic", function() for _ = 1, n do atasker.monotonic() end end)
  timed("worker_executions", function() for _ = 1, n do local _ = w.executions end end)
  timed("shared_get", function() for _ = 1, n do s:get(5) end end)
  timed("shared_incr", function() for _ = 1, n do s:incr(5) end end)
  timed("shared_set", function() for i = 1, n do s:set(5, i) end end)
  timed("shared_get_string", function() for _ = 1, n do s:get("key") end end)
  return false
end

local w = atasker.background_worker{fn = executor, name = "hostcall"}
w:start()
while not w:is_stopped() do atasker.sleep(0.01) end
