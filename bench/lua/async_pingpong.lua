-- Ping-pong between two async queue workers on one aloop: each executor puts the item
-- it got, plus one, into the other worker's queue, until N round trips are done.
-- Usage: atasker-lua bench/lua/async_pingpong.lua [N]
-- Prints: RESULT round_trips, RESULT seconds (first put to the last item),
-- RESULT round_trips_per_s.
local atasker = require "atasker"

local n = math.tointeger(tonumber(arg[1] or "100000"))
local s = atasker.supervisor
s:create_aloop("pingpong", {default = true})

local function bounce(item, kw)
  if item >= kw.last then
    atasker.shared("pingpong"):set("end", atasker.monotonic())
    return false
  end
  kw.other:put(item + 1)
end

local ping = atasker.background_worker{async = true, q = true, name = "ping", fn = bounce}
local pong = atasker.background_worker{async = true, q = true, name = "pong", fn = bounce}
-- ping's item n goes to pong, whose item goes back to ping: one round trip per two items
local last = 2 * n
ping:start{last = last, other = pong}
pong:start{last = last, other = ping}
atasker.sleep(0.1)   -- both states are open
local t0 = atasker.monotonic()
ping:put(1)
while not (ping:is_stopped() or pong:is_stopped()) do atasker.sleep(0.01) end
ping:stop()
pong:stop()
local t1 = atasker.shared("pingpong"):get("end")
local elapsed = t1 - t0
print(string.format("RESULT round_trips %d", n))
print(string.format("RESULT seconds %.6f", elapsed))
print(string.format("RESULT round_trips_per_s %.1f", n / elapsed))
