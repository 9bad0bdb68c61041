-- atasker's helpers: ports of test_locker, test_function_collection and
-- test_task_collection (tests/test.py in alttch/atasker), and their rules.
local atasker = require "atasker"
local h = require "harness"
local test = h.test

test("locker", function()
  local with_lock = atasker.Locker{mod = "test (broken is fine!)",
                                   relative = false, timeout = 0.5}
  local test_locker = with_lock:wrap(function()
    atasker.shared("locker"):set("failed", true)
  end)
  with_lock.critical = function()
    atasker.shared("locker"):set("success", true)
  end
  assert(with_lock:acquire())
  test_locker()
  assert(atasker.shared("locker"):get("success") == true)
  assert(atasker.shared("locker"):get("failed") == nil)
  with_lock:release()
end)

test("locker: reentrant by default, with() raises on timeout, release always", function()
  local r = atasker.Locker{timeout = 0.1}
  assert(r.relative == true and r.mod == "main")
  assert(r:with(function() return r:with(function() return "nested" end) end) == "nested")
  local ok, err = pcall(r.with, r, function() error("inner") end)
  assert(not ok and tostring(err):find("inner"))
  assert(r:acquire(0))  -- released after the error
  r:release()
  local plain = atasker.Locker{relative = false, timeout = 0.05}
  plain:acquire()
  ok, err = pcall(function() return plain:with(function() end) end)
  assert(not ok and err:find("locking broken"), err)
  plain:release()
  ok, err = pcall(plain.release, plain)
  assert(not ok and err:find("does not hold"), err)
end)

test("locker: one lock across states", function()
  local lock = atasker.Locker{timeout = 5}
  local add = atasker.background_task(function(l, n)
    for _ = 1, n do
      l:with(function()
        local s = atasker.shared("lockcount")
        local v = (s:get("v") or 0) + 1  -- not atomic: the lock makes it so
        s:set("v", v)
      end)
    end
  end)
  local ts = {}
  for i = 1, 4 do ts[i] = add(lock, 200) end
  atasker.wait_completed(ts)
  assert(atasker.shared("lockcount"):get("v") == 800)
end)

test("function_collection", function()
  local f = atasker.FunctionCollection()
  local total = 0
  f(function() total = total + 1 end)
  f(function() total = total + 2 end)
  f:run()
  assert(total == 3)
end)

test("task_collection", function()
  local f = atasker.TaskCollection()
  f(function() atasker.shared("tc"):incr("n", 1) end)
  f(function() atasker.shared("tc"):incr("n", 2) end)
  f:run()
  assert(atasker.shared("tc"):get("n") == 3)
end)

test("collections: priorities, keys, all_ok, include_exceptions, on_error", function()
  local order = {}
  local c = atasker.FunctionCollection{include_exceptions = true,
    on_error = function(kw) order[#order + 1] = "on_error " .. kw.tag end,
    on_error_kwargs = {tag = "T"}}
  c:append(function() order[#order + 1] = "low"; return "l" end,
           {priority = atasker.TASK_LOW, name = "low"})
  c:append(function() order[#order + 1] = "high"; return "h" end,
           {priority = atasker.TASK_HIGH, name = "high"})
  local bad = function() error("broken") end
  c(bad)
  local r, all_ok = c:execute()
  assert(all_ok == false)
  assert(order[1] == "high" and order[2] == "on_error T" and order[3] == "low",
         table.concat(order, ","))
  assert(r.high == "h" and r.low == "l")
  local key = next({}) or "helpers.lua"
  for k, v in pairs(r) do
    if k ~= "high" and k ~= "low" then key = k end
  end
  assert(key:find("helpers.lua:%d+"), key)
  assert(r[key].error:find("broken") and r[key].traceback:find("stack traceback"))
  assert(c:remove(bad) and select(2, c:execute()) == true)
end)

test("a raising task never hangs the task collection", function()
  local c = atasker.TaskCollection()
  c:append(function() error("task fails") end, {name = "bad"})
  c:append(function() return atasker.is_main end, {name = "good"})
  local r, all_ok = c:execute()
  assert(all_ok == false and r.good == false and r.bad == nil)
end)

h.done()
