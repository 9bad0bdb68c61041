-- The soak (scripts/soak runs it and checks what it prints): WORKERS mixed workers for SECONDS seconds, with one
-- injected fault a second. Usage: atasker-lua Tests/Soak/soak.lua SECONDS WORKERS
-- Kinds: 40% interval (thread), 20% queue and 15% event (each interval worker feeds one of them), 20% async interval, 5% mp
-- interval. Faults, in turn: an executor error, a pool child SIGKILLed, a runaway loop cancelled, a value refused.
-- At 10 s and at the end it prints "sample start" / "sample end" with no fault in flight, for the outside counters
-- (descriptors, threads, children), with the bytes that all Lua states hold (s:info().lua_memory), their number,
-- and the part of the pool threads' states; then "result k=v ...", with its own counters.
local duration = tonumber(arg[1]) or 60
local count = tonumber(arg[2]) or 1000
local s = atasker.supervisor
s:set_mp_pool{pool_size = 2, reserve_normal = 0, reserve_high = 0}
local stats = atasker.shared("soak")
local WARM = 10

-- Lateness of an interval worker's execution against its own schedule (the first run's time + k × interval), in
-- 1 ms buckets, counted after the warm-up.
local function lag(kw, interval)
  local now = atasker.monotonic()
  if not T0 then T0 = now return end
  local k = math.floor((now - T0) / interval + 0.5)
  local late = now - (T0 + k * interval)
  if late < 0 then late = 0 end
  if now - kw.started >= WARM then
    stats:incr("lag" .. math.min(math.floor(late * 1000), 100))
  end
end

-- Before each sample every worker collects its garbage once (at its next execution), so that both samples count
-- what the states hold, not how far each one's collector has got: a state's heap grows by up to a fifth between two
-- cycles, and right after the start every state has just been collected.
local function settle()
  local generation = stats:get("gc")
  if generation ~= GC then
    GC = generation
    collectgarbage()
  end
end

local started = atasker.monotonic()
local kinds = {interval = 0, queue = 0, event = 0, async = 0, mp = 0}
local workers, feeds, sinks = {}, {}, {}
for i = 1, count do
  local r = i % 20
  local interval = 0.5 + (i % 10) / 10  -- 0.5 .. 1.4 s
  local w
  if r < 4 then  -- 20% queue, each fed by the next interval worker
    w = atasker.background_worker{name = "q" .. i, q = true, fn = function(item) stats:incr("items") settle() end}
    kinds.queue = kinds.queue + 1
  elseif r < 7 then  -- 15% event
    w = atasker.background_worker{name = "e" .. i, e = true, fn = function() stats:incr("events") settle() end}
    kinds.event = kinds.event + 1
  elseif r < 11 then  -- 20% async interval
    w = atasker.background_worker{name = "a" .. i, async = true, interval = interval, fn = function(kw)
      lag(kw, interval)
      settle()
      atasker.sleep(0.001)
    end}
    kinds.async = kinds.async + 1
  elseif r == 11 then  -- 5% mp interval
    w = atasker.background_worker{name = "m" .. i, mp = true, interval = 2, fn = function(kw)
      return kw._task_id
    end, process_result = function() stats:incr("mp_results") settle() end}
    kinds.mp = kinds.mp + 1
  else  -- 40% interval, each feeding a queue or event worker made before it
    local target = #sinks > 0 and sinks[i % #sinks + 1] or false
    w = atasker.background_worker{name = "i" .. i, interval = interval, fn = function(kw)
      lag(kw, interval)
      settle()
      local t = kw.target
      if t then
        if t.kind == "queue" then t:put(kw._task_id) else t:trigger() end
      end
    end}
    feeds[i] = target
    kinds.interval = kinds.interval + 1
  end
  workers[#workers + 1] = w
  if r < 7 then sinks[#sinks + 1] = w end
end
for i, w in ipairs(workers) do
  w:start{started = started, target = feeds[i] or false}
end

-- The faults, one a second, none while the outside counters are sampled.
local faulty = atasker.background_worker{name = "faulty", e = true, fn = function()
  error("injected executor error")
end, on_error = function(kw) atasker.shared("soak"):incr("executor_errors") end}
faulty:start()
local faults = atasker.background_worker{name = "faults", interval = 1, fn = function(kw)
  local st = atasker.shared("soak")
  local function ended() atasker.shared("soak"):incr("fault_tasks_ended") end
  KILLER = KILLER or atasker.background_task(function()
    os.execute("kill -KILL $PPID")  -- the shell's parent is the pool child
  end, {mp = true, timeout = 30, callback = ended})
  RUNAWAY = RUNAWAY or atasker.background_task(function()
    while true do end
  end, {run_timeout = 0.2, cancel_on_timeout = true, callback = ended})
  if st:get("quiet") then return end
  local n = st:incr("faults")
  local which = n % 4
  if which == 0 then
    kw.faulty:trigger()
  elseif which == 1 then
    st:incr("fault_tasks")
    KILLER()
  elseif which == 2 then
    st:incr("fault_tasks")
    RUNAWAY()
  else
    local ok = pcall(kw.victim.put, kw.victim, coroutine.create(print))
    if not ok then st:incr("refused") end
  end
end}
faults:start{faulty = faulty, victim = workers[1]}

-- Two mp tasks at once: both children of the pool are alive at each sample (a killed one is replaced on demand).
local both = atasker.background_task(function() atasker.sleep(0.05) end, {mp = true, timeout = 30})
local function sample(what)
  stats:set("quiet", true)
  stats:incr("gc")
  atasker.sleep(2.5)  -- the fault in flight ends (a killed child is replaced, a runaway cancelled); states settle
  atasker.wait_completed({both(), both()}, 30)
  collectgarbage()
  local info = s:info()
  -- Pool threads' states open and close with their threads (the thread count is checked outside): apart.
  local pool, pools = 0, 0
  for _, state in ipairs(info.states) do
    if state.name == "pool thread" then pool, pools = pool + state.bytes, pools + 1 end
  end
  print(string.format("sample %s lua_bytes=%d states=%d pool_bytes=%d pool_states=%d", what, info.lua_memory,
    #info.states, pool, pools))
  io.stdout:flush()
  atasker.sleep(0.5)  -- scripts/soak reads /proc meanwhile
  stats:set("quiet", false)
end

atasker.sleep(WARM)
sample("start")
atasker.sleep(math.max(0, duration - WARM - 2))
stats:set("quiet", true)
-- Every fault task reaches an end state.
local deadline = atasker.monotonic() + 30
while (stats:get("fault_tasks_ended") or 0) < (stats:get("fault_tasks") or 0) and atasker.monotonic() < deadline do
  atasker.sleep(0.05)
end
sample("end")

local lags, total = {}, 0
for b = 0, 100 do
  local c = stats:get("lag" .. b) or 0
  lags[b] = c
  total = total + c
end
local p99, acc = 100, 0
for b = 0, 100 do
  acc = acc + lags[b]
  if acc >= total * 0.99 then p99 = b + 1 break end
end
local executions, errors = 0, 0
for _, w in ipairs(workers) do
  executions = executions + w.executions
  errors = errors + w.errors
end
faults:stop()
print(string.format(
  "result workers=%d interval=%d queue=%d event=%d async=%d mp=%d executions=%d errors=%d items=%d events=%d " ..
  "mp_results=%d faults=%d executor_errors=%d fault_tasks=%d fault_tasks_ended=%d refused=%d lag_samples=%d " ..
  "lag_p99_ms=%d",
  #workers, kinds.interval, kinds.queue, kinds.event, kinds.async, kinds.mp, executions, errors,
  stats:get("items") or 0, stats:get("events") or 0, stats:get("mp_results") or 0, stats:get("faults") or 0,
  stats:get("executor_errors") or 0, stats:get("fault_tasks") or 0, stats:get("fault_tasks_ended") or 0,
  stats:get("refused") or 0, total, p99))
io.stdout:flush()
s:stop{wait = 5}
