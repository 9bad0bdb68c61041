import ATasker
import Logging
import Synchronization
import Testing

@testable import ATaskerLua

/// A supervisor and a host for one test; `finish()` stops both and checks that nothing is left running.
struct HostFixture {
    let supervisor: TaskSupervisor
    let host: LuaHost

    init(poolSize: Int = 4, exitHandler: (@Sendable (Int32) -> Void)? = nil) {
        var logger = Logger(label: "test")
        logger.logLevel = .critical
        self.supervisor = TaskSupervisor(configuration: .init(poolSize: poolSize), logger: logger)
        self.supervisor.start()
        self.host = LuaHost(supervisor: self.supervisor, logger: logger, configuration: .init(exitHandler: exitHandler))
    }

    func finish() {
        let left = self.supervisor.stop(wait: .seconds(10), cancelTasks: true)
        #expect(left.isEmpty, "tasks still running after the test: \(left)")
        self.host.close()
    }
}

@Suite("LuaHost: running Lua from Swift, and the boundary")
struct HostTests {
    @Test("run(string:) returns copies of the chunk's results")
    func runString() throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try f.host.run(string: "return 1, 2.5, 'x\\0y', {a = {1, 2}}, nil, true")
        #expect(values.count == 6)
        #expect(values[0] == .integer(1))
        #expect(values[1] == .number(2.5))
        #expect(values[2] == .string(LuaString(bytes: [0x78, 0, 0x79])))
        #expect(values[3].tableValue?["a"].tableValue?.array == [.integer(1), .integer(2)])
        #expect(values[4] == .nil)
        #expect(values[5] == .boolean(true))
    }

    @Test("a syntax error and a runtime error come back as LuaError with file:line")
    func errors() throws {
        let f = HostFixture()
        defer { f.finish() }
        #expect {
            try f.host.run(string: "local x = = 1", name: "=chunk")
        } throws: { error in
            guard let e = error as? LuaError else { return false }
            return e.code == .syntax && e.message.hasPrefix("chunk:1:")
        }
        #expect {
            try f.host.run(string: "local function f() error('deep') end\nf()", name: "=chunk")
        } throws: { error in
            guard let e = error as? LuaError else { return false }
            return e.code == .runtime && e.message == "chunk:1: deep" && (e.traceback?.contains("chunk:2:") ?? false)
        }
    }

    @Test("a registered Swift function is callable from the main state and from tasks")
    func registeredFunction() throws {
        let f = HostFixture()
        defer { f.finish() }
        let calls = Atomic<Int>(0)
        try f.host.register("add") { args in
            calls.add(1, ordering: .relaxed)
            return .integer((args[0].intValue ?? 0) + (args[1].intValue ?? 0))
        }
        let values = try f.host.run(
            string: """
                local host = require "host"
                local direct = host.add(2, 3)
                local f = atasker.background_task(function(a) return host.add(a, 10) end)
                local ts = {}
                for i = 1, 10 do ts[i] = f(i) end
                local r = atasker.wait_completed(ts)
                return direct, r[1], r[10]
                """)
        #expect(values == [.integer(5), .integer(11), .integer(20)])
        #expect(calls.load(ordering: .relaxed) == 11)
    }

    @Test("a Swift error thrown into Lua is a Lua error at the caller's line, catchable with pcall")
    func swiftErrors() throws {
        struct Failure: Error, CustomStringConvertible {
            var description: String { "the disk is full" }
        }
        let f = HostFixture()
        defer { f.finish() }
        try f.host.register("fails") { _ in throw Failure() }
        try f.host.register("luaFails") { _ in throw LuaError(code: .runtime, fullMessage: "exactly this") }
        let values = try f.host.run(
            string: """
                local host = require "host"
                local ok1, e1 = pcall(function() return host.fails() end)
                local ok2, e2 = pcall(host.luaFails)
                -- nested: an error while handling an error, inside a task
                local t = atasker.background_task(function()
                  local ok, e = pcall(function()
                    local ok, inner = pcall(function() return host.fails() end)
                    error("wrapped: " .. inner, 0)
                  end)
                  return e
                end)()
                return ok1, e1, ok2, e2, atasker.wait_completed(t)
                """, name: "=boundary")
        #expect(values[0] == .boolean(false))
        #expect(values[1].tableValue?["message"].stringValue == "boundary:2: fails: the disk is full")
        #expect(values[1].tableValue?["code"].stringValue == "Failure")
        #expect(values[2] == .boolean(false))
        #expect(values[3].stringValue == "exactly this")
        #expect(values[4].stringValue == "wrapped: boundary:7: fails: the disk is full")
    }

    @Test("os.exit raises unless the app allows it")
    func exit() throws {
        let refused = HostFixture()
        #expect(throws: LuaError.self) { try refused.host.run(string: "os.exit(3)") }
        refused.finish()

        let code = Atomic<Int32>(-1)
        let allowed = HostFixture(exitHandler: { code.store($0, ordering: .relaxed) })
        let values = try allowed.host.run(string: "os.exit(7); return 1")
        #expect(values.isEmpty)
        #expect(code.load(ordering: .relaxed) == 7)
        allowed.finish()
    }

    @Test("results of Lua tasks can be awaited from Swift")
    func awaitFromSwift() async throws {
        let f = HostFixture()
        defer { f.finish() }
        // The task waits for a gate, so that it still runs when Swift looks it up, however slow the machine.
        _ = try await f.host.run(
            string: """
                SLOW = atasker.background_task(function(x)
                  while not atasker.shared("gate"):get("open") do atasker.sleep(0.005) end
                  return x * 2
                end)
                """)
        let values = try await f.host.run(string: "return SLOW(21).id")
        let id = Int(try #require(values.first?.intValue))
        let task = try #require(f.supervisor.task(id: id))
        _ = try await f.host.run(string: "atasker.shared('gate'):set('open', true)")
        #expect(try await f.host.result(of: task) == .integer(42))
    }

    @Test("handles are released when the state that held them closes")
    func handlesReleased() throws {
        let f = HostFixture()
        weak var weakTask: SupervisorTask?
        do {
            let values = try f.host.run(
                string: "KEEP = atasker.background_task(function() end, {delay = 60})(); return KEEP.id")
            let id = Int(try #require(values.first?.intValue))
            let task = try #require(f.supervisor.task(id: id))
            weakTask = task
            #expect(task.cancel())
        }
        f.finish()
        #expect(weakTask == nil)
    }

    @Test("every allocation failure in the shim ends in a clean error", .timeLimit(.minutes(2)))
    func allocationFailures() throws {
        let f = HostFixture()
        defer { f.finish() }
        let code = """
            local s = atasker.shared("alloc")
            s:set("k", {1, 2, {x = "y"}})
            local v = s:get("k")
            local t = setmetatable({v, v, "s"}, {__index = {m = 1}})
            t.self = t
            return v[3].x, #tostring(atasker.supervisor), atasker.monotonic() > 0
            """
        var limit = 1
        var succeeded = false
        while !succeeded && limit < 20_000 {
            let state: LuaState
            do {
                state = try f.host.core.openState(isMain: true, allocationLimit: limit)
            } catch {
                #expect(error.code == .memory || error.code == .runtime, "\(error)")
                limit += 1
                continue
            }
            do {
                _ = try state.runString(code, name: "=alloc")
                succeeded = true
            } catch {
                #expect(error.code == .memory || error.code == .runtime || error.code == .codec, "\(error)")
            }
            state.close()
            limit += 1
        }
        #expect(succeeded)
        // Opening a state alone takes hundreds of allocations: the loop must have stepped through all of them.
        #expect(limit > 200, "succeeded at allocation \(limit)")
    }
}

@Suite("LuaHost: Lua workers from Swift")
struct HostWorkerTests {
    @Test("Swift puts into and triggers workers that a script created, by name")
    func putAndTrigger() throws {
        let f = HostFixture()
        defer { f.finish() }
        try f.host.run(
            string: """
                SINK = atasker.background_worker{name = "sink", q = true, fn = function(item, kw)
                  atasker.shared("sink"):incr("sum", item.n)
                end}
                SINK:start()
                BELL = atasker.background_worker{name = "bell", e = true, fn = function(kw)
                  atasker.shared("sink"):incr("rings")
                end}
                BELL:start()
                """)
        for n in 1...100 {
            try f.host.put(.table(LuaTable(["n": .integer(Int64(n))])), intoWorker: "sink")
        }
        #expect(try f.host.trigger(worker: "bell"))
        #expect(throws: LuaError.self) { try f.host.put(1, intoWorker: "bell") }
        #expect(throws: LuaError.self) { try f.host.put(1, intoWorker: "nobody") }
        let values = try f.host.run(
            string: """
                SINK:stop{drain = true}
                BELL:stop()
                return atasker.shared("sink"):get("sum"), atasker.shared("sink"):get("rings")
                """)
        #expect(values.first == .integer(5050))
        #expect(values.count == 2)
    }

    @Test("shared-table calls and worker properties: values, keys and errors, on the short path and the long one")
    func commonHostCalls() throws {
        let f = HostFixture()
        defer { f.finish() }
        let long = String(repeating: "k", count: 200)
        let values = try f.host.run(
            string: """
                local s = atasker.shared("calls")
                local function err(f, ...)
                  local ok, e = pcall(f, ...)
                  assert(not ok)
                  return e
                end
                s:set(2, "two")
                s:set("\(long)", "long key")
                s:set("v", string.rep("x", 100))
                s:set(true, 1.5)
                assert(s:get(2.0) == "two" and s:get("\(long)") == "long key" and #s:get("v") == 100)
                assert(s:get(true) == 1.5 and math.type(s:get(true)) == "float" and s:get("none") == nil)
                assert(s:incr("n") == 1 and s:incr("n", 2) == 3 and math.type(s:get("n")) == "integer")
                assert(s:incr("n", 0.5) == 3.5 and s:incr(math.maxinteger, 1) == 1)
                s:set("n", nil)
                assert(s:get("n") == nil)
                s:set("t", {1, x = "y"})
                assert(s:get("t").x == "y")
                local w = atasker.background_worker{name = "props", q = true, fn = function() end}
                s:set("w", w)
                assert(s:get("w") == w or tostring(s:get("w")) == tostring(w))
                s:set("word", "abc")
                return err(s.get, s, {}), err(s.set, s, 0/0, 1), err(s.incr, s, "word"), err(s.incr, s, 1, "x"),
                  w.name, w.kind, w.state, w.priority, w.executions, w.errors, w.skipped, w.queue_depth, w.nothing,
                  w[1], tostring(w), tostring(s), w:is_stopped(), w:is_active()
                """)
        #expect(values.count == 18)
        #expect(values[0].stringValue == "bad argument #1 to 'get' (string, number or boolean key expected)")
        #expect(values[1].stringValue?.hasSuffix("shared:set: key must not be NaN") == true)
        #expect(
            values[2].stringValue?.hasSuffix("shared:incr: value of \"word\" and increment must be numbers") == true)
        #expect(values[3].stringValue?.hasSuffix("shared:incr: value of 1 and increment must be numbers") == true)
        #expect(values[4] == "props" && values[5] == "queue" && values[6] == "stopped")
        #expect(values[7] == .integer(Int64(TaskPriority.normal.rawValue)))
        #expect(values[8] == 0 && values[9] == 0 && values[10] == 0 && values[11] == 0)
        #expect(values[12] == .nil && values[13] == .nil)
        #expect(values[14] == "atasker.Worker 'props' (queue, stopped)")
        #expect(values[15] == "atasker.Shared 'calls'")
        #expect(values[16] == .boolean(true) && values[17] == .boolean(false))
    }
}
