-- Memory limits (memory_limit): run by MemoryCLITests through the real binary. Each test allocates without bound
-- under a limit and checks the error, that the limit held (peak <= limit, from s:info()), and that the state and the
-- others go on.
local h = require "harness"
local s = atasker.supervisor
local MB = 1024 * 1024

-- Fills a table until the allocator refuses: never returns normally.
local function hog()
  local t = {}
  for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
end

local function stateOf(name)
  for _, st in ipairs(s:info().states) do
    if st.name == name then return st end
  end
end

local function workerInfo(name)
  for _, w in ipairs(s:info().workers) do
    if w.name == name then return w end
  end
end

h.test("set_thread_pool{memory_limit=} caps every pool state; false removes it", function()
  s:set_thread_pool{memory_limit = "200k"}
  assert(s:info().thread_memory_limit == 200 * 1024)
  local hogtask = atasker.background_task(hog)
  local ok, err = pcall(atasker.wait_completed, hogtask())
  assert(not ok and err:find("not enough memory: the run reached the memory limit of its state %(204800 bytes%)"),
    err)
  local capped = 0
  for _, st in ipairs(s:info().states) do
    -- a pool thread's state takes the limit when it next runs a task; these ran none before
    if st.name == "pool thread" and st.limit then
      assert(st.limit == 204800, tostring(st.limit))
      assert(st.peak <= 204800, tostring(st.peak))
      capped = capped + 1
    end
  end
  assert(capped >= 1, "the state that ran the task is capped")
  assert(atasker.wait_completed(atasker.background_task(function() return 7 end)()) == 7)
  s:set_thread_pool{memory_limit = false}
  assert(s:info().thread_memory_limit == nil)
  assert(atasker.wait_completed(atasker.background_task(function()
    local t = {}
    for i = 1, 20000 do t[i] = ("y"):rep(20) .. i end
    return #t
  end)()) == 20000)
end)

h.test("a worker that allocates without bound gets the error, stays under its limit, and goes on", function()
  local stats = atasker.shared("mem_worker")
  local steady = atasker.background_worker{name = "steady", interval = 0.01, fn = function()
    atasker.shared("mem_worker"):incr("steady")
  end}
  steady:start()
  local w = atasker.background_worker{name = "hog", e = true, memory_limit = "1M", fn = function(kw)
    local stats = atasker.shared("mem_worker")
    if stats:get("small") then
      stats:set("small_ran", collectgarbage("count") * 1024)
      return
    end
    local t = {}
    for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
  end, on_error = function(kw)
    local stats = atasker.shared("mem_worker")
    stats:set("error", kw.error)
    stats:incr("errors")
  end}
  w:start()
  for n = 1, 3 do
    w:trigger{force = true}  -- the last execution may still be ending after its on_error
    h.eventually(function() return (stats:get("errors") or 0) >= n end, "error " .. n)
  end
  assert(stats:get("error"):find("memory.lua:%d+: not enough memory"), stats:get("error"))
  local info = workerInfo("hog")
  assert(info.memory_limit == MB, tostring(info.memory_limit))
  assert(info.memory_peak <= MB and info.memory_peak > MB / 2, tostring(info.memory_peak))
  assert(info.memory < MB / 2, "the failed execution's garbage was collected: " .. info.memory)
  -- the state is usable: a small execution runs in it
  stats:set("small", true)
  w:trigger{force = true}
  h.eventually(function() return stats:get("small_ran") end, "a small execution after the errors")
  -- the other worker went on meanwhile, and goes on
  local before = stats:get("steady")
  h.eventually(function() return stats:get("steady") > before + 5 end, "the steady worker")
  local peak = workerInfo("hog").memory_peak
  assert(peak <= MB, tostring(peak))
  w:stop()
  steady:stop()
end)

h.test("a worker without on_error logs the error and runs its next item; a state that cannot open fails the start",
  function()
  local stats = atasker.shared("mem_queue")
  local q = atasker.background_worker{name = "qhog", q = true, memory_limit = 300 * 1024, fn = function(item)
    if item == "hog" then
      local t = {}
      for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
    end
    atasker.shared("mem_queue"):incr("items")
  end}
  q:start()
  q:put("hog")
  q:put("small")
  q:put("hog")
  q:put("small")
  h.eventually(function() return stats:get("items") == 2 end, "the small items")
  h.eventually(function() return q.errors == 2 end, "two errors counted")
  assert(workerInfo("qhog").memory_peak <= 300 * 1024)
  q:stop()
  local tiny = atasker.BackgroundEventWorker{name = "tiny", memory_limit = 1000, run = function() end}
  tiny:start()
  tiny:trigger()
  h.eventually(function() return tiny:is_stopped() end, "the start of a worker whose state cannot open to fail")
end)

h.test("an async worker out of memory gets on_error with the line, and its next execution runs", function()
  local stats = atasker.shared("mem_async")
  local a = atasker.background_worker{name = "ahog", async = true, e = true, memory_limit = "512k", fn = function()
    local stats = atasker.shared("mem_async")
    if stats:get("small") then stats:set("small_ran", true) return end
    local t = {}
    for i = 1, math.huge do
      t[i] = ("x"):rep(64) .. i
      if i % 1000 == 0 then atasker.sleep(0) end
    end
  end, on_error = function(kw) atasker.shared("mem_async"):set("error", kw.error) end}
  a:start()
  a:trigger()
  h.eventually(function() return stats:get("error") end, "the async worker's error")
  assert(stats:get("error"):find("memory.lua:%d+: not enough memory"), stats:get("error"))
  assert(workerInfo("ahog").memory_peak <= 512 * 1024)
  stats:set("small", true)
  a:trigger{force = true}  -- the failed execution may still be ending after its on_error
  h.eventually(function() return stats:get("small_ran") end, "the next execution")
  a:stop()
end)

h.test("a task's memory_limit: the run fails naming it, the next run of the pool state works", function()
  local run = atasker.background_task(function(n)
    if n == 0 then
      local t = {}
      for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
    end
    local t = {}
    for i = 1, n do t[i] = i end
    return #t
  end, {memory_limit = "256k", name = "capped"})
  for _ = 1, 2 do
    local ok, err = pcall(atasker.wait_completed, run(0))
    assert(not ok and err:find("not enough memory: the run reached its memory_limit %(262144 bytes above"), err)
    assert(err:find("task %d+ %(capped%)"), err)
    assert(atasker.wait_completed(run(1000)) == 1000)
  end
  -- a run that fits in the limit: it holds well under 256 KB more
  assert(atasker.wait_completed(run(5000)) == 5000)
end)

h.test("an aloop task's memory_limit", function()
  local loop = s:create_aloop("memloop")
  local t = loop:background_task(function() end)
  atasker.wait_completed(t)
  local capped = atasker.background_task(function()
    local t = {}
    for i = 1, math.huge do
      t[i] = ("x"):rep(64) .. i
      if i % 1000 == 0 then atasker.sleep(0) end
    end
  end, {loop = "memloop", memory_limit = "128k"})
  local ok, err = pcall(atasker.wait_completed, capped())
  assert(not ok and err:find("memory.lua:%d+: not enough memory"), err)
  assert(atasker.wait_completed(loop:background_task(function() return 3 end)) == 3)
end)

h.test("mp: a task's memory_limit and set_mp_pool{memory_limit=} cap the child's state", function()
  s:set_mp_pool{pool_size = 1}
  local run = atasker.background_task(function(n)
    local t = {}
    for i = 1, n do t[i] = ("x"):rep(64) .. i end
    return #t
  end, {mp = true, memory_limit = "256k"})
  local ok, err = pcall(atasker.wait_completed, run(1e9))
  assert(not ok and err:find("mp child %d+: not enough memory: the run reached its memory_limit"), err)
  assert(atasker.wait_completed(run(100)) == 100, "the child goes on")
  s:set_mp_pool{pool_size = 1, memory_limit = "300k"}
  assert(s:info().mp_memory_limit == 300 * 1024)
  local free = atasker.background_task(function(n)
    local t = {}
    for i = 1, n do t[i] = ("x"):rep(64) .. i end
    return collectgarbage("count") * 1024
  end, {mp = true})
  ok, err = pcall(atasker.wait_completed, free(1e9))
  assert(not ok and err:find("not enough memory: the run reached the memory limit of its state %(307200 bytes%)"),
    err)
  assert(atasker.wait_completed(free(10)) < 300 * 1024)
  -- an mp worker: its executions in the child have the worker's memory_limit
  local stats = atasker.shared("mem_mp")
  local w = atasker.background_worker{name = "mphog", mp = true, e = true, memory_limit = "200k", fn = function()
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(64) .. i end
  end, on_error = function(kw) atasker.shared("mem_mp"):set("error", kw.error) end}
  w:start()
  w:trigger()
  h.eventually(function() return stats:get("error") end, "the mp worker's error")
  assert(stats:get("error"):find("not enough memory"), stats:get("error"))
  w:stop()
  s:set_mp_pool{memory_limit = false}
  assert(s:info().mp_memory_limit == nil)
end)

h.test("under a range of tight limits, every host call that runs out of memory fails cleanly", function()
  local stats = atasker.shared("mem_range")
  local sink = atasker.background_worker{name = "range_sink", q = true, fn = function() end}
  sink:start()
  -- critical: it always starts, so the workers that wait for it never fill every pool slot and wait for good (on
  -- a loaded machine all 49 may be running at once, and the pool has 15 slots for normal tasks)
  local double = atasker.background_task(function(n) return n * 2 end, {priority = atasker.TASK_CRITICAL})
  local workers = {}
  for limit = 12 * 1024, 60 * 1024, 1024 do
    local w = atasker.background_worker{name = "range" .. limit, e = true, memory_limit = limit, fn = function(kw)
      local stats = atasker.shared("mem_range")
      local t = {}
      for i = 1, 50 do t[i] = {i, tostring(i)} end
      stats:set("w" .. limit, t)
      kw.sink:put(t)
      assert(atasker.wait_completed(kw.double(21)) == 42)
      assert(#stats:get("w" .. limit) == 50)
      stats:incr("ok")
    end, on_error = function(kw)
      atasker.shared("mem_range"):set("error", kw.error)
    end}
    w:start{sink = sink, double = double}
    w:trigger()
    workers[#workers + 1] = w
  end
  -- each one ends: its execution returned or failed (into on_error, or logged when on_error itself ran out), or its
  -- state could not open (the start failed)
  h.eventually(function()
    for _, w in ipairs(workers) do
      if w.executions < 1 and not w:is_stopped() then return false end
    end
    return true
  end, "every worker to end its execution")
  assert((stats:get("ok") or 0) > 0, "the larger limits are enough: " .. tostring(stats:get("error")))
  for _, w in ipairs(workers) do
    local info = workerInfo(w.name)
    if info.memory_peak then assert(info.memory_peak <= info.memory_limit, w.name) end
    w:stop()
  end
  sink:stop()
end)

h.test("bad memory_limit values are refused, naming the function, the worker and the option", function()
  local bad = {0 / 0, -1, 0, 1e300, math.huge, 0.5, "64X", "12 parsecs", "0k", "", "M", "1..5M", true, {}}
  for _, v in ipairs(bad) do
    local ok, err = pcall(atasker.background_worker, {name = "badmem", fn = function() end, memory_limit = v})
    assert(not ok and err:find("background_worker 'badmem': memory_limit must be a number of bytes", 1, true),
      tostring(v) .. ": " .. tostring(err))
    ok, err = pcall(atasker.BackgroundIntervalWorker, {name = "badi", interval = 1, run = function() end,
      memory_limit = v})
    assert(not ok and err:find("'badi': memory_limit must be", 1, true), tostring(err))
    ok, err = pcall(atasker.background_task, function() end, {memory_limit = v})
    assert(not ok and err:find("background_task: memory_limit must be", 1, true), tostring(err))
    ok, err = pcall(s.set_thread_pool, s, {memory_limit = v})
    assert(not ok and err:find("set_thread_pool: memory_limit must be", 1, true), tostring(err))
    ok, err = pcall(s.set_mp_pool, s, {memory_limit = v})
    assert(not ok and err:find("set_mp_pool: memory_limit must be", 1, true), tostring(err))
  end
  local ok, err = pcall(atasker.background_worker, {fn = function() end, memory_limt = "1M"})
  assert(not ok and err:find("unknown option 'memory_limt'"), err)
  for _, v in ipairs{"64M", "512k", "1G", "1.5G", "64MiB", "64 MB", "100B", 4096, 2 ^ 20} do
    local w = atasker.background_worker{fn = function() end, memory_limit = v}
    assert(w.kind == "plain")
  end
end)

h.test("s:info() shows every state's bytes and peak", function()
  local info = s:info()
  local main = stateOf("main")
  assert(main and main.bytes > 0 and main.peak >= main.bytes, "the main state")
  local total = 0
  for _, st in ipairs(info.states) do
    assert(st.bytes <= st.peak)
    if st.limit then assert(st.peak <= st.limit, st.name) end
    total = total + st.bytes
  end
  assert(total == info.lua_memory)
  print("main limit", tostring(main.limit))
end)

h.done()
