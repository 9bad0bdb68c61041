-- Durable jobs in an SQLite file: `scripts/run Examples/durable_sqlite.lua [/path/jobs.db]`.
-- The jobs survive a crash: kill the program with `kill -9` while it works, start it again, and the jobs that it
-- held run again once their lease (lease = 2 below) has run out ("attempt 2"); the others were done already or
-- are still pending ("already queued"). A run that nothing interrupted
-- Prints:
--   put photo1.png
--   put photo2.png
--   put photo3.png
--   put photo4.png
--   put photo5.png
--   put photo6.png
--   photo1-small.png attempt 1
--   photo2-small.png attempt 1
--   photo3-small.png attempt 1
--   photo4-small.png attempt 1
--   photo5-small.png attempt 1
--   photo6-small.png attempt 1
--   broken.png dead after 2 attempts: Examples/durable_sqlite.lua:40: cannot decode broken.png
--   this run: 6 completed, 2 failed, 1 dead
local atasker = require "atasker"
local jobs = require "atasker.jobs"

local path = arg[1] or "/tmp/atasker-durable-example.db"
local q = jobs.queue("thumbnails", {store = "sqlite://" .. path, keep = 3600})

-- A unique_key refuses a second job with the same key while one is pending or running: running this script
-- again before the jobs are done does not add them twice.
local ids = {}
for i = 1, 6 do
  local id, added = q:put({image = "photo" .. i .. ".png", size = 64 * i}, {unique_key = "photo" .. i})
  print((added and "put " or "already queued ") .. "photo" .. i .. ".png")
  ids[i] = id
end
local broken = q:put({image = "broken.png"}, {unique_key = "broken", max_attempts = 2})

-- Every host that runs this worker takes jobs from the same queue; each job runs on one of them at a time.
local w = jobs.worker{queue = q, name = "thumbnailer", concurrency = 2, lease = 2, backoff = 0.2,
  stop_when_empty = true,
  fn = function(v, job)
    if v.image == "broken.png" then error("cannot decode " .. v.image) end
    atasker.sleep(0.2)   -- the work
    return {thumbnail = (v.image:gsub("%.png$", "-small.png")), attempt = job.attempt}
  end}
w:start()

-- Once the queue is empty the worker stops; this task reports and the program exits.
atasker.background_task(function()
  while w:is_active() do atasker.sleep(0.1) end
  for _, id in ipairs(ids) do
    local job = q:get_job(id)
    print(job.result.thumbnail .. " attempt " .. job.result.attempt)
  end
  local b = q:get_job(broken)
  print(b.value.image .. " " .. b.state .. " after " .. b.attempts .. " attempts: " .. b.error)
  local info = w:info()
  print(string.format("this run: %d completed, %d failed, %d dead", info.completed, info.failed, info.dead))
end)()
