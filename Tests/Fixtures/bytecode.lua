-- Every state loads source text only: load, loadfile, dofile and require refuse binary chunks in the main state,
-- a pool state (a task), a worker's state and a child process, unless --allow-bytecode. arg[1] is a folder to
-- write the compiled module into. Prints one line per place: "<place> text" or "<place> bytecode".
local atasker = require "atasker"
local dir = arg[1]

local function probe(dir)
  local dumped = string.dump(function() return 42 end)
  local f = assert(io.open(dir .. "/compiled_mod.lua", "wb"))
  f:write(string.dump(function() return {answer = 42} end))
  f:close()
  package.path = dir .. "/?.lua;" .. package.path
  package.loaded.compiled_mod = nil
  local results = {}
  local fn, err = load(dumped)
  results[#results + 1] = fn and "load:ran" or ("load:" .. (err:find("binary chunks are not loaded") and "refused" or err))
  local ok, e = pcall(load, "return 1", "x", "b")
  results[#results + 1] = ok and "mode_b:ran" or ("mode_b:" .. (e:find("asks for bytecode") and "refused" or e))
  fn = loadfile(dir .. "/compiled_mod.lua")
  results[#results + 1] = fn and "loadfile:ran" or "loadfile:refused"
  ok = pcall(dofile, dir .. "/compiled_mod.lua")
  results[#results + 1] = ok and "dofile:ran" or "dofile:refused"
  ok, e = pcall(require, "compiled_mod")
  results[#results + 1] = ok and "require:ran" or ("require:" .. (tostring(e):find("attempt to load a binary chunk") and "refused" or tostring(e)))
  results[#results + 1] = (load("return 6 * 7")() == 42) and "text:ok" or "text:broken"
  return table.concat(results, " ")
end

print("main", probe(dir))
print("task", atasker.wait_completed(atasker.background_task(probe)(dir)))
print("mp", atasker.wait_completed(atasker.background_task(probe, {mp = true})(dir)))
local w = atasker.background_worker{q = true, fn = function(item) atasker.shared("bc"):set("worker", probe(item)) end}
w:start()
w:put(dir)
w:stop{drain = true}
print("worker", atasker.shared("bc"):get("worker"))
