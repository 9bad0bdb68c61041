-- on_error gets a table error object itself, and an on_error that raises is named in the log together with the
-- error it handled. Prints "table error <type> <code>".
local atasker = require "atasker"
local w = atasker.background_worker{e = true, name = "tbl", fn = function() error({code = 7}) end,
  on_error = function(kw)
    atasker.shared("e"):set("type", type(kw.error))
    atasker.shared("e"):set("code", type(kw.error) == "table" and kw.error.code or kw.error)
  end}
w:start()
w:trigger()
while not atasker.shared("e"):get("type") do atasker.sleep(0.005) end
print("table error", atasker.shared("e"):get("type"), atasker.shared("e"):get("code"))
w:stop()
local bad = atasker.background_worker{e = true, name = "bad_handler", fn = function() error("first problem") end,
  on_error = function(kw) error("handler problem") end}
bad:start()
bad:trigger()
while bad.errors == 0 do atasker.sleep(0.005) end
bad:stop()
