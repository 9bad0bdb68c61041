-- Run by AllocationSweepTests with allocation k failing: a script that allocates in many ways and prints nothing.
local parts = {}
for i = 0, #arg do parts[#parts + 1] = tostring(arg[i]) end
local joined = table.concat(parts, ",")
local counter = setmetatable({n = 0}, {__call = function(self) self.n = self.n + 1 return self.n end})
for _ = 1, 10 do counter() end
RESULT = {joined = joined:upper(), n = counter.n, fmt = string.format("%d-%s", counter.n, joined)}
return RESULT
