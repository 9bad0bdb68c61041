-- atasker.jobs misuse and the worker kinds, in one run: `atasker-lua --store URL jobs_api.lua MODE`.
local jobs = require "atasker.jobs"
local mode = arg[1]

local function try(label, f, ...)
  local ok, e = pcall(f, ...)
  print((ok and "no error " or "error ") .. label .. ": " .. tostring(e))
end

if mode == "misuse" then
  local q = jobs.queue("m")
  try("function value", function() q:put({cb = function() end}) end)
  try("userdata value", function() q:put({io.stdout}) end)
  try("metatable", function() q:put(setmetatable({}, {})) end)
  try("misspelt option", function() q:put(1, {dealy = 5}) end)
  try("nan delay", function() q:put(1, {delay = 0 / 0}) end)
  try("huge delay", function() q:put(1, {delay = math.huge}) end)
  try("negative delay", function() q:put(1, {delay = -1}) end)
  try("both times", function() q:put(1, {delay = 1, run_at = atasker.time()}) end)
  try("zero attempts", function() q:put(1, {max_attempts = 0}) end)
  try("fractional attempts", function() q:put(1, {max_attempts = 1.5}) end)
  try("huge priority", function() q:put(1, {priority = 1e300}) end)
  try("empty key", function() q:put(1, {unique_key = ""}) end)
  try("zero timeout", function() q:put(1, {timeout = 0}) end)
  try("dot call", function() q.put(1) end)
  try("options not a table", function() q:put(1, 5) end)
  try("get_job bad id", function() q:get_job("x") end)
  try("postgres", function() jobs.queue("m", {store = "postgres://localhost/db?sslmode=require"}) end)
  try("unknown url", function() jobs.queue("m", {store = "redis://x"}) end)
  try("queue no name", function() jobs.queue() end)
  try("worker misspelt", function() jobs.worker{queue = q, fn = print, concurency = 2} end)
  try("worker no fn", function() jobs.worker{queue = q} end)
  try("worker not a queue", function() jobs.worker{queue = {name = "m"}, fn = function() end} end)
  try("worker concurrency 0", function() jobs.worker{queue = q, fn = function() end, concurrency = 0} end)
  try("worker nan lease", function() jobs.worker{queue = q, fn = function() end, lease = 0 / 0} end)
  try("worker fn with a file", function()
    local fh = io.stdout
    jobs.worker{queue = q, fn = function() return fh end}
  end)
  local w = jobs.worker{queue = q, name = "taken", fn = function() end}
  try("worker name taken", function() jobs.worker{queue = q, name = "taken", fn = function() end} end)
  try("periodic no every", function() jobs.periodic{queue = q, name = "p"} end)
  try("periodic nan every", function() jobs.periodic{queue = q, name = "p", every = 0 / 0} end)
  try("periodic bad cron", function() jobs.periodic{queue = q, name = "p", cron = "0 25 * * *"} end)
  try("periodic both", function() jobs.periodic{queue = q, name = "p", every = 60, cron = "* * * * *"} end)
  try("periodic tz", function() jobs.periodic{queue = q, name = "p", cron = "* * * * *", tz = "Mars"} end)
  try("periodic tz every", function() jobs.periodic{queue = q, name = "p", every = 60, tz = "local"} end)
  try("put_many holes", function() q:put_many({1, nil, 3}) end)
  local ids, added = q:put_many({1, 2, 3})
  print("put_many", #ids, added[1], ids[3] - ids[1])
  print("info", q:info().ready)
elseif mode == "periodic" then
  -- declare the schedule, wait until this host has handled one period, and report
  local q = jobs.queue("p")
  local p = jobs.periodic{queue = q, name = "tick", every = tonumber(arg[2]), value = {tick = true}}:start()
  atasker.background_task(function()
    while not p:info().period do atasker.sleep(0.01) end
    print("handled period " .. p:info().period .. ", put " .. p:info().periods_put)
    p:stop()
  end)()
elseif mode == "periodic-cron" then
  -- the same with a cron schedule: a host that starts puts the latest fire time's job, unless a host did
  local q = jobs.queue("pc")
  local p = jobs.periodic{queue = q, name = "minutely", cron = arg[2], tz = arg[3], value = {tick = true}}:start()
  atasker.background_task(function()
    while not p:info().period do atasker.sleep(0.01) end
    local info = p:info()
    print(string.format("handled period %d, put %d, next %d", info.period, info.periods_put, info.next_run_at))
    p:stop()
  end)()
elseif mode == "periodic-run" then
  -- a short period, with a worker: stop once N periods were put and their jobs done
  local q = jobs.queue("pr")
  local n = tonumber(arg[3])
  local p = jobs.periodic{queue = q, name = "fast", every = tonumber(arg[2]), value = {tick = true}}:start()
  local w = jobs.worker{queue = q, poll = 0.05, fn = function(v, job) return job.id end}:start()
  atasker.background_task(function()
    while p:info().periods_put < n do atasker.sleep(0.01) end
    p:stop()
    while w:info().completed < n do atasker.sleep(0.01) end
    w:stop()
    print("put " .. p:info().periods_put .. ", completed " .. w:info().completed)
  end)()
elseif mode == "keep" then
  -- arg[2] "run": put a job into a queue that keeps finished jobs 0 s and run it; "look": a new process (whose
  -- first claim prunes) runs a worker on the queue, then looks for job 1
  local q = jobs.queue("keep", {keep = 0})
  if arg[2] == "run" then q:put("x") end
  local w = jobs.worker{queue = q, fn = function(v) return v end, stop_when_empty = true}:start()
  atasker.background_task(function()
    while w:is_active() do atasker.sleep(0.01) end
    local job = q:get_job(1)
    print("job 1: " .. (job and job.state or "gone"))
  end)()
elseif mode == "stop-inside" then
  -- a job stops its own worker: the stop asks and returns, the job ends, the worker stops
  local q = jobs.queue("si")
  q:put("stop")
  local w
  w = jobs.worker{queue = q, fn = function(v)
    local handle = require("atasker.jobs").Worker
    print("stop from inside returned", setmetatable({name = "stopper"}, handle):stop())
    return v
  end, name = "stopper"}
  w:start()
elseif mode == "slow-poll" then
  -- a worker that polls every 30 s: a job put by another process must reach it through the wake-up
  local q = jobs.queue("sp")
  local w = jobs.worker{queue = q, poll = 30, fn = function(v, job)
    print("ran " .. job.id)
    setmetatable({name = "jobs:sp"}, require("atasker.jobs").Worker):stop()   -- from inside: asks, never waits
    return v
  end}
  w:start()
  -- the worker looks at the (empty) queue as it starts; "ready" comes well after that look, so that the put
  -- reaches an idle worker
  atasker.background_task(function()
    atasker.sleep(0.5)
    print("ready")
  end)()
elseif mode == "put-one" then
  print("put " .. jobs.queue(arg[2]):put(arg[3] or "x"))
elseif mode == "cancel-running" then
  -- a job cancelled while it runs: it sees its state, returns, and its ack is refused; it does not run again
  local q = jobs.queue("cr")
  local id = q:put("hold")
  local w = jobs.worker{queue = q, stop_when_empty = true, poll = 0.05, fn = function(v, job)
    print("running " .. job.id .. " attempt " .. job.attempt)
    while q:get_job(job.id).state ~= "canceled" do atasker.sleep(0.01) end
    return "finished anyway"
  end}:start()
  atasker.background_task(function()
    while q:get_job(id).state ~= "running" do atasker.sleep(0.01) end
    print("cancel", q:cancel(id))
    while w:is_active() do atasker.sleep(0.01) end
    local job = q:get_job(id)
    print("state " .. job.state .. ", result " .. tostring(job.result) .. ", lost " .. w:info().lost)
  end)()
elseif mode == "no-store" then
  try("queue without a store", function() jobs.queue("m") end)
elseif mode == "kinds" then
  -- each kind of executor runs jobs; results are kept; a cancelled job never runs; a timeout fails the run
  local s = atasker.supervisor
  s:create_aloop("io")
  local q = jobs.queue("k")
  for i = 1, 3 do q:put({n = i, kind = "thread"}) end
  local canceled = q:put({n = 99, kind = "thread"}, {delay = 60})
  print("cancel", q:cancel(canceled), q:cancel(canceled))
  local slow = q:put({n = 0, kind = "thread", spin = true}, {timeout = 0.3, max_attempts = 1})
  local badresult = q:put({n = 0, kind = "thread", fn = true})
  local qa = jobs.queue("ka")
  for i = 1, 3 do qa:put({n = i, kind = "aloop"}) end
  local qm = jobs.queue("km")
  for i = 1, 3 do qm:put({n = i, kind = "mp"}) end
  local function work(v, job)
    if v.spin then while true do end end
    if v.fn then return function() end end
    if v.kind == "aloop" then atasker.sleep(0.01) end
    return {n = v.n * 10, pid = atasker.getpid(), attempt = job.attempt}
  end
  local w1 = jobs.worker{queue = q, fn = work, stop_when_empty = true, concurrency = 2}:start()
  local w2 = jobs.worker{queue = qa, fn = work, loop = "io", stop_when_empty = true}:start()
  local w3 = jobs.worker{queue = qm, fn = work, mp = true, stop_when_empty = true}:start()
  atasker.background_task(function()
    while w1:is_active() or w2:is_active() or w3:is_active() do atasker.sleep(0.05) end
    local me = atasker.getpid()
    for _, qq in ipairs {q, qa, qm} do
      local info = qq:info()
      print("queue", qq.name, info.ready, info.later, info.running)
    end
    for id = 1, 11 do
      local job = q:get_job(id)
      local r = job.result
      print(string.format("job %d %s %s %s %s", id, job.queue, job.state,
        r and tostring(r.n) or "-", r and (r.pid == me and "here" or "child") or (job.error or "-")))
    end
  end)()
end
