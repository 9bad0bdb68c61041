-- A killed mp child: the time to its task failing and to a replacement being ready.
-- Usage: atasker-lua bench/lua/mp_kill.lua [ROUNDS]
-- A pool of one child (set_mp_pool{pool_size=1, reserve_normal=0, reserve_high=0}), so
-- that the task after the kill cannot run in a surviving child: it needs the
-- replacement. Each round, with the child spawned and idle:
--   1. a task in the child stores atasker.monotonic() (CLOCK_MONOTONIC, the same clock
--      in every process) and its pid in a shared table, then kills itself: the Lua API
--      has no kill(2), so it runs
--        os.execute("exec bash -c 'printf %s \"$EPOCHREALTIME\" > FILE; kill -KILL PID'")
--      bash's $EPOCHREALTIME (CLOCK_REALTIME, read without a fork) is the moment just
--      before the kill builtin's kill(2): the kill time. Without bash the child runs
--      os.execute("kill -KILL PID") and the kill time is the monotonic time stored
--      before it (an upper bound: sh's fork + exec is included);
--   2. the parent: wait_completed(task) raises (the error must name SIGKILL): fail =
--      now - kill time;
--   3. right after, the parent submits a trivial task and waits for it (it must run
--      in another pid): ready = its completion - kill time.
-- The parent takes atasker.time() (CLOCK_REALTIME) with bash's figure, and
-- atasker.monotonic() with the child's.
-- Prints: RESULT rounds, RESULT tight (1: the kill time is bash's; 0: no bash),
-- RESULT fail_p50_ms, RESULT fail_max_ms, RESULT ready_p50_ms, RESULT ready_max_ms,
-- the same from the monotonic time stored before os.execute as RESULT
-- fail_upper_p50_ms ... ready_upper_max_ms, and RESULT exec_ms: the median cost of
-- os.execute(":") in a child (sh's fork + exec + wait). p50: the median, nearest rank.
local atasker = require "atasker"

local rounds = math.tointeger(tonumber(arg[1] or "10"))

atasker.supervisor:set_mp_pool{pool_size = 1, reserve_normal = 0, reserve_high = 0}

local bash = os.execute("command -v bash >/dev/null 2>&1") == true
local stamp = os.tmpname() -- where bash writes the kill time

local opts = {mp = true, timeout = 30}
local shared = atasker.shared("bench_mp_kill")
local suicide = atasker.background_task(function(round, file)
  local s = atasker.shared("bench_mp_kill")
  local pid = atasker.getpid()
  s:set("pid", pid)
  s:set("t0_" .. round, atasker.monotonic())
  if file then
    os.execute(string.format(
      [[exec bash -c 'printf %%s "$EPOCHREALTIME" > %s; kill -KILL %d']], file, pid))
  else
    os.execute("kill -KILL " .. pid)
  end
  atasker.sleep(30) -- not reached
end, opts)
local echo = atasker.background_task(function(x)
  return {x = x, pid = atasker.getpid()}
end, opts)
local exec_cost = atasker.background_task(function(times)
  local spent = {}
  for i = 1, times do
    local t = atasker.monotonic()
    os.execute(":")
    spent[i] = atasker.monotonic() - t
  end
  table.sort(spent)
  return spent[math.ceil(#spent / 2)]
end, opts)

-- the child is spawned, and what sh costs in it
local exec_s = atasker.wait_completed(exec_cost(9))

local function killed_at()
  local f = io.open(stamp)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(stamp)
  -- $EPOCHREALTIME has the locale's decimal separator
  return tonumber((text:gsub(",", ".")))
end

local fails, readies, fails_up, readies_up = {}, {}, {}, {}
for round = 1, rounds do
  atasker.wait_completed(echo(0)) -- the child (or its replacement) is up and idle
  local ok, err = pcall(atasker.wait_completed, suicide(round, bash and stamp), 10)
  local failed, failed_rt = atasker.monotonic(), atasker.time()
  assert(not ok, "the killed task completed")
  assert(tostring(err):find("SIGKILL"), "unexpected error: " .. tostring(err))
  local r = atasker.wait_completed(echo(round), 10)
  local ready, ready_rt = atasker.monotonic(), atasker.time()
  assert(r.x == round, "the next task returned " .. tostring(r.x))
  local t0 = shared:get("t0_" .. round)
  for _ = 1, 100 do -- in case the shared write arrives after the child's end
    if t0 then break end
    atasker.sleep(0.01)
    t0 = shared:get("t0_" .. round)
  end
  assert(t0, "the child stored no time")
  assert(r.pid ~= shared:get("pid"), "the next task ran in the killed child")
  fails_up[round], readies_up[round] = failed - t0, ready - t0
  if bash then
    local kill_rt = killed_at()
    assert(kill_rt, "bash wrote no time")
    fails[round], readies[round] = failed_rt - kill_rt, ready_rt - kill_rt
  else
    fails[round], readies[round] = fails_up[round], readies_up[round]
  end
end

local function out(key, values)
  table.sort(values)
  print(string.format("RESULT %s_p50_ms %.3f", key,
                      values[math.max(1, math.ceil(#values / 2))] * 1e3))
  print(string.format("RESULT %s_max_ms %.3f", key, values[#values] * 1e3))
end

os.remove(stamp)
print(string.format("RESULT rounds %d", rounds))
print(string.format("RESULT tight %d", bash and 1 or 0))
print(string.format("RESULT exec_ms %.3f", exec_s * 1e3))
out("fail", fails)
out("ready", readies)
out("fail_upper", fails_up)
out("ready_upper", readies_up)
