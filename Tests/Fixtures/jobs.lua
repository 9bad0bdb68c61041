-- Durable jobs through the real binary. Run with --store sqlite:///path.db (or ATASKER_STORE); arg[1] is the mode:
--   put N [max_attempts]     put N jobs {n = i} into queue "t" (and print "put ID")
--   work TAG CONC LEASE      run a worker of queue "t" until it is empty (stop_when_empty); each job prints
--                            "start ID ATTEMPT TAG" and "done ID TAG"; a job whose value has hold = true holds on
--                            its first attempt (prints "holding ID") until the file arg[5] exists, if given, or for
--                            ever; a job with fail = true always fails
--   serve TAG CONC LEASE     as work, but runs until a signal stops it
--   put-sleep S              put one job that runs for S seconds
--   put-sleeping N S         put N jobs {n = i} that run for S seconds each
--   status                   print "job ID STATE ATTEMPTS" for each job and "summary ..." with the counts
local jobs = require "atasker.jobs"
local mode = arg[1]
local q = jobs.queue("t")

if mode == "put" then
  local n = tonumber(arg[2])
  local max_attempts = tonumber(arg[3])
  for i = 1, n do
    local id = q:put({n = i}, {max_attempts = max_attempts})
    print("put " .. id)
  end
elseif mode == "put-sleep" then
  -- one job that runs for arg[2] seconds (longer than the lease: it is renewed while it runs)
  print("put " .. q:put({n = 1, sleep = tonumber(arg[2])}))
elseif mode == "put-sleeping" then
  for i = 1, tonumber(arg[2]) do print("put " .. q:put({n = i, sleep = tonumber(arg[3])})) end
elseif mode == "put-special" then
  -- one holder, one that always fails, then plain jobs
  print("put " .. q:put({n = 0, hold = true}))
  print("put " .. q:put({n = -1, fail = true}, {max_attempts = 3}))
  for i = 1, tonumber(arg[2] or "0") do print("put " .. q:put({n = i})) end
elseif mode == "work" or mode == "serve" then
  local tag, conc, lease, gate = arg[2], tonumber(arg[3]), tonumber(arg[4]), arg[5]
  local w = jobs.worker{queue = q, name = "w-" .. tag, concurrency = conc, lease = lease, poll = 0.1,
    backoff = 0.05, backoff_max = 0.2, stop_when_empty = mode == "work",
    fn = function(v, job)
      print(string.format("start %d %d %s", job.id, job.attempt, tag))
      if v.hold and job.attempt == 1 then
        print("holding " .. job.id)
        while true do
          local f = gate and io.open(gate)
          if f then
            f:close()
            break
          end
          atasker.sleep(0.02)
        end
      end
      if v.sleep then atasker.sleep(v.sleep) end
      if v.fail then error("job " .. job.id .. " always fails") end
      print(string.format("done %d %s", job.id, tag))
      return {n = v.n, by = tag, attempt = job.attempt}
    end}
  w:start()
  print("ready " .. tag)
elseif mode == "status" then
  local counts = {pending = 0, running = 0, completed = 0, dead = 0, canceled = 0}
  local id = 1
  while true do
    local job = q:get_job(id)
    if not job then break end
    counts[job.state] = counts[job.state] + 1
    local extra = ""
    if job.result then extra = " by=" .. tostring(job.result.by) end
    if job.value_error then extra = extra .. " value_error=" .. job.value_error end
    if job.error then extra = extra .. " error=" .. job.error:gsub("\n", " ") end
    if job.traceback then extra = extra .. " traceback=yes" end
    print(string.format("job %d %s %d%s", job.id, job.state, job.attempts, extra))
    id = id + 1
  end
  print(string.format("summary completed=%d pending=%d running=%d dead=%d canceled=%d", counts.completed,
    counts.pending, counts.running, counts.dead, counts.canceled))
end
