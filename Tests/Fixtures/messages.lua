-- Errors that name the place and speak Lua (issue 12, defects 9 and 13). One line per case: "<case>\t<text>".
local atasker = require "atasker"
local h = dofile("Tests/Fixtures/harness.lua")
local function show(case, ok, msg)
  print(case, ok and "accepted" or (tostring(msg):gsub("\n.*", "")))
end

-- a cyclic table into a shared table
local g = atasker.shared("msgs")
local c = {} c.self = c
show("shared cycle", pcall(g.set, g, "k", c))
-- atasker.g's methods without their key, with '.' instead of ':', with NaN
show("g clear", pcall(atasker.g.clear, atasker.g))
show("g dot", pcall(atasker.g.get, "k"))
show("g nan", pcall(atasker.g.set, atasker.g, 0/0, 1))
-- an uncopyable o= names the option
show("worker o", pcall(atasker.background_worker, {name = "mo", fn = function() end, o = {f = io.stdout}}))
-- a NUL byte in an error message is kept: in t.error (as \0), in kw.error of on_error (the string itself)
local t = atasker.background_task(function() error("a\0b") end)()
pcall(atasker.wait_completed, t)
show("task nul", false, t.error)
local w = atasker.background_worker{name = "mnul", e = true, fn = function() error("x\0y") end,
  on_error = function(kw) g:set("nul", kw.error) end}
w:start()
w:trigger()
h.eventually(function() return g:get("nul") end)
show("on_error nul", false, (g:get("nul"):gsub("%z", "<NUL>")))
w:stop()
-- an async worker whose on_error raises: both errors are logged (stderr), and the host goes on
local aw = atasker.background_worker{name = "maw", e = true, async = true, fn = function() error("first") end,
  on_error = function() g:set("raised", true); error("second") end}
aw:start()
aw:trigger()
h.eventually(function() return aw.errors >= 1 end)
show("async on_error raised", true)
aw:stop()
-- out of memory (the test runs this script with a small address space): on_error gets the error with a place
if os.getenv("ATASKER_TEST_OOM") then
  for _, async in ipairs{false, true} do
    local key = async and "async" or "thread"
    local ow = atasker.background_worker{name = "moom-" .. key, e = true, async = async,
      fn = function() local s = string.rep("x", 2^31 - 1); return #s end,
      on_error = function(kw) g:set("oom-" .. key, kw.error) end}
    ow:start()
    ow:trigger()
    h.eventually(function() return g:get("oom-" .. key) end)
    show("oom " .. key, false, g:get("oom-" .. key))
    ow:stop()
  end
end
