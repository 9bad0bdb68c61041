-- Durable jobs in PostgreSQL, one queue shared by every host that runs this script:
--   atasker-lua --store postgres://user:password@db.internal:5432/app Examples/durable_postgres.lua
-- (or ATASKER_STORE=postgres://... scripts/run Examples/durable_postgres.lua). The first host makes the tables
-- (versioned migrations, under an advisory lock when several start at once). Start it on two machines at once:
-- each order is charged by one of them (claims use FOR UPDATE SKIP LOCKED), a put on one wakes the other at once
-- (LISTEN/NOTIFY), and a host killed with `kill -9` gives its orders back after their lease (lease = 2 below).
-- If the server restarts, the hosts wait for it (reconnecting with backoff, 30 s at most by default: the URL's
-- outage=S) and go on.
-- Prints:
--   put order 1
--   put order 2
--   put order 3
--   put order 4
--   order 1: charged 10 (attempt 1)
--   order 2: charged 20 (attempt 1)
--   order 3: charged 30 (attempt 1)
--   order 4: dead after 3 attempts: Examples/durable_postgres.lua:38: card declined for order 4
--   this host: 3 completed, 3 failed, 1 dead
local atasker = require "atasker"
local jobs = require "atasker.jobs"

-- No store= here: the queue is in the store of --store or ATASKER_STORE.
local q = jobs.queue("charges", {keep = 3600})

-- The unique key refuses a second job for an order while one is pending or running: hosts that start together
-- put each order once.
local ids = {}
for i = 1, 4 do
  local id, added = q:put({order = i, amount = 10 * i, declined = i == 4},
                          {unique_key = "order:" .. i, max_attempts = 3})
  print((added and "put order " or "already queued order ") .. i)
  ids[i] = id
end

local w = jobs.worker{queue = q, name = "charger", concurrency = 4, lease = 2, backoff = 0.1, backoff_max = 0.2,
  stop_when_empty = true,
  fn = function(v, job)
    if v.declined then error("card declined for order " .. v.order) end
    return {charged = v.amount, attempt = job.attempt}
  end}
w:start()

-- Once the queue is empty on every host the worker stops; this task reports and the program exits.
atasker.background_task(function()
  while w:is_active() do atasker.sleep(0.05) end
  for i, id in ipairs(ids) do
    local job = q:get_job(id)
    if job.state == "completed" then
      print(string.format("order %d: charged %d (attempt %d)", i, job.result.charged, job.result.attempt))
    else
      print(string.format("order %d: %s after %d attempts: %s", i, job.state, job.attempts, job.error))
    end
  end
  local info = w:info()
  print(string.format("this host: %d completed, %d failed, %d dead", info.completed, info.failed, info.dead))
end)()
