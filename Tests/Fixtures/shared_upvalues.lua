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
