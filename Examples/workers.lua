-- Workers, each in a Lua state of its own: a queue worker fed by the main
-- script, and an interval worker that stops itself by returning false. The
-- program ends when no worker is active any more.
-- Prints:
--   job 1: apple
--   job 2: pear
--   tick 1
--   tick 2
--   tick 3
local atasker = require "atasker"

local jobs = atasker.background_worker{q = true, name = "jobs",
  fn = function(item, kw)
    local n = atasker.shared("stats"):incr("jobs")
    print(string.format("job %d: %s", n, item))
  end}
jobs:put("apple")          -- items put before start wait for it
jobs:put("pear")
jobs:start()
jobs:stop{drain = true}    -- run what is queued, then stop

atasker.background_worker{interval = 0.05, name = "ticker",
  fn = function(kw)
    local n = atasker.shared("stats"):incr("ticks")
    print("tick " .. n)
    return n < 3           -- false stops the worker
  end}:start()
