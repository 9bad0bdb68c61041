-- Writes a precompiled chunk to arg[1], for the test that atasker-lua
-- refuses to run bytecode files.
local f = assert(io.open(arg[1], "wb"))
f:write(string.dump(function() print("bytecode ran") end))
f:close()
