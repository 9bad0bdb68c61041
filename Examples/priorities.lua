-- Priorities and reserves with a pool of one thread: while a LOW task holds
-- the only pool thread, a NORMAL task may still start (reserve_normal = 1),
-- and a CRITICAL task always starts at once. Tasks that wait start by
-- priority, the most urgent first.
-- Prints:
--   started: blocker (low)
--   started: normal
--   started: critical
--   info: pool size 1, reserves 1 / 0
local atasker = require "atasker"
local s = atasker.supervisor
s:set_thread_pool{pool_size = 1, reserve_normal = 1, reserve_high = 0}

local function job(name)
  return atasker.background_task(function(n, t)
    print("started: " .. n)
    atasker.sleep(t)
  end, {priority = atasker[name]})
end

local blocker = job("TASK_LOW")("blocker (low)", 0.3)
atasker.sleep(0.05)
local normal = job("TASK_NORMAL")("normal", 0.2)
atasker.sleep(0.05)
local critical = job("TASK_CRITICAL")("critical", 0.1)
atasker.wait_completed({blocker, normal, critical})

local info = s:info()
print(string.format("info: pool size %d, reserves %d / %d",
  info.thread_pool_size, info.thread_reserve_normal, info.thread_reserve_high))
