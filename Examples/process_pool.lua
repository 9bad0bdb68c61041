-- The process pool: CPU work in child processes, crash-isolated. A task that
-- crashes its child fails alone, with the signal in its error; the next task
-- gets a fresh child. An mp interval worker hands each result to
-- process_result, which runs in the parent, in the worker's own state.
-- Prints:
--   sum 2999998, in another process: true
--   crash: killed by SIGKILL
--   after the crash: 42
--   worker result 1
--   worker result 2
--   worker result 3
local atasker = require "atasker"
atasker.supervisor:set_mp_pool{pool_size = 2}

local crunch = atasker.background_task(function(n)
  local s = 0
  for i = 1, n do s = s + i % 7 end
  return {sum = s, pid = atasker.getpid()}
end, {mp = true, timeout = 10})
local r = atasker.wait_completed(crunch(1e6))
print(string.format("sum %d, in another process: %s", r.sum,
                    tostring(r.pid ~= atasker.getpid())))

local crash = atasker.background_task(function()
  os.execute("kill -KILL " .. atasker.getpid())
end, {mp = true})
local ok, err = pcall(atasker.wait_completed, crash())
print("crash: " .. (not ok and err:match("killed by SIG%u+") or "?"))

local answer = atasker.background_task(function() return 42 end, {mp = true})
print("after the crash: " .. atasker.wait_completed(answer()))

local w = atasker.background_worker{interval = 0.05, mp = true,
  fn = function(kw) return kw._task_id end,   -- in a child
  process_result = function(n)                -- in the parent
    print("worker result " .. n)
    if n >= 3 then return false end           -- stops the worker
  end}
w:start()
