-- An mp call over the protocol's frame limit (256 MiB) is refused at the call, naming the limit, whether the
-- bytes are an argument or an upvalue; the pool goes on.
local atasker = require "atasker"
local big = string.rep("x", 257 * 1024 * 1024)
local f = atasker.background_task(function(s) return #s end, {mp = true})
local ok, err = pcall(f, big)
print("argument", ok, err)
local g = atasker.background_task(function() return #big end, {mp = true})
ok, err = pcall(g)
print("upvalue", ok, err)
big = nil
print("small", atasker.wait_completed(f("abc")))
