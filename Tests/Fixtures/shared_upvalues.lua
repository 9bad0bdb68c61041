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
