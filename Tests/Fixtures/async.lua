-- Async workers, aloops and async jobs: ports of atasker's aloop and async
-- tests (tests/test.py in alttch/atasker: test_aloop, test_aloop_run,
-- test_result_async, test_background_interval_worker_async_ex,
-- test_async_job_scheduler) and the rules of async code. Values that the
-- Python tests keep in module globals go through atasker.shared here.
local atasker = require "atasker"
local h = require "harness"
local test = h.test
local s = atasker.supervisor
local result = atasker.shared("result")

-- The name of the calling thread (an aloop's thread is "aloop-<name>").
local function thread_name()
  local f = assert(io.open("/proc/thread-self/comm"))
  local name = f:read("l")
  f:close()
  return name
end

local eventually = h.eventually

test("test_background_interval_worker_async_ex", function()
  local t = atasker.background_worker{interval = 0.02, async = true, fn = function(kw)
    atasker.shared("result"):incr("background_interval_worker_async_ex")
  end}
  local t0 = atasker.monotonic()
  t:start()
  eventually(function() return (result:get("background_interval_worker_async_ex") or 0) > 3 end, "4 executions")
  t:stop()
  -- the schedule is start + k * interval and overruns skip: never more runs than ticks so far
  local n, ticks = result:get("background_interval_worker_async_ex"), (atasker.monotonic() - t0) / 0.02 + 1
  assert(n > 3 and n <= ticks + 1, "executions: " .. n .. " in " .. ticks .. " ticks")
end)

test("test_aloop", function()
  local t = atasker.background_worker{interval = 0.02, async = true, fn = function(kw)
    local f = assert(io.open("/proc/thread-self/comm"))
    atasker.shared("result"):set("test_aloop", f:read("l"))
    f:close()
  end}
  s:create_aloop("test1", {default = true})
  t:start()
  eventually(function() return result:get("test_aloop") end, "an execution")
  t:stop()
  assert(result:get("test_aloop") == "aloop-test1", tostring(result:get("test_aloop")))
  assert(s:get_aloop().name == "test1" and s:get_aloop("test1").is_default)
end)

test("test_result_async", function()
  s:create_aloop("test3")
  local t = atasker.background_task(function() return 555 end, {loop = "test3"})()
  atasker.wait_completed({t})
  assert(t.result == 555, tostring(t.result))
end)

test("test_aloop_run", function()
  local a = s:create_aloop("test2")
  local t = atasker.background_task(function()
    atasker.shared("result"):set("test_aloop_background_task", 1)
  end, {loop = "test2"})()
  atasker.wait_completed({t})
  assert(result:get("test_aloop_background_task") == 1)
  assert(a:run(function(x) return x * 2 end, 2) == 4)
  assert(a:background_task(function(x) atasker.sleep(0.01) return x + 1 end, 41).id > 0)
end)

test("test_async_job_scheduler", function()
  s:create_aloop("jobs")
  s:create_async_job_scheduler("default", {aloop = "jobs", default = true})
  local j1 = s:create_async_job{target = function() atasker.shared("result"):incr("async_js1") end,
                                interval = 0.01}
  local j2 = s:create_async_job{target = function() atasker.shared("result"):incr("async_js2") end,
                                interval = 0.01}
  eventually(function() return (result:get("async_js1") or 0) > 9 and (result:get("async_js2") or 0) > 9 end,
             "10 runs of each job")
  s:cancel_async_job{job = j2}
  -- both jobs run on one aloop thread: once j1 ran twice more, no run of j2 is under way
  local r1 = result:get("async_js1")
  eventually(function() return result:get("async_js1") >= r1 + 2 end, "j1 to go on")
  local r2 = result:get("async_js2")
  r1 = result:get("async_js1")
  eventually(function() return result:get("async_js1") >= r1 + 3 end, "j1 to go on")
  assert(r2 == result:get("async_js2"), "a cancelled job ran")
  j1:cancel()
  assert(not j1.active and not j2.active)
end)

test("async workers of the four kinds, each on the aloop's thread", function()
  local kinds = {}
  local function record(kind)
    return function(...)
      local f = assert(io.open("/proc/thread-self/comm"))
      atasker.shared("kinds"):set(kind, f:read("l"))
      f:close()
      atasker.sleep(0.001)
      return false
    end
  end
  local ws = {
    atasker.background_worker{async = true, fn = record("plain")},
    atasker.BackgroundAsyncWorker{run = record("named")},
    atasker.background_worker{async = true, interval = 0.01, fn = record("interval")},
    atasker.background_worker{async = true, q = true, fn = record("queue")},
    atasker.background_worker{async = true, e = true, fn = record("event")},
  }
  assert(ws[2].kind == "plain" and ws[3].kind == "interval" and ws[4].kind == "queue"
         and ws[5].kind == "event")
  for _, w in ipairs(ws) do w:start() end
  ws[4]:put("item")
  ws[5]:trigger()
  for _, w in ipairs(ws) do eventually(function() return w:is_stopped() end, "a worker to stop") end
  for _, kind in ipairs{"plain", "named", "interval", "queue", "event"} do
    assert(atasker.shared("kinds"):get(kind) == "aloop-test1", kind .. ": "
           .. tostring(atasker.shared("kinds"):get(kind)))
  end
end)

test("loop= and _loop place a worker on a named aloop", function()
  s:create_aloop("other")
  local w = atasker.background_worker{async = true, e = true, loop = "other", fn = function(kw)
    local f = assert(io.open("/proc/thread-self/comm"))
    atasker.shared("loops"):set(kw.tag, f:read("l"))
    f:close()
  end}
  w:start{tag = "a"}
  w:trigger()
  eventually(function() return atasker.shared("loops"):get("a") end, "an execution")
  w:stop()
  w:start{tag = "b", _loop = "test2"}
  w:trigger()
  eventually(function() return atasker.shared("loops"):get("b") end, "an execution")
  w:stop()
  assert(atasker.shared("loops"):get("a") == "aloop-other")
  assert(atasker.shared("loops"):get("b") == "aloop-test2")
  local ok, err = pcall(function() w:start{_loop = "nowhere"} end)
  assert(not ok and err:find("no aloop called 'nowhere'"), err)
end)

test("kw, o, _name, return false and on_error as for thread workers", function()
  local w = atasker.background_worker{async = true, name = "akw", o = {label = "obj"},
    on_error = function(kw)
      atasker.shared("akw"):set("error", kw.error)
      atasker.shared("akw"):set("x", kw.x)
    end,
    fn = function(kw)
      atasker.sleep(0.001)
      local sh = atasker.shared("akw")
      sh:set("label", kw.o.label)
      sh:set("name", kw._name)
      sh:set("worker", kw._worker.name)
      if sh:incr("n") == 1 then error("first fails") end
      return false
    end}
  w:start{x = 42}
  eventually(function() return w:is_stopped() end, "the worker to stop itself")
  local sh = atasker.shared("akw")
  assert(sh:get("label") == "obj" and sh:get("name") == "akw" and sh:get("worker") == "akw")
  assert(sh:get("error"):find("first fails"), sh:get("error"))
  assert(sh:get("x") == 42 and sh:get("n") == 2)
  assert(w.errors == 1 and w.executions == 2, w.errors .. " " .. w.executions)
end)

test("atasker.sleep yields: a sleeping worker does not hold the aloop", function()
  local sleeper = atasker.background_worker{async = true, e = true, fn = function(kw)
    atasker.shared("sleep"):set("begin", atasker.monotonic())
    atasker.sleep(0.3)
    atasker.shared("sleep"):set("end", atasker.monotonic())
  end}
  local ticker = atasker.background_worker{async = true, interval = 0.01, fn = function(kw)
    atasker.shared("sleep"):incr("ticks")
  end}
  sleeper:start()
  sleeper:trigger()
  eventually(function() return atasker.shared("sleep"):get("begin") end, "the sleeper")
  ticker:start()
  eventually(function() return atasker.shared("sleep"):get("end") end, "the sleeper to wake")
  ticker:stop()
  sleeper:stop()
  local sh = atasker.shared("sleep")
  assert(sh:get("ticks") >= 3, "ticks while the other slept: " .. sh:get("ticks"))
  assert(sh:get("end") - sh:get("begin") >= 0.29)
end)

test("wait_completed in async code waits for thread and aloop tasks without blocking", function()
  local w = atasker.background_worker{async = true, e = true, fn = function(kw)
    local t1 = atasker.background_task(function() atasker.sleep(0.05) return 1 end)()
    local t2 = atasker.background_task(function() atasker.sleep(0.02) return 2 end, {loop = true})()
    local t3 = s:get_aloop("other"):background_task(function() return 3 end)
    local r = atasker.wait_completed({t1, t2, t3})
    local none = atasker.wait_completed({})   -- nothing to wait for: back at once
    local single = atasker.wait_completed(t2)
    local slow = atasker.background_task(function() atasker.sleep(1) end)()
    local ok, err = pcall(atasker.wait_completed, slow, 0.05)
    local failing = atasker.background_task(function() error("task fails") end, {loop = true})()
    local ok2, err2 = pcall(atasker.wait_completed, failing)
    local sh = atasker.shared("wait")
    sh:set("r", table.concat(r, ",") .. "/" .. #none)
    sh:set("single", single)
    sh:set("timeout", not ok and err:find("timed out") ~= nil)
    sh:set("failed", not ok2 and err2:find("task fails") ~= nil)
    sh:set("run", s:get_aloop("other"):run(function(x) atasker.sleep(0.01) return x * 3 end, 5))
    return false
  end}
  w:start()
  w:trigger()
  eventually(function() return w:is_stopped() end, "the worker")
  local sh = atasker.shared("wait")
  assert(sh:get("r") == "1,2,3/0", sh:get("r"))
  assert(sh:get("single") == 2 and sh:get("timeout") and sh:get("failed") and sh:get("run") == 15)
end)

test("host yields pass through the user's coroutine.resume and coroutine.wrap", function()
  local w = atasker.background_worker{async = true, e = true, fn = function(kw)
    local co = coroutine.create(function(a)
      local inner = coroutine.wrap(function(b)
        atasker.sleep(0.01)
        local x = coroutine.yield(b + 1)   -- the user's own yield still goes to its resumer
        atasker.sleep(0.01)
        return x * 2
      end)
      local first = inner(a)
      coroutine.yield(first)
      return inner(10)
    end)
    local ok1, v1 = coroutine.resume(co, 1)
    local ok2, v2 = coroutine.resume(co)
    atasker.shared("pass"):set("r", tostring(ok1) .. v1 .. tostring(ok2) .. v2)
    coroutine.yield()   -- a plain yield of the executor: its turn comes back soon
    return false
  end}
  w:start()
  w:trigger()
  eventually(function() return w:is_stopped() end, "the worker")
  assert(atasker.shared("pass"):get("r") == "true2true20", atasker.shared("pass"):get("r"))
end)

test("where no yield can reach the aloop, sleep raises a clear error", function()
  local w = atasker.background_worker{async = true, e = true, fn = function(kw)
    local sh = atasker.shared("noyield")
    local ok, err = pcall(table.sort, {3, 1, 2}, function(a, b) atasker.sleep(0) return a < b end)
    sh:set("sort", not ok and err:find("cannot yield to the aloop here") ~= nil)
    local obj = setmetatable({}, {__tostring = function() atasker.sleep(0) return "x" end})
    local ok2, err2 = pcall(tostring, obj)
    sh:set("meta", not ok2 and err2:find("cannot yield to the aloop here") ~= nil)
    local ok3, err3 = pcall(table.sort, {3, 1, 2}, function(a, b)
      local r = coroutine.wrap(function() atasker.sleep(0) return a < b end)()
      return r
    end)
    sh:set("nested", not ok3 and err3:find("cannot yield to the aloop here") ~= nil)
    -- pcall and a Lua metamethod called by the VM can yield
    local ok4 = pcall(atasker.sleep, 0.001)
    local idx = setmetatable({}, {__index = function(t, k) atasker.sleep(0.001) return k end})
    sh:set("pcall", ok4 and idx.key == "key")
    return false
  end}
  w:start()
  w:trigger()
  eventually(function() return w:is_stopped() end, "the worker")
  local sh = atasker.shared("noyield")
  assert(sh:get("sort"), "table.sort comparator")
  assert(sh:get("meta"), "__tostring")
  assert(sh:get("nested"), "a coroutine inside a comparator")
  assert(sh:get("pcall"), "pcall and __index")
end)

test("outside async code, atasker.sleep blocks its thread as before", function()
  local t = atasker.background_task(function()
    local co = coroutine.wrap(function() atasker.sleep(0.05) return "slept" end)
    local t0 = atasker.monotonic()
    local r = co()
    return r .. (atasker.monotonic() - t0 >= 0.049 and " 50ms" or " early")
  end)()
  assert(atasker.wait_completed(t) == "slept 50ms")
end)

test("on an aloop's thread a full queue never blocks: put adds the item anyway", function()
  local sink = atasker.background_worker{async = true, q = true, max_queue = 2, fn = function(item, kw)
    atasker.shared("full"):incr("got")
  end}
  sink:start()
  local producer = atasker.background_worker{async = true, e = true, fn = function(kw)
    for i = 1, 10 do kw.sink:put(i) end   -- the sink runs on this aloop: waiting would never end
    atasker.shared("full"):set("sent", true)
    return false
  end}
  producer:start{sink = sink}
  producer:trigger()
  eventually(function() return (atasker.shared("full"):get("got") or 0) == 10 end, "the ten items")
  assert(atasker.shared("full"):get("sent"))
  sink:stop()
end)

test("a stop from inside an async worker never waits for itself", function()
  local w = atasker.background_worker{async = true, interval = 0.01, fn = function(kw)
    kw._worker:stop()
    atasker.shared("selfstop"):set("back", true)
  end}
  w:start()
  eventually(function() return w:is_stopped() end, "the worker")
  assert(atasker.shared("selfstop"):get("back"))
end)

test("stop{wait=T} cancels an async execution still waiting at the deadline", function()
  local w = atasker.background_worker{async = true, e = true, name = "longsleep", fn = function(kw)
    atasker.shared("long"):set("in", true)
    local ok = pcall(atasker.sleep, 60)   -- the cancel keeps raising: pcall cannot swallow it
    atasker.shared("long"):set("after", true)
  end}
  w:start()
  w:trigger()
  eventually(function() return atasker.shared("long"):get("in") end, "the sleep")
  local t0 = atasker.monotonic()
  w:stop{wait = 0.1}
  eventually(function() return w:is_stopped() end, "the worker")
  assert(atasker.monotonic() - t0 < 5)
  assert(atasker.shared("long"):get("after") == nil)
end)

test("aloops: names are unique, a stopped aloop takes no work, start again", function()
  local ok, err = pcall(s.create_aloop, s, "test2")
  assert(not ok and err:find("called \"test2\" already"), err)
  local a = s:create_aloop("stoppable", {start = false})
  assert(not a:is_active() and not a.active)
  local ok2, err2 = pcall(a.background_task, a, function() end)
  assert(ok2 and err2.status == "failed")
  s:start_aloop("stoppable")
  assert(a:is_active())
  assert(a:run(function() return "up" end) == "up")
  assert(s:stop_aloop("stoppable", {wait = 5}))
  assert(not a:is_active())
  local w = atasker.background_worker{async = true, e = true, loop = a, fn = function() end}
  local ok3, err3 = pcall(w.start, w)
  assert(not ok3 and err3:find("not running"), err3)
  a:start()
  w:start()
  w:stop()
  s:set_default_aloop("test1")
  assert(s:get_aloop().name == "test1")
end)

test("misuse raises at the call", function()
  local function raises(fn, text)
    local ok, err = pcall(fn)
    assert(not ok and err:find(text, 1, true), tostring(err))
  end
  raises(function() atasker.background_worker{fn = function() end, loop = "test1"} end,
         "loop= is for async workers")
  raises(function() atasker.background_worker{fn = function() end, async = true, mp = true} end,
         "async and mp exclude each other")
  raises(function() atasker.background_worker{fn = function() end, async = true, loop = 5} end,
         "loop must be an aloop")
  raises(function() atasker.background_task(function() end, {loop = "nowhere"}) end,
         "no aloop called 'nowhere'")
  raises(function() s:create_async_job{target = function() end, interval = 0} end, "interval must be")
  raises(function() s:get_aloop("test1"):run(function() return io.stdout end) end,
         "cannot copy")
  raises(function() s.aloop_block_warning = -1 end, "aloop_block_warning must be")
end)

test("async jobs never overlap themselves; number= ends a job", function()
  local j = s:create_async_job{interval = 0.01, target = function()
    local sh = atasker.shared("jobs")
    if sh:incr("inside") > 1 then sh:set("overlap", true) end
    atasker.sleep(0.035)
    sh:incr("inside", -1)
    sh:incr("runs")
  end}
  eventually(function() return j.skipped > 0 and j.runs > 3 end, "4 runs and a skipped tick")
  j:cancel()
  local sh = atasker.shared("jobs")
  assert(not sh:get("overlap"))
  assert(j.skipped > 0 and j.runs > 3, j.skipped .. " " .. j.runs)
  local n = s:create_async_job{interval = 0.01, number = 3, args = {2},
                               target = function(k) atasker.shared("jobs"):incr("numbered", k) end}
  eventually(function() return not n.active end, "the numbered job to end")
  assert(sh:get("numbered") == 6 and n.runs == 3)
end)

h.done()
