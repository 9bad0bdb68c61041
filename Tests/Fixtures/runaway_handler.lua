-- Runaway code inside xpcall's message handler, and loops that catch the
-- cancel error and go on. arg[1] chooses how it is cancelled:
--   "timeout": run_timeout with cancel_on_timeout, for a worker (which runs
--     again, and then prints) and for a task (whose error is printed);
--   "stop": stop{wait=0.3} of workers that loop in a handler, or catch the
--     cancel with pcall / xpcall / a coroutine and loop on;
--   "signal": a worker and a task loop in a handler; "running" is printed
--     once both do, and the program waits for SIGINT;
--   "stripped" (with --allow-bytecode): stop{wait=0.3} of a worker that
--     loops in a function loaded from bytecode without line information.
local atasker = require "atasker"
local mode = arg[1]
local inside = atasker.shared("inside")

local function handler_loop()
  return xpcall(function() error("x") end, function(m)
    inside:incr("n", 1)
    while true do end
  end)
end

if mode == "timeout" then
  local runs = 0
  atasker.background_worker{name = "handler", run_timeout = 0.2, cancel_on_timeout = true,
    fn = function(kw)
      runs = runs + 1
      if runs == 1 then handler_loop() end
      print("handler run " .. runs)
      return false
    end}:start()
  local t = atasker.background_task(function()
    handler_loop()
    print("task: not reached")
  end, {name = "handler task", run_timeout = 0.2, cancel_on_timeout = true})()
  local ok, err = pcall(atasker.wait_completed, t, 30)
  print("task", ok, t.status, err)
elseif mode == "stop" then
  local kinds = {
    handler = handler_loop,
    -- the handler itself runs a loop that catches every error
    handler_pcall = function()
      xpcall(error, function(m)
        while true do pcall(function() while true do end end) end
      end)
    end,
    pcall = function()
      while true do pcall(function() while true do end end) end
    end,
    xpcall = function()
      while true do xpcall(function() while true do end end, function(m) return m end) end
    end,
    caught = function()
      while true do
        local ok, err = pcall(function() while true do end end)
        if not ok then print("caught: not reached") end
      end
    end,
    recursive = function()
      local function again() while true do pcall(again) end end
      again()
    end,
    coroutine = function()
      while true do coroutine.resume(coroutine.create(function() while true do end end)) end
    end,
  }
  local names = {"handler", "handler_pcall", "pcall", "xpcall", "caught", "recursive", "coroutine"}
  local workers = {}
  for _, name in ipairs(names) do
    workers[#workers + 1] = atasker.background_worker{name = name, fn = kinds[name]}
    workers[#workers]:start()
  end
  atasker.sleep(0.3)
  for _, w in ipairs(workers) do
    w:stop{wait = 0.3}
    print(w.name, w:is_stopped(), w.errors)
  end
elseif mode == "stripped" then
  local code = string.dump(function() while true do end end, true)
  local w = atasker.background_worker{name = "stripped", fn = function(kw)
    load(code, "stripped", "b")()
  end}
  w:start()
  atasker.sleep(0.2)
  w:stop{wait = 0.3}
  print(w.name, w:is_stopped(), w.errors)
elseif mode == "signal" then
  atasker.background_worker{name = "handler", fn = handler_loop}:start()
  atasker.background_task(handler_loop, {name = "handler task"})()
  while (inside:get("n") or 0) < 2 do atasker.sleep(0.01) end
  print("running")
  io.stdout:flush()
end
