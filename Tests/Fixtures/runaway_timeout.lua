-- run_timeout: worker 'slow' runs longer than its run_timeout; the log shows
-- where it is, with its Lua traceback, and it still finishes ("slow done").
-- Worker 'stuck' has cancel_on_timeout=true: its execution is cancelled, and
-- the worker goes on (it runs again, so its second execution prints).
local atasker = require "atasker"

local function busy(seconds)
  local t = atasker.monotonic() + seconds
  while atasker.monotonic() < t do end
end

local slow = atasker.background_worker{name = "slow", run_timeout = 0.2,
  fn = function(kw)
    busy(0.8)
    print("slow done")
    return false
  end}

local runs = 0
local stuck = atasker.background_worker{name = "stuck", run_timeout = 0.2,
  cancel_on_timeout = true, fn = function(kw)
    runs = runs + 1
    print("stuck run " .. runs)
    if runs == 1 then while true do end end
    return false
  end}

slow:start()
stuck:start()
