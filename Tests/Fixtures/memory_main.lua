-- The main state under --memory-limit (MemoryCLITests): an allocation without bound fails, caught or not, and the
-- limit holds.
local s = atasker.supervisor
local function main()
  for _, st in ipairs(s:info().states) do
    if st.name == "main" then return st end
  end
end
print("limit " .. tostring(main().limit))
if arg[1] == "limit-only" then return end
local ok, err = pcall(function()
  local t = {}
  for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
end)
print("caught " .. tostring(ok) .. " " .. tostring(err))
collectgarbage()
local m = main()
print("peak within the limit " .. tostring(m.peak <= m.limit))
print("task " .. atasker.wait_completed(atasker.background_task(function() return 42 end)()))
if arg[1] == "uncaught" then
  local t = {}
  for i = 1, math.huge do t[i] = ("x"):rep(64) .. i end
end
