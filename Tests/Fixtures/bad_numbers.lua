-- Feeds each bad number to every public function that takes a number, and each misspelt option to every
-- function that takes options. Each must be a Lua error that names the function and the argument or option:
-- never a crash of the host, never accepted silently. Prints one line per unexpected outcome, then DONE.
local s = atasker.supervisor
local function f() end

local NAN, INF = 0 / 0, math.huge
-- Refused wherever a number of seconds, a size, a count or a priority is expected.
local bad = {
  {"nan", NAN}, {"inf", INF}, {"-inf", -INF}, {"2^63", 2 ^ 63}, {"mininteger", math.mininteger},
  {"1e300", 1e300}, {"-1", -1},
}
-- Refused where an interval, a count or a priority is expected; a fine delay or timeout elsewhere.
local tiny = {"1e-300", 1e-300}

local checked, problems = 0, 0

local function expect_refused(label, names, call, ...)
  checked = checked + 1
  local ok, err = pcall(call, ...)
  if ok then
    problems = problems + 1
    print("ACCEPTED " .. label)
    return
  end
  err = tostring(err)
  for _, name in ipairs(names) do
    if not err:find(name, 1, true) then
      problems = problems + 1
      print("BADMESSAGE " .. label .. ": '" .. name .. "' not in: " .. err)
      return
    end
  end
end

local function each_bad(label, names, with_tiny, call)
  for _, v in ipairs(bad) do
    expect_refused(label .. " = " .. v[1], names, call, v[2])
  end
  if with_tiny then expect_refused(label .. " = " .. tiny[1], names, call, tiny[2]) end
end

local done = atasker.background_task(function() return 1 end)()
atasker.wait_completed(done)

-- atasker.sleep, wait_completed
each_bad("sleep", {"sleep", "argument #1"}, false, function(v) atasker.sleep(v) end)
each_bad("wait_completed", {"wait_completed", "timeout"}, false, function(v) atasker.wait_completed(done, v) end)

-- Locker
each_bad("Locker{timeout}", {"Locker", "timeout"}, false, function(v) atasker.Locker{timeout = v} end)
local lock = atasker.Locker{timeout = 1}
each_bad("lock:acquire", {"lock:acquire", "timeout"}, false, function(v) lock:acquire(v) end)
expect_refused("lock:acquire('x')", {"lock:acquire", "timeout"}, function() lock:acquire("x") end)

-- workers
for _, option in ipairs{"interval", "i", "delay", "delay_before", "run_timeout", "poll_delay"} do
  local shown = option == "i" and "interval" or option
  each_bad("background_worker{" .. option .. "}", {"background_worker", shown}, option == "interval" or option == "i",
    function(v) atasker.background_worker{fn = f, [option] = v} end)
end
each_bad("background_worker{priority}", {"background_worker", "priority"}, true,
  function(v) atasker.background_worker{fn = f, priority = v} end)
each_bad("background_worker{max_queue}", {"background_worker", "max_queue"}, true,
  function(v) atasker.background_worker{fn = f, q = true, max_queue = v} end)
each_bad("background_worker{mp, timeout}", {"background_worker", "timeout"}, false,
  function(v) atasker.background_worker{fn = f, mp = true, timeout = v} end)

local w = atasker.background_worker{fn = f, interval = 10, name = "bad-numbers"}
for _, option in ipairs{"_interval", "_delay", "_delay_before", "_priority"} do
  each_bad("w:start{" .. option .. "}", {"start", option}, option == "_interval" or option == "_priority",
    function(v) w:start{[option] = v} end)
end
assert(not w:is_started(), "a refused start started the worker")
each_bad("w:stop{wait}", {"stop", "wait"}, false, function(v) w:stop{wait = v} end)

-- background_task
for _, option in ipairs{"priority", "delay", "run_timeout"} do
  each_bad("background_task{" .. option .. "}", {"background_task", option}, option == "priority",
    function(v) atasker.background_task(f, {[option] = v}) end)
end
each_bad("background_task{mp, timeout}", {"background_task", "timeout"}, false,
  function(v) atasker.background_task(f, {mp = true, timeout = v}) end)

-- the supervisor
for _, option in ipairs{"pool_size", "reserve_normal", "reserve_high", "min_size", "max_size"} do
  each_bad("set_thread_pool{" .. option .. "}", {"set_thread_pool", option}, true,
    function(v) s:set_thread_pool{[option] = v} end)
end
expect_refused("set_thread_pool{min_size = 1e6}", {"set_thread_pool", "min_size"},
  function() s:set_thread_pool{min_size = 1e6, max_size = 1e6} end)
expect_refused("set_thread_pool{min_size > max_size}", {"set_thread_pool", "min_size", "max_size"},
  function() s:set_thread_pool{min_size = 8, max_size = 4} end)
for _, option in ipairs{"pool_size", "reserve_normal", "reserve_high"} do
  each_bad("set_mp_pool{" .. option .. "}", {"set_mp_pool", option}, true,
    function(v) s:set_mp_pool{[option] = v} end)
end
each_bad("set_mp_pool{stop_timeout}", {"set_mp_pool", "stop_timeout"}, false,
  function(v) s:set_mp_pool{stop_timeout = v} end)
each_bad("s:stop{wait}", {"stop", "wait"}, false, function(v) s:stop{wait = v} end)
for _, field in ipairs{"timeout_warning", "timeout_critical", "poll_delay", "aloop_block_warning",
    "aloop_block_cancel"} do
  each_bad("s." .. field, {field}, false, function(v) s[field] = v end)
end

-- aloops and async jobs
s:create_aloop("bad-numbers-loop", {start = false})
each_bad("stop_aloop{wait}", {"stop", "wait"}, false,
  function(v) s:stop_aloop("bad-numbers-loop", {wait = v}) end)
each_bad("create_async_job{interval}", {"create_async_job", "interval"}, true,
  function(v) s:create_async_job{target = f, interval = v} end)
each_bad("create_async_job{number}", {"create_async_job", "number"}, true,
  function(v) s:create_async_job{target = f, interval = 1, number = v} end)

-- shared tables
local shared = atasker.shared("bad-numbers")
for _, v in ipairs{{"nan", NAN}, {"inf", INF}, {"-inf", -INF}} do
  expect_refused("shared:incr(k, " .. v[1] .. ")", {"incr", "increment"}, function() shared:incr("k", v[2]) end)
end
shared:set("max", math.maxinteger)
expect_refused("shared:incr at maxinteger", {"incr", "overflow"}, function() shared:incr("max", 1) end)
assert(shared:get("max") == math.maxinteger, "a refused incr changed the value")
shared:set("min", math.mininteger)
expect_refused("shared:incr at mininteger", {"incr", "overflow"}, function() shared:incr("min", -1) end)

-- misspelt and ill-typed options
expect_refused("background_task{priorty}", {"background_task", "unknown option 'priorty'"},
  function() atasker.background_task(f, {priorty = 1}) end)
expect_refused("background_task{tt}", {"background_task", "unknown option 'tt'"},
  function() atasker.background_task(f, {tt = 1}) end)
expect_refused("background_task{mp = 'yes'}", {"background_task", "mp"},
  function() atasker.background_task(f, {mp = "yes"}) end)
expect_refused("background_task{name = {}}", {"background_task", "name"},
  function() atasker.background_task(f, {name = {}}) end)
expect_refused("background_worker{mp = 'yes'}", {"background_worker", "mp"},
  function() atasker.background_worker{fn = f, mp = "yes"} end)
expect_refused("background_worker{name = {}}", {"background_worker", "name"},
  function() atasker.background_worker{fn = f, name = {}} end)
expect_refused("background_worker{q, e}", {"background_worker", "q=", "e="},
  function() atasker.background_worker{fn = f, q = true, e = true} end)
expect_refused("background_worker{i, interval}", {"background_worker", "i="},
  function() atasker.background_worker{fn = f, i = 1, interval = 1} end)
expect_refused("w:stop{wiat}", {"stop", "unknown option 'wiat'"}, function() w:stop{wiat = 1} end)
expect_refused("w:start{_lop}", {"start", "unknown option '_lop'"}, function() w:start{_lop = 1} end)
expect_refused("w:start(1, 2)", {"start", "positional"}, function() w:start(1, 2) end)
expect_refused("w:trigger{forse}", {"trigger", "unknown option 'forse'"}, function() w:trigger{forse = true} end)
expect_refused("s:stop{wiat}", {"stop", "unknown option 'wiat'"}, function() s:stop{wiat = 1} end)
expect_refused("create_aloop{strat}", {"create_aloop", "unknown option 'strat'"},
  function() s:create_aloop("bad-options-loop", {strat = false}) end)
expect_refused("Locker{timout}", {"Locker", "unknown option 'timout'"}, function() atasker.Locker{timout = 1} end)
expect_refused("set_mp_pool{size}", {"set_mp_pool", "unknown option 'size'"}, function() s:set_mp_pool{size = 1} end)
expect_refused("FunctionCollection{on_error_return}", {"FunctionCollection", "unknown option"},
  function() atasker.FunctionCollection{on_error_return = 1} end)
local fc = atasker.FunctionCollection{}
expect_refused("fc:append(fn, 5)", {"append", "5"}, function() fc:append(f, 5) end)

-- what stays allowed
w:start{a = 1, [1] = "x"}
w:stop()
atasker.background_worker{fn = f, i = 10, name = "i-alias"}
assert(atasker.background_worker{name = "options-first", interval = 10}(f).name == "options-first")

print("DONE " .. checked .. " " .. problems)
