-- A long-running service for systemd (see atasker-lua.service beside it): an interval worker that feeds a queue
-- worker, until systemd stops it (SIGTERM: a graceful stop). Under `Type=notify` atasker-lua sends READY=1 once
-- this top level has run, WATCHDOG=1 while its supervisor answers, and STOPPING=1 at the stop.
-- Run by hand: scripts/run Examples/systemd/service.lua   (Ctrl-C stops it; `kill -USR1 PID` shows what runs)

local jobs = atasker.background_worker{name = "jobs", q = true, fn = function(n, kw)
  local total = atasker.shared("service"):incr("done")
  if total % 10 == 0 then print("done", total) end
end}

local feeder = atasker.background_worker{name = "feeder", interval = 0.1, fn = function(kw)
  local n = atasker.shared("service"):incr("fed")
  kw.o:put(n)
end, o = jobs}

jobs:start()
feeder:start()
print("service ready")
