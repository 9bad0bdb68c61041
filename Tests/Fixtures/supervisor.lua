-- The supervisor from Lua: start-latency warnings with their callbacks,
-- resizing, info, logging, and stop from inside a task.
local atasker = require "atasker"
local h = require "harness"
local test = h.test
local s = atasker.supervisor

test("timeout warning fires once per task, with its callback in a pool state", function()
  s:set_thread_pool{pool_size = 1, reserve_normal = 0, reserve_high = 0}
  s.timeout_warning = 0.05
  s.timeout_critical = 0.15
  assert(s.timeout_warning == 0.05)
  s.timeout_warning_func = function(task)
    local w = atasker.shared("warnings")
    w:incr("warning")
    w:set("task", task.id)
    w:set("main", atasker.is_main)
  end
  s.timeout_critical_func = function(task)
    atasker.shared("warnings"):incr("critical")
  end
  -- the blocker holds the one thread until the late task's critical warning came (10 s at most)
  local hold = atasker.background_task(function(wait)
    local deadline = atasker.monotonic() + 10
    while wait and not atasker.shared("warnings"):get("critical") and atasker.monotonic() < deadline do
      atasker.sleep(0.005)
    end
  end, {priority = atasker.TASK_LOW})
  local blocker = hold(true)
  local late = hold(false)
  atasker.wait_completed({blocker, late})
  local w = atasker.shared("warnings")
  -- the handlers run as critical tasks: wait for them through a marker task
  assert(w:get("warning") == 1, "warnings: " .. tostring(w:get("warning")))
  assert(w:get("critical") == 1, "critical: " .. tostring(w:get("critical")))
  assert(w:get("task") == late.id)
  assert(w:get("main") == false)
  s.timeout_warning_func = nil
  s.timeout_critical_func = nil
  s.timeout_warning = 5
  s.timeout_critical = 10
end)

test("resizing while tasks wait admits them at once", function()
  s:set_thread_pool{pool_size = 1, reserve_normal = 0, reserve_high = 0}
  -- a holds the one thread until the gate opens
  local hold = atasker.background_task(function(wait)
    while wait and not atasker.shared("gate"):get("open") do atasker.sleep(0.005) end
    return atasker.monotonic()
  end, {priority = atasker.TASK_LOW})
  local a = hold(true)
  local b = hold(false)
  h.eventually(function() return a.status == "started" end, "the first task to start")
  assert(b.status == "queued", b.status)
  local info = s:info()
  assert(info.thread_pool_size == 1)
  assert(info.thread_tasks_count == 1)
  assert(info.queued_count == 1)
  assert(s:get_task(b.id) ~= nil)
  s:set_thread_pool{pool_size = 4}
  local started = atasker.wait_completed(b)
  atasker.shared("gate"):set("open", true)
  assert(started < atasker.wait_completed(a), "b waited for a")
  s:set_thread_pool{pool_size = 10, reserve_normal = 5, reserve_high = 5}
end)

test("unknown options and bad values are errors at the call", function()
  local ok, err = pcall(function() s:set_thread_pool{pool_sise = 3} end)
  assert(not ok and err:find("unknown option 'pool_sise'"), err)
  ok, err = pcall(function() s.timeout_warning = -1 end)
  assert(not ok and err:find("timeout_warning must be a number of seconds > 0"), err)
  ok, err = pcall(atasker.background_task, function() end, {delay = -1})
  assert(not ok and err:find("delay must be"), err)
  ok, err = pcall(atasker.background_task, "not a function")
  assert(not ok and err:find("bad argument #1 to '[%w%.]*background_task'"), err)
  ok, err = pcall(atasker.wait_completed, 42)
  assert(not ok and err:find("bad argument #1 to '[%w%.]*wait_completed'"), err)
  ok, err = pcall(atasker.background_task, function() end, {timeout = 1})
  assert(not ok and err:find("timeout= is for mp tasks"), err)
  ok, err = pcall(atasker.background_task, function() end, {mp = true, run_timeout = 1})
  assert(not ok and err:find("an mp task takes timeout="), err)
  ok, err = pcall(s.set_mp_pool, s, {pool_size = 0})
  assert(not ok and err:find("pool_size must be at least 1"), err)
  ok, err = pcall(s.set_mp_pool, s, {size = 2})
  assert(not ok and err:find("unknown option 'size'"), err)
  ok, err = pcall(atasker.background_worker, {fn = function() end, process_result = print})
  assert(not ok and err:find("process_result is for mp=true workers"), err)
end)

test("poll_delay is accepted", function()
  s.poll_delay = 0.01
  assert(s.poll_delay == 0.01)
end)

test("log and set_debug", function()
  atasker.log.info("an info line from Lua", 42)
  atasker.set_debug(true)
  atasker.log.debug("a debug line")
  atasker.set_debug(false)
  atasker.log.debug("a hidden debug line")
  atasker.log.warning("a warning")
end)

test("atasker.shared gives one handle per name in a state, and one table for all states", function()
  assert(atasker.shared("same") == atasker.shared("same"))
  assert(atasker.shared("same") ~= atasker.shared("other"))
  atasker.shared("same"):set("k", 1)
  local t = atasker.background_task(function()
    local a, b = atasker.shared("same"), atasker.shared("same")
    return a == b and a:get("k")
  end)()
  assert(atasker.wait_completed(t) == 1)
end)

test("tostring of handles", function()
  local t = atasker.background_task(function() end, {name = "named"})()
  atasker.wait_completed(t)
  assert(tostring(t):find("atasker.Task " .. t.id .. " %(completed%)"), tostring(t))
  assert(tostring(atasker.shared("x")) == "atasker.Shared 'x'")
  assert(tostring(s) == "atasker.Supervisor")
  assert(t.name == "named")
end)

test("run_timeout with cancel_on_timeout cancels a runaway task", function()
  local t = atasker.background_task(function()
    local n = 0
    while true do n = n + 1 end
  end, {run_timeout = 0.2, cancel_on_timeout = true, name = "spinner"})()
  local ok, err = pcall(atasker.wait_completed, t, 10)
  assert(not ok and err:find("task %d+ %(spinner%) cancelled at .*supervisor.lua:%d+"), err)
  assert(t.status == "failed")
  ok, err = pcall(atasker.background_task, function() end, {cancel_on_timeout = true})
  assert(not ok and err:find("needs run_timeout"), err)
end)

h.done()

-- a task stops the supervisor: the program ends without waiting for the
-- delayed task below
atasker.background_task(function() print("never runs") end, {delay = 30})()
atasker.background_task(function()
  atasker.supervisor:stop{wait = 1, cancel_tasks = true}
end)()
