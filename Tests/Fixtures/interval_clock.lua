-- An interval worker at 100 ms for arg[1] seconds (monotonic); prints what its schedule did and how far the wall
-- clock (os.time) moved meanwhile. Used by the clock-step test with a preloaded wall-clock step.
local duration = tonumber(arg[1]) or 3
local w = atasker.background_worker{name = "tick", interval = 0.1, fn = function()
  local now, wall = atasker.monotonic(), os.time()
  if LAST and now - LAST > (MAXGAP or 0) then MAXGAP = now - LAST end
  LAST = now
  WMIN, WMAX = math.min(WMIN or wall, wall), math.max(WMAX or wall, wall)
  local s = atasker.shared("clock")
  s:set("maxgap", MAXGAP or 0)
  s:set("wallspan", WMAX - WMIN)
end}
w:start()
atasker.sleep(duration)
w:stop{wait = true}
local s = atasker.shared("clock")
print(string.format("runs=%d skipped=%d maxgap=%.3f wallspan=%d", w.executions, w.skipped, s:get("maxgap"),
  s:get("wallspan")))
