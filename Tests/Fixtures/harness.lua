-- A tiny test harness for the Lua fixtures: test(name, fn) runs fn under
-- pcall; done() prints the closing line and sets the exit status.
local M = {passed = 0, failed = 0}

function M.test(name, fn)
  local ok, err = pcall(fn)
  if ok then
    M.passed = M.passed + 1
  else
    M.failed = M.failed + 1
    print("FAIL " .. name .. ": " .. tostring(err))
  end
end

-- Waits until fn() is true, checking every 5 ms, for at most 10 s (a bound that holds on a busy machine), then
-- raises naming what it waited for. Tests wait for what they check, never for a time.
function M.eventually(fn, what)
  local deadline = atasker.monotonic() + 10
  while not fn() do
    if atasker.monotonic() > deadline then error("timed out waiting for " .. what, 2) end
    atasker.sleep(0.005)
  end
end

function M.done()
  print(string.format("lua: %d passed, %d failed", M.passed, M.failed))
  if M.failed > 0 then os.exit(1) end
end

return M
