-- Closures that share upvalues keep sharing them in the copy, whichever the codec meets first: a task that calls
-- a local helper, both using x (the helper first, or x first), into a pool thread, a child process and an aloop.
-- Prints one line per case: "<case> <values>".
local atasker = require "atasker"
local x = {n = 1}
local function helper() x.n = x.n + 1; return x.n end
local function helper_first() local a = helper(); x.n = x.n + 10; return a .. " " .. x.n .. " " .. helper() end
local function x_first() x.n = x.n + 10; local a = helper(); return x.n .. " " .. a end
-- three functions sharing two upvalues, and a table of functions sharing one
local p, q = {v = 0}, {v = 0}
local function f1() p.v = p.v + 1; q.v = q.v + 1 end
local function f2() p.v = p.v + 10 end
local fns = {inc = function() q.v = q.v + 100 end, get = function() return q.v end}
local function mixed() f1(); f2(); fns.inc(); return p.v .. " " .. q.v .. " " .. fns.get() end

local aloop = atasker.supervisor:create_aloop("A")
for _, case in ipairs{{"helper_first", helper_first}, {"x_first", x_first}, {"mixed", mixed}} do
  local name, fn = case[1], case[2]
  print(name .. " task", atasker.wait_completed(atasker.background_task(fn)()))
  print(name .. " mp", atasker.wait_completed(atasker.background_task(fn, {mp = true})()))
  print(name .. " aloop", aloop:run(fn))
end

-- a worker's fn and on_error that share locals (a plain table, a counter, a shared-table handle), thread and async
local counter = {n = 0}
local plain = 0
local handle = atasker.shared("upv")
for _, async in ipairs{false, true} do
  local key = async and "async" or "thread"
  local w = atasker.background_worker{name = "upv-" .. key, e = true, async = async,
    fn = function() counter.n = counter.n + 1; plain = plain + 1; error("boom") end,
    on_error = function(kw) counter.n = counter.n + 10; plain = plain + 100; handle:set(key, counter.n .. " " .. plain) end}
  w:start()
  w:trigger()
  while not handle:get(key) do atasker.sleep(0.005) end
  print("worker fn+on_error " .. key, handle:get(key))
  w:stop()
end

-- a task's function and its callback that share locals: one cell in the pool thread's state (the callback runs
-- there right after the task, on success and on failure); an mp or aloop task runs elsewhere than its callback,
-- so each gets a copy of its own, and neither is refused
local seen = atasker.shared("upv-callbacks")
local function await(key)
  while not seen:get(key) do atasker.sleep(0.005) end
  return seen:get(key)
end
do
  local x, count = {n = 0}, 0
  local t = atasker.background_task(function() x.n = x.n + 1; count = count + 1; return x.n end,
    {callback = function(r) x.n = x.n + 100; count = count + 10; seen:set("task", r .. " " .. x.n .. " " .. count) end})()
  atasker.wait_completed(t)
  print("task fn+callback", await("task"))
  local y = {v = 1}
  local t2 = atasker.background_task(function() y.v = 5; error("planned") end,
    {callback = function(r, err) seen:set("failed", tostring(r) .. " " .. y.v .. " " .. tostring(err ~= nil)) end})()
  pcall(atasker.wait_completed, t2)
  print("failed task fn+callback", await("failed"))
  local z = {v = 1}
  local t3 = atasker.background_task(function() z.v = z.v + 1; return z.v end,
    {mp = true, callback = function(r) seen:set("mp", r .. " " .. z.v) end})()
  atasker.wait_completed(t3)
  print("mp task fn+callback", await("mp"))
  local q = {v = 0}
  local t4 = atasker.background_task(function() q.v = q.v + 1; return q.v end,
    {loop = "A", callback = function(r) seen:set("loop", r .. " " .. q.v) end})()
  atasker.wait_completed(t4)
  print("loop task fn+callback", await("loop"))
end

-- an mp worker's fn (in a child) and process_result (in the parent) that share a local: a copy each
do
  local k = {v = 0}
  local w = atasker.background_worker{name = "upv-mp", e = true, mp = true,
    fn = function() k.v = k.v + 1; return k.v end,
    process_result = function(r) k.v = k.v + 100; seen:set("mpw", r .. " " .. k.v); return false end}
  w:start()
  w:trigger()
  print("mp worker fn+process_result", await("mpw"))
  w:stop()
  -- one table as o and on_error_kwargs, and a table of functions sharing a local as o
  local shared = {v = 7}
  local o = {get = function() return shared.v end, set = function(v) shared.v = v end}
  local w2 = atasker.background_worker{name = "upv-o", e = true, o = o, on_error_kwargs = o,
    fn = function(kw) kw.o.set(kw.o.get() + 1); seen:set("o", kw.o.get()) end}
  w2:start()
  w2:trigger()
  print("worker o sharing a local", await("o"))
  w2:stop()
end

-- a function and its arguments that share a table: aloop:run(f, t, t) (outside async code and inside it), and an
-- async job whose target and args= hold the same table
do
  local t = {1}
  print("aloop run fn+args", aloop:run(function(a, b) return a == b and a[1] == 1 end, t, t))
  print("aloop run fn+args async", aloop:run(function()
    local u = {2}
    return aloop:run(function(a) return a == u end, u)
  end))
  local conn = {n = 0}
  atasker.supervisor:create_async_job{target = function(c) c.n = c.n + 1; seen:set("job", tostring(c == conn)) end,
    interval = 0.01, args = {conn}, number = 1, scheduler = atasker.supervisor:create_async_job_scheduler("upv", {aloop = "A"})}
  print("async job target+args", await("job"))
end
