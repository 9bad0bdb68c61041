import Testing

@testable import ATaskerLua

/// A worker's own state makes the fields of `atasker` and the methods of handles when they are first read, and
/// collects garbage sooner than Lua's default: what a worker that uses little costs little, and the values it reads
/// behave as if they had been there from the start.
@Suite("Worker states: fields and methods made on first read, a small live heap")
struct WorkerStateMemoryTests {
    @Test("atasker's functions and constants, made on first read in a worker, are the same values every time")
    func lazyFields() throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try f.host.run(
            string: """
                local w = atasker.background_worker{interval = 0.01, name = "fields", fn = function(kw)
                  local r = atasker.shared("lazy-fields")
                  r:set("consts", atasker.TASK_CRITICAL == 0 and atasker.TASK_HIGH == 50
                    and atasker.TASK_NORMAL == 100 and atasker.TASK_LOW == 200
                    and atasker.is_main == false and atasker._VERSION == "atasker-lua 0.1.0")
                  r:set("funcs", type(atasker.sleep) == "function" and atasker.sleep == atasker.sleep
                    and rawget(atasker, "sleep") == atasker.sleep and atasker.no_such_field == nil)
                  -- a function of the module read here travels by name into a pool state
                  local monotonic = atasker.monotonic
                  local task = atasker.background_task(function() return monotonic() > 0 end)()
                  r:set("byname", atasker.wait_completed(task))
                  return false
                end}
                w:start()
                while not w:is_stopped() do atasker.sleep(0.01) end
                local r = atasker.shared("lazy-fields")
                return r:get("consts"), r:get("funcs"), r:get("byname"), atasker.is_main
                """)
        #expect(values == [.boolean(true), .boolean(true), .boolean(true), .boolean(true)])
    }

    @Test("a handle's methods, made one by one on first read, stay the same functions")
    func lazyMethods() throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try f.host.run(
            string: """
                local w = atasker.background_worker{interval = 0.01, name = "methods", fn = function(kw)
                  local r = atasker.shared("lazy-methods")
                  local me = kw._worker
                  r:set("property", me.executions == 0)  -- a property before any method
                  r:set("same", me.put == me.put and me.trigger == me.trigger and me.put ~= me.trigger)
                  r:set("call", me:is_started() == true and me:is_stopped() == false)
                  r:set("none", me.no_such_method == nil)
                  r:incr("n")
                  r:set("incr", r:get("n") == 1 and r.incr == r.incr)
                  return false
                end}
                w:start()
                while not w:is_stopped() do atasker.sleep(0.01) end
                local r = atasker.shared("lazy-methods")
                return r:get("property"), r:get("same"), r:get("call"), r:get("none"), r:get("incr")
                """)
        #expect(values == Array(repeating: .boolean(true), count: 5))
    }

    @Test("a worker state collects at a pause of 120, and its live heap stays small")
    func smallHeap() throws {
        let f = HostFixture()
        defer { f.finish() }
        // The executor of bench/lua/interval.lua in short: a shared table, a worker property and 'math'. Its live
        // heap was 19.0 KB when every method and field was made at once; 16.4 KB now (Lua 5.4.4).
        let values = try f.host.run(
            string: """
                local w = atasker.background_worker{interval = 0.01, name = "heap", fn = function(kw)
                  local stats = atasker.shared("heap")
                  local k = kw._worker.executions + kw._worker.skipped
                  stats:incr(math.floor(math.max(atasker.monotonic() - k, 0)) % 2)
                  if k == 2 then
                    stats:set("pause", collectgarbage("setpause", 120))
                    collectgarbage()
                    stats:set("heap", collectgarbage("count"))
                    return false
                  end
                end}
                w:start()
                while not w:is_stopped() do atasker.sleep(0.01) end
                return atasker.shared("heap"):get("pause"), atasker.shared("heap"):get("heap")
                """)
        #expect(values.first == .integer(120))
        let heap = try #require(values.last?.doubleValue)
        #expect(heap < 17.5, "a worker state's live heap: \(heap) KB")
    }
}
