-- The process pool through the real binary: ports of atasker's mp tests
-- (test_background_task_mp, test_background_interval_worker_mp, each also
-- checking that the code ran in another process) and the rules of mp tasks
-- and workers: errors with tracebacks, faults of children (exit, SIGKILL,
-- SIGSTOP with a timeout), a burst while children die, shared tables and
-- the log through the parent, refusals in a child.
local atasker = require "atasker"
local h = require "harness"
local test = h.test
local result = atasker.shared("result")
local parent = atasker.getpid()

atasker.supervisor:set_mp_pool{pool_size = 2, reserve_normal = 1,
                               reserve_high = 1}

test("background_task_mp", function()
  local function add(a, b)
    return {sum = a + b, pid = atasker.getpid()}
  end
  local t = atasker.background_task(add, {mp = true, callback = function(r)
    atasker.shared("result"):set("background_task_mp", r.sum)
  end})(1, 2)
  local r = atasker.wait_completed(t)
  assert(r.sum == 3, "sum " .. tostring(r.sum))
  assert(r.pid ~= parent, "ran in the parent")
  assert(t.status == "completed", t.status)
  for _ = 1, 200 do
    if result:get("background_task_mp") then break end
    atasker.sleep(0.01)
  end
  assert(result:get("background_task_mp") == 3, "callback did not run")
end)

test("background_interval_worker_mp", function()
  local w = atasker.background_worker{interval = 0.1, mp = true, name = "mpw",
    fn = function(kw)
      return {n = 1, pid = atasker.getpid(), name = kw._name}
    end,
    process_result = function(r, kw)
      local shared = atasker.shared("result")
      shared:incr("interval_mp", r.n)
      shared:set("interval_mp_pid", r.pid)
      shared:set("interval_mp_name", r.name)
    end}
  local t0 = atasker.monotonic()
  w:start()
  h.eventually(function() return (result:get("interval_mp") or 0) >= 4 end, "4 executions")
  w:stop()
  -- the schedule is start + k * interval and overruns skip: never more runs than ticks so far
  local n, ticks = result:get("interval_mp"), (atasker.monotonic() - t0) / 0.1 + 1
  assert(n >= 4 and n <= ticks + 1, "executions " .. n .. " in " .. ticks .. " ticks")
  assert(result:get("interval_mp_pid") ~= parent, "ran in the parent")
  assert(result:get("interval_mp_name") == "mpw")
end)

test("upvalues, modules and arguments travel to the child", function()
  local factor = 10
  local t = atasker.background_task(function(list)
    local out = {}
    for i, v in ipairs(list) do out[i] = v * factor end
    return table.concat(out, ",") .. string.format(";%d", #list)
  end, {mp = true})({1, 2, 3})
  assert(atasker.wait_completed(t) == "10,20,30;3")
end)

test("a child has the script's package.path: a module of the script's folder travels by name", function()
  local harness = require "harness"
  local t = atasker.background_task(function()
    return type(harness.test) .. " " .. tostring(package.loaded.harness == harness)
  end, {mp = true})()
  assert(atasker.wait_completed(t) == "function true")
end)

test("a child ignores SIGINT: the parent alone handles Ctrl-C", function()
  local t = atasker.background_task(function()
    os.execute("kill -INT " .. atasker.getpid())
    atasker.sleep(0.05)
    return "still alive"
  end, {mp = true})()
  assert(atasker.wait_completed(t, 10) == "still alive")
end)

test("an mp plain worker runs again and again until it returns false", function()
  local w = atasker.background_worker{mp = true,
    fn = function(kw) return kw._task_id end,
    process_result = function(n)
      atasker.shared("result"):set("plain_mp", n)
      return n < 5
    end}
  w:start()
  for _ = 1, 500 do
    if w:is_stopped() then break end
    atasker.sleep(0.01)
  end
  assert(w:is_stopped(), "still running")
  assert(result:get("plain_mp") == 5, tostring(result:get("plain_mp")))
end)

test("an error in the child comes back with its traceback", function()
  local t = atasker.background_task(function()
    error("broken in the child")
  end, {mp = true})()
  local ok, err = pcall(atasker.wait_completed, t)
  assert(not ok)
  assert(err:find("mp.lua:%d+: broken in the child"), err)
  assert(err:find("stack traceback"), err)
  assert(t.status == "failed", t.status)
end)

test("a child that exits fails its task with the status and is replaced", function()
  local t = atasker.background_task(function() os.exit(3) end, {mp = true})()
  local ok, err = pcall(atasker.wait_completed, t, 10)
  assert(not ok)
  assert(err:find("status 3"), err)
  local again = atasker.background_task(function() return atasker.getpid() end,
                                        {mp = true})()
  assert(atasker.wait_completed(again, 10) ~= parent)
end)

test("a child killed by SIGKILL fails its task naming the signal", function()
  local t = atasker.background_task(function()
    os.execute("kill -KILL " .. atasker.getpid())
    atasker.sleep(5)
  end, {mp = true})()
  local ok, err = pcall(atasker.wait_completed, t, 10)
  assert(not ok)
  assert(err:find("SIGKILL"), err)
end)

test("a stopped child (SIGSTOP) is killed at the task's timeout", function()
  local started = atasker.monotonic()
  local t = atasker.background_task(function()
    os.execute("kill -STOP " .. atasker.getpid())
    return "never"
  end, {mp = true, timeout = 0.5})()
  local ok, err = pcall(atasker.wait_completed, t, 10)
  assert(not ok)
  assert(err:find("timed out"), err)
  assert(atasker.monotonic() - started < 5, "took too long")
end)

test("a burst of tasks while children die: none lost, none hangs", function()
  local f = atasker.background_task(function(i)
    if i % 10 == 0 then os.execute("kill -KILL " .. atasker.getpid()) end
    return i * 2
  end, {mp = true})
  local tasks = {}
  for i = 1, 100 do tasks[i] = f(i) end
  local completed, failed = 0, 0
  for i, t in ipairs(tasks) do
    local ok, r = pcall(atasker.wait_completed, t, 30)
    if ok then
      assert(r == i * 2, "task " .. i .. " returned " .. tostring(r))
      completed = completed + 1
    else
      assert(i % 10 == 0, "task " .. i .. " failed: " .. tostring(r))
      assert(tostring(r):find("SIGKILL"), r)
      failed = failed + 1
    end
  end
  assert(completed == 90 and failed == 10, completed .. " completed, " .. failed .. " failed")
end)

test("shared tables and the log work through the parent", function()
  local t = atasker.background_task(function()
    local s = atasker.shared("result")
    s:set("from_child", atasker.getpid())
    atasker.log.info("hello from the child log")
    return s:incr("child_counter", 5)
  end, {mp = true})()
  assert(atasker.wait_completed(t) == 5)
  assert(result:get("from_child") ~= parent)
end)

test("workers, locks and tasks are refused in a child", function()
  local lock = atasker.Locker{}
  local t = atasker.background_task(function(l)
    return select(2, pcall(function() l:with(function() end) end))
  end, {mp = true})(lock)
  local msg = atasker.wait_completed(t)
  assert(msg:find("cannot be used in an mp child process"), msg)
  local t2 = atasker.background_task(function()
    return select(2, pcall(atasker.background_task, function() end))
  end, {mp = true})()
  local msg2 = atasker.wait_completed(t2)
  assert(msg2:find("not available in an mp child process"), msg2)
end)

test("a function in a result is refused in the child", function()
  local t = atasker.background_task(function()
    return {f = function() end}
  end, {mp = true})()
  local ok, err = pcall(atasker.wait_completed, t)
  assert(not ok)
  assert(err:find("functions cannot be copied"), err)
end)

test("print in a child reaches the parent's stdout", function()
  local t = atasker.background_task(function()
    print("printed by a child")
  end, {mp = true})()
  atasker.wait_completed(t)
end)

test("an mp queue worker stops when process_result returns false", function()
  local w = atasker.background_worker{q = true, mp = true,
    fn = function(item, kw) return item * 2 end,
    process_result = function(r, kw)
      atasker.shared("result"):incr("queue_mp", r)
      if r >= 6 then return false end
    end}
  w:start()
  for i = 1, 5 do w:put(i) end
  for _ = 1, 500 do
    if w:is_stopped() then break end
    atasker.sleep(0.01)
  end
  assert(w:is_stopped(), "still running")
  assert(result:get("queue_mp") == 2 + 4 + 6, tostring(result:get("queue_mp")))
end)

test("an mp worker's error reaches on_error", function()
  local w = atasker.background_worker{e = true, mp = true,
    fn = function() error("event failed in the child") end,
    on_error = function(kw)
      atasker.shared("result"):set("mp_on_error", kw.error)
    end}
  w:start()
  w:trigger()
  for _ = 1, 500 do
    if result:get("mp_on_error") then break end
    atasker.sleep(0.01)
  end
  w:stop()
  local e = result:get("mp_on_error")
  assert(e and e:find("event failed in the child"), tostring(e))
end)

test("info reports the mp pool", function()
  local info = atasker.supervisor:info()
  assert(info.mp_pool_size == 2, tostring(info.mp_pool_size))
  assert(info.mp_children_count >= 1, tostring(info.mp_children_count))
  assert(info.mp_tasks_count == 0)
end)

h.done()
