-- Async workers on an aloop: a producer and a consumer, each a coroutine in a
-- Lua state of its own, resumed by one aloop thread. atasker.sleep and
-- atasker.wait_completed yield to the aloop there instead of blocking a
-- thread, so the two take turns on it; an aloop task and an async job run on
-- the same aloop.
-- Prints:
--   consumed 1 2 3 4 5
--   aloop task: 42
--   job runs: 3
local atasker = require "atasker"
local s = atasker.supervisor
local loop = s:create_aloop("main", {default = true})

local consumer = atasker.background_worker{async = true, q = true, name = "consumer",
  fn = function(item, kw)
    atasker.sleep(0.01)                      -- yields: the producer runs meanwhile
    local got = atasker.shared("got")
    got:set(item, true)
    if item == 5 then return false end      -- false stops the worker
  end}
consumer:start()

local producer = atasker.background_worker{async = true, interval = 0.005, name = "producer",
  o = {consumer = consumer},
  fn = function(kw)
    local n = atasker.shared("got"):incr("sent")
    kw.o.consumer:put(n)
    if n == 5 then return false end
  end}
producer:start()

local answer = loop:run(function(x)
  atasker.sleep(0.01)
  return x * 2
end, 21)

local job = s:create_async_job{interval = 0.01, number = 3,
  target = function() atasker.shared("got"):incr("job") end}

while not consumer:is_stopped() or job.active do atasker.sleep(0.01) end
local got, seen = atasker.shared("got"), {}
for i = 1, 5 do if got:get(i) then seen[#seen + 1] = i end end
print("consumed " .. table.concat(seen, " "))
print("aloop task: " .. answer)
print("job runs: " .. got:get("job"))
