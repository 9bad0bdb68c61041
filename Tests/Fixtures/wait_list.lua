-- wait_completed of a table of tasks: one list of the results in the tasks' order, whatever the way the table was
-- made (a loop that fills it, keys set out of order), nil results left as holes, tables and strings copied; the
-- same from async code; the errors of a bad list or timeout.
local atasker = require "atasker"
local t = atasker.background_task(function(i)
  if i % 3 == 0 then return nil end
  if i % 5 == 0 then return {n = i, list = {i, i + 1}} end
  return i * 2
end)
local ts = {}
for i = 1, 10 do ts[i] = t(i) end
local r = atasker.wait_completed(ts, 30)
local out = {}
for i = 1, 10 do out[#out + 1] = type(r[i]) == "table" and ("{" .. r[i].n .. "," .. r[i].list[2] .. "}") or tostring(r[i]) end
print("loop: " .. table.concat(out, " "))

local backwards = {}
for i = 3, 1, -1 do backwards[i] = ts[i] end
local b = atasker.wait_completed(backwards)
print("backwards: " .. tostring(b[1]) .. " " .. tostring(b[2]) .. " " .. tostring(b[3]))

local hashed = {[1] = ts[1], [2] = ts[2], x = "not a task"}
print("hashed: " .. #atasker.wait_completed(hashed))
print("empty: " .. #atasker.wait_completed({}))
print("not a task: " .. select(2, pcall(atasker.wait_completed, {ts[1], 5})))
print("another handle: " .. select(2, pcall(atasker.wait_completed, {ts[1], atasker.shared("w")})))
print("a hole: " .. type(atasker.wait_completed({ts[1], nil, ts[2]})))
print("nan timeout: " .. select(2, pcall(atasker.wait_completed, ts, 0 / 0)))
print("same task twice: " .. table.concat(atasker.wait_completed({ts[1], ts[1]}), " "))

local aloop = atasker.supervisor:create_aloop("waits")
local got = aloop:run(function(t)
  local list = {}
  for i = 1, 4 do list[i] = t(i) end
  local rs = atasker.wait_completed(list, 30)
  return tostring(rs[1]) .. " " .. tostring(rs[2]) .. " " .. tostring(rs[3]) .. " " .. tostring(rs[4])
end, t)
print("async: " .. got)
atasker.supervisor:stop_aloop("waits")
