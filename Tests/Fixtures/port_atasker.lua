-- Ports of the tests of atasker (tests/test.py in alttch/atasker) that the
-- foundation covers: test_background_task_annotated,
-- test_background_task_thread, test_supervisor, test_g, and wait_completed.
-- Tasks run in states of their own, so results come back through
-- atasker.shared or as task results instead of a shared Python namespace.
local atasker = require "atasker"
local h = require "harness"
local test = h.test
local result = atasker.shared("result")

atasker.supervisor:set_thread_pool{pool_size = 20, reserve_normal = 5,
                                   reserve_high = 5}

test("background_task_annotated", function()
  local t = atasker.background_task(function(a, kw)
    atasker.shared("result"):set("annotated", a + kw.x)
  end)
  atasker.wait_completed(t(1, {x = 2}))
  assert(result:get("annotated") == 3, "got " .. tostring(result:get("annotated")))
end)

test("background_task_thread", function()
  local function t(a, kw)
    atasker.shared("result"):set("thread", a + kw.x)
    return a + kw.x
  end
  local task = atasker.background_task(t)(2, {x = 3})
  assert(atasker.wait_completed(task) == 5)
  assert(result:get("thread") == 5)
  assert(task.status == "completed", task.status)
end)

test("supervisor", function()
  local info = atasker.supervisor:info()
  assert(info.thread_tasks_count == 0, "thread_tasks_count " .. info.thread_tasks_count)
  assert(info.mp_tasks_count == 0)
  assert(info.thread_pool_size == 20)
  assert(info.thread_reserve_normal == 5)
  assert(info.thread_reserve_high == 5)
end)

test("g", function()
  local g = atasker.g
  g:set("test", 1)
  g:clear("test")
  g:set("test_is", g:has("test"))
  assert(g:get("test_is") == false)
  g:set("test", 999)
  local t = atasker.background_task(function()
    local v = atasker.g:get("test", 222)
    atasker.g:set("ttt", 333)
    return v
  end)()
  assert(atasker.wait_completed(t) == 222)
  assert(g:get("ttt") == nil)
end)

test("wait_completed list keeps order", function()
  local f = atasker.background_task(function(n, d)
    atasker.sleep(d)
    return n * 10
  end)
  local r = atasker.wait_completed({f(1, 0.06), f(2, 0.01), f(3, 0.03)})
  assert(#r == 3 and r[1] == 10 and r[2] == 20 and r[3] == 30)
end)

test("wait_completed timeout", function()
  local t = atasker.background_task(function() atasker.sleep(0.5) end)()
  local ok, err = pcall(atasker.wait_completed, t, 0.05)
  assert(not ok and tostring(err):find("timed out"), tostring(err))
  atasker.wait_completed(t)
end)

test("wait_completed raises the task's error", function()
  local bad = atasker.background_task(function() error("bad thing") end)
  local good = atasker.background_task(function() return 1 end)
  local ok, err = pcall(atasker.wait_completed, {good(), bad()})
  assert(not ok, "no error")
  assert(tostring(err):find("port_atasker.lua:%d+: bad thing"), tostring(err))
end)

test("task fields", function()
  local t = atasker.background_task(function(x) return {x, {y = x}} end,
                                    {priority = atasker.TASK_HIGH})(7)
  local r = atasker.wait_completed(t)
  assert(r[1] == 7 and r[2].y == 7)
  assert(t.result[2].y == 7)
  assert(t.status == "completed")
  assert(t.error == nil)
  assert(t.priority == atasker.TASK_HIGH)
  assert(math.type(t.id) == "integer")
  assert(t.time_queued <= t.time_started and t.time_started <= t.time_completed)
  assert(t.time_completed <= atasker.monotonic())
  assert(atasker.supervisor:get_task(t.id) == nil)
end)

test("failed task keeps its error with a traceback", function()
  local t = atasker.background_task(function() local x = nil; return x.y end)()
  pcall(atasker.wait_completed, t)
  assert(t.status == "failed")
  assert(t.error:find("port_atasker.lua:%d+: attempt to index"), t.error)
  assert(t.error:find("stack traceback"), t.error)
end)

test("globals a task writes are gone after it", function()
  local f = atasker.background_task(function(set)
    local seen = LEAKED
    if set then LEAKED = "yes" end
    return seen
  end)
  atasker.wait_completed(f(true))
  for _ = 1, 20 do assert(atasker.wait_completed(f(false)) == nil) end
end)

test("main globals are not visible in tasks", function()
  MAIN_ONLY = 1
  local t = atasker.background_task(function() return MAIN_ONLY end)()
  assert(atasker.wait_completed(t) == nil)
end)

test("upvalues are copied, modules travel by name", function()
  local base = {n = 40, add = function(self, k) return self.n + k end}
  local t = atasker.background_task(function(k)
    return base:add(k), table.concat({"a", "b"}, ","), string.format("%d", 1)
  end)(2)
  assert(atasker.wait_completed(t) == 42)
end)

test("a value that cannot be copied is refused at the call", function()
  local fh = io.stdout
  local ok, err = pcall(atasker.background_task, function() return fh end)
  assert(not ok)
  assert(tostring(err):find("upvalue 'fh'"), tostring(err))
  local f = atasker.background_task(function(x) return x end)
  ok, err = pcall(f, {1, {conn = io.stderr}})
  assert(not ok)
  assert(tostring(err):find("args%[1%]%[2%]%.conn") or tostring(err):find("conn"), tostring(err))
end)

test("shared tables", function()
  local s = atasker.shared("t1")
  s:set("a", 1)
  assert(s:get("a") == 1)
  assert(s:incr("a") == 2)
  assert(s:incr("a", 3) == 5)
  assert(s:cas("a", 5, "x") == true)
  assert(s:cas("a", 5, "y") == false)
  assert(s:get("a") == "x")
  s:set("b", {1, 2, {z = true}})
  assert(s:get("b")[3].z == true)
  local keys = s:keys()
  table.sort(keys)
  assert(#keys == 2 and keys[1] == "a" and keys[2] == "b")
  local add = atasker.background_task(function(n)
    local c = atasker.shared("t1")
    for _ = 1, n do c:incr("count") end
  end)
  local ts = {}
  for i = 1, 8 do ts[i] = add(500) end
  atasker.wait_completed(ts)
  assert(s:get("count") == 4000)
end)

test("delay", function()
  local t0 = atasker.monotonic()
  local t = atasker.background_task(function() return atasker.monotonic() end,
                                    {delay = 0.1})()
  assert(t.status == "delayed", t.status)
  local started = atasker.wait_completed(t)
  assert(started - t0 >= 0.09, started - t0)
end)

test("is_main", function()
  assert(atasker.is_main == true)
  local t = atasker.background_task(function() return atasker.is_main end)()
  assert(atasker.wait_completed(t) == false)
end)

test("atasker fields first read after a copy still travel by name", function()
  -- atasker makes 'log', 'g', 'supervisor' and the constructors on first
  -- read; a task function that captures them after the state's name cache
  -- was built must still find them by name
  local log, g, sup = atasker.log, atasker.g, atasker.supervisor
  local t = atasker.background_task(function()
    log.debug("captured log")
    g:set("k", 2)
    return g:get("k") + sup:info().thread_pool_size
  end)()
  assert(atasker.wait_completed(t) == 22)
end)

h.done()
