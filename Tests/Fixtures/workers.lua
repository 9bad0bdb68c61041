-- Lua workers, each in its own state: ports of atasker's worker tests
-- (tests/test.py in alttch/atasker: test_background_worker,
-- test_background_interval_worker, test_background_queue_worker,
-- test_background_event_worker) and the rules of the workers' contract.
-- Values that the Python tests keep in module globals go through
-- atasker.shared here.
local atasker = require "atasker"
local h = require "harness"
local test = h.test
local eventually = h.eventually
local result = atasker.shared("result")

test("background_worker", function()
  local t = atasker.background_worker(function(kw)
    atasker.shared("result"):incr("background_worker")
    atasker.sleep(0.001)
  end)
  t:start()
  eventually(function() return result:get("background_worker") end, "an execution")
  t:stop()
  assert(result:get("background_worker") > 0)
  assert(t:is_stopped() and not t:is_active())
end)

test("background_interval_worker", function()
  local t = atasker.background_worker{interval = 0.02, fn = function(kw)
    atasker.shared("result"):incr("interval")
  end}
  local t0 = atasker.monotonic()
  t:start()
  eventually(function() return (result:get("interval") or 0) > 3 end, "4 executions")
  t:stop()
  -- the schedule is start + k * interval and overruns skip: never more runs than ticks so far
  local n, ticks = result:get("interval"), (atasker.monotonic() - t0) / 0.02 + 1
  assert(n > 3 and n <= ticks + 1, "executions: " .. n .. " in " .. ticks .. " ticks")
end)

test("background_queue_worker", function()
  local t = atasker.background_worker{q = true, fn = function(a, kw)
    atasker.shared("result"):incr("queue", a)
  end}
  t:start()
  t:put(2)
  t:put(3)
  t:put(4)
  t:stop{drain = true}
  assert(result:get("queue") == 9, tostring(result:get("queue")))
end)

test("background_event_worker", function()
  local t = atasker.background_worker{e = true, fn = function(kw)
    atasker.shared("result"):incr("event")
  end}
  t:start()
  t:trigger()
  eventually(function() return result:get("event") == 1 end, "the first execution")
  -- force: a trigger while that execution still ends would be dropped
  t:trigger{force = true}
  eventually(function() return result:get("event") == 2 end, "the second execution")
  t:stop()
  assert(result:get("event") == 2, tostring(result:get("event")))
end)

test("named constructors choose the kind", function()
  local f = function() return false end
  assert(atasker.BackgroundWorker{run = f}.kind == "plain")
  assert(atasker.BackgroundQueueWorker{run = f}.kind == "queue")
  assert(atasker.BackgroundEventWorker{run = f}.kind == "event")
  assert(atasker.BackgroundIntervalWorker{run = f, interval = 1}.kind == "interval")
  assert(atasker.background_worker{fn = f, delay = 1}.kind == "interval")
  assert(atasker.background_worker{fn = f, e = true}.kind == "event")
end)

test("kw: start args, o, _name, _worker; return false stops", function()
  local w = atasker.background_worker{name = "kwtest", o = {label = "obj"},
    fn = function(kw)
      local s = atasker.shared("kw")
      s:set("x", kw.x)
      s:set("label", kw.o.label)
      s:set("name", kw._name)
      s:set("has_worker", kw._worker ~= nil)
      s:set("main", atasker.is_main)
      return false
    end}
  w:start{x = 42}
  eventually(function() return w:is_stopped() end, "the worker to stop itself by returning false")
  local s = atasker.shared("kw")
  assert(s:get("x") == 42 and s:get("label") == "obj" and s:get("name") == "kwtest")
  assert(s:get("has_worker") == true and s:get("main") == false)
  assert(w:is_stopped())
end)

test("start overrides: _name and _interval", function()
  local w = atasker.background_worker{interval = 10, fn = function(kw)
    atasker.shared("over"):incr("n")
    atasker.shared("over"):set("name", kw._name)
  end}
  w:start{_name = "renamed", _interval = 0.01}
  eventually(function() return (atasker.shared("over"):get("n") or 0) >= 3 end, "3 executions")
  w:stop()
  assert(w.name == "renamed")
  assert(atasker.shared("over"):get("name") == "renamed")
  assert(atasker.shared("over"):get("n") >= 3)
end)

test("stop from inside the worker", function()
  local w = atasker.background_worker{interval = 0.01, fn = function(kw)
    atasker.shared("inside"):incr("n")
    kw._worker:stop()
  end}
  w:start()
  eventually(function() return w:is_stopped() end, "the worker to stop")
  assert(atasker.shared("inside"):get("n") == 1)
end)

test("executions never overlap", function()
  local w = atasker.background_worker{interval = 0.005, fn = function(kw)
    local s = atasker.shared("overlap")
    assert(s:incr("running") == 1, "overlap")
    atasker.sleep(0.02)
    s:incr("running", -1)
    s:incr("runs")
  end}
  w:start()
  eventually(function() return (atasker.shared("overlap"):get("runs") or 0) >= 3 and w.skipped > 0 end,
             "3 runs and a skipped tick")
  w:stop()
  assert(atasker.shared("overlap"):get("runs") >= 3)
  assert(w.errors == 0)
  assert(w.skipped > 0, "skipped ticks: " .. w.skipped)
end)

test("errors call on_error with kw, error and traceback; the worker goes on", function()
  local w = atasker.background_worker{interval = 0.01,
    fn = function(kw)
      if atasker.shared("errs"):incr("n") <= 2 then error("bad " .. kw.x) end
    end,
    on_error = function(kw)
      local s = atasker.shared("errs")
      s:set("error", kw.error)
      s:set("extra", kw.extra)
      s:set("tb", kw.traceback ~= nil and kw.traceback:find("stack traceback") ~= nil)
    end,
    on_error_kwargs = {extra = "E"}}
  w:start{x = 7}
  eventually(function() return (atasker.shared("errs"):get("n") or 0) > 3 and w.errors == 2 end,
             "4 runs, 2 errors")
  w:stop()
  local s = atasker.shared("errs")
  assert(s:get("n") > 3, "the worker went on")
  assert(s:get("error"):find("workers.lua:%d+: bad 7"), s:get("error"))
  assert(s:get("extra") == "E" and s:get("tb") == true)
  assert(w.errors == 2, "errors " .. w.errors)
end)

test("upvalues are copied and modules resolved in the worker's state", function()
  local base = {n = 40}
  local fmt = string.format
  local w = atasker.background_worker{q = true, fn = function(item, kw)
    atasker.shared("up"):set("v", fmt("%d", base.n + item))
  end}
  w:start()
  w:put(2)
  w:stop{drain = true}
  assert(atasker.shared("up"):get("v") == "42")
end)

test("priority and LIFO queues", function()
  local p = atasker.background_worker{q = "priority", fn = function(item, kw)
    local s = atasker.shared("prio")
    s:set(s:incr("i"), item[2])
  end}
  p:put{5, "e"} p:put{1, "a"} p:put{3, "c"}
  p:start()
  p:stop{drain = true}
  local s = atasker.shared("prio")
  assert(s:get(1) == "a" and s:get(2) == "c" and s:get(3) == "e")
  local l = atasker.background_worker{q = "lifo", fn = function(item, kw)
    local s = atasker.shared("lifo")
    s:set(s:incr("i"), item)
  end}
  l:put(1) l:put(2) l:put(3)
  l:start()
  l:stop{drain = true}
  local t = atasker.shared("lifo")
  assert(t:get(1) == 3 and t:get(2) == 2 and t:get(3) == 1)
end)

test("items put before start wait; stop drops the rest unless drain", function()
  local w = atasker.background_worker{q = true, fn = function(item, kw)
    atasker.sleep(0.02)
    atasker.shared("drop"):incr("n")
  end}
  for i = 1, 20 do w:put(i) end
  assert(w.queue_depth == 20)
  w:start()
  eventually(function() return atasker.shared("drop"):get("n") end, "the first item")
  w:stop()
  local n = atasker.shared("drop"):get("n")
  assert(n < 20, "ran " .. n)
end)

test("misuse raises at the call", function()
  local ok, err = pcall(function() atasker.background_worker{fn = function() end, interval = 1, delay = 1} end)
  assert(not ok and err:find("interval"), err)
  ok, err = pcall(function() atasker.background_worker{fn = function() end, interval = -1} end)
  assert(not ok and err:find("interval must be"), err)
  ok, err = pcall(function() atasker.background_worker{fn = function() end, intervall = 1} end)
  assert(not ok and err:find("unknown option 'intervall'"), err)
  -- options without fn make atasker's decorator: the executor comes next
  ok, err = pcall(function() atasker.background_worker{}(42) end)
  assert(not ok and err:find("fn must be a function"), err)
  local w = atasker.background_worker{fn = function() end, interval = 1}
  ok, err = pcall(function() w:put(1) end)
  assert(not ok and err:find("not a queue worker"), err)
  local fh = io.stdout
  ok, err = pcall(function() atasker.background_worker{name = "files", fn = function() return fh end} end)
  assert(not ok and err:find("upvalue 'fh' of the executor of worker 'files'"), err)
  atasker.background_worker{name = "unique", fn = function() end}
  ok, err = pcall(function() atasker.background_worker{name = "unique", fn = function() end} end)
  assert(not ok and err:find("unique"), err)
end)

test("info lists workers", function()
  local w = atasker.background_worker{name = "listed", interval = 1, fn = function() end}
  w:start()
  local found
  for _, x in ipairs(atasker.supervisor:info().workers) do
    if x.name == "listed" then found = x end
  end
  assert(found and found.kind == "interval" and found.state == "running")
  w:stop()
  assert(tostring(w) == "atasker.Worker 'listed' (interval, stopped)", tostring(w))
end)

test("stop{wait=T} cancels a sleeping execution at its deadline", function()
  local w = atasker.background_worker{name = "sleeper", fn = function(kw)
    atasker.shared("sleeper"):set("started", true)
    atasker.sleep(30)
    atasker.shared("sleeper"):set("woke", true)
  end}
  w:start()
  while not atasker.shared("sleeper"):get("started") do atasker.sleep(0.01) end
  local t0 = atasker.monotonic()
  w:stop{wait = 0.2}
  local took = atasker.monotonic() - t0
  assert(took < 3, "stop took " .. took)
  assert(w:is_stopped())
  assert(atasker.shared("sleeper"):get("woke") == nil)
end)

test("every kind of item arrives as it was put, in order, in every queue and executor kind", function()
  local nan = 0 / 0
  local items = {1, -0.0, 2^53, math.mininteger, math.maxinteger, 1.5, math.huge, -math.huge, nan, 1e300,
    true, false, "", "a", "fifteen bytes!!", "sixteen bytes!!!", "nul\0byte", string.rep("x", 300),
    {1, 2, k = "v"}, {}}
  local function same(a, b)
    if a ~= a then return b ~= b end  -- NaN
    if type(a) == "table" then
      if type(b) ~= "table" then return false end
      for k, v in pairs(a) do if b[k] ~= v then return false end end
      for k in pairs(b) do if a[k] == nil then return false end end
      return true
    end
    return a == b and math.type(a) == math.type(b) and (a ~= 0 or 1 / a == 1 / b)
  end
  local function describe(v)
    if type(v) == "table" then return "table" end
    return string.format("%s %q", math.type(v) or type(v), v)
  end
  local function check(got, label)
    for i, v in ipairs(items) do
      assert(same(got[i], v), label .. ": item " .. i .. " is " .. describe(got[i]) .. ", put " .. describe(v))
    end
  end
  local function record(name)
    return function(item, kw)
      local s = atasker.shared(name)
      s:set(s:incr("n"), type(item) == "table" and {table.unpack(item)} or item)
      if type(item) == "table" then s:set("k" .. s:get("n"), item.k) end
    end
  end
  local function collect(name)
    local s, got = atasker.shared(name), {}
    for i = 1, s:get("n") or 0 do
      got[i] = s:get(i)
      if type(got[i]) == "table" then got[i].k = s:get("k" .. i) end
    end
    return got
  end
  -- a thread worker, FIFO: items put before and after the start
  local w = atasker.background_worker{q = true, fn = record("kinds_fifo")}
  for i = 1, 10 do w:put(items[i]) end
  w:start()
  for i = 11, #items do w:put(items[i]) end
  w:stop{drain = true}
  check(collect("kinds_fifo"), "thread FIFO")
  -- LIFO runs them newest first
  local l = atasker.background_worker{q = "lifo", fn = record("kinds_lifo")}
  for i = #items, 1, -1 do l:put_threadsafe(items[i]) end
  l:start()
  l:stop{drain = true}
  check(collect("kinds_lifo"), "thread LIFO")
  -- an async worker (on an aloop), and puts from inside another worker's execution
  local a = atasker.background_worker{q = true, async = true, fn = record("kinds_async")}
  a:start()
  local feeder = atasker.background_worker{q = true, fn = function(list, kw)
    for _, v in ipairs(list) do kw.o:put(v) end
  end, o = a}
  feeder:start()
  local list = {}
  for i, v in ipairs(items) do list[i] = v end
  feeder:put(list)
  feeder:stop{drain = true}
  eventually(function() return (atasker.shared("kinds_async"):get("n") or 0) >= #items end, "the async items")
  a:stop{drain = true}
  check(collect("kinds_async"), "async")
end)

test("a burst of items: each has its own _task_id, its error goes to on_error, and false stops the worker", function()
  local n = 2000
  local w = atasker.background_worker{q = true, fn = function(item, kw)
    local s = atasker.shared("burst")
    s:set("id" .. item, kw._task_id)
    if item % 100 == 0 then error({item = item}) end  -- a table error object, to on_error as itself
    if item == n - 1 then return false end
  end, on_error = function(kw)
    atasker.shared("burst"):incr("handled")
    assert(type(kw.error) == "table" and kw.error.item % 100 == 0, "on_error got " .. tostring(kw.error))
  end}
  for i = 1, n do w:put(i) end
  w:start()
  eventually(function() return w:is_stopped() end, "the worker to stop at item " .. n - 1)
  local s, seen = atasker.shared("burst"), {}
  for i = 1, n - 1 do
    local id = s:get("id" .. i)
    assert(id and not seen[id], "item " .. i .. ": _task_id " .. tostring(id))
    seen[id] = true
  end
  assert(s:get("id" .. n) == nil, "item " .. n .. " ran after the worker stopped itself")
  local failed = (n - 1) // 100
  assert(s:get("handled") == failed, "handled " .. tostring(s:get("handled")))
  assert(w.errors == failed, "errors " .. w.errors)
  assert(w.executions == n - 1, "executions " .. w.executions)
end)

test("put takes one item: more values are refused at the call", function()
  local w = atasker.background_worker{q = true, fn = function(item, kw) end}
  local ok, err = pcall(w.put, w, 1, 2)
  assert(not ok and err:find("one item expected, got 2 values", 1, true), tostring(err))
  assert(w.queue_depth == 0, "depth " .. w.queue_depth)
end)

h.done()

-- the program runs while a worker is active: this one stops itself
local last = atasker.background_worker{interval = 0.01, fn = function(kw)
  if atasker.shared("last"):incr("n") == 3 then
    print("last worker done")
    return false
  end
end}
last:start()
