import ATasker
import CLuaShim
import Logging
import Testing

@testable import ATaskerLua

/// The allocation-failure sweep: for each operation, allocation number k on the test's thread fails (Lua's, in any
/// state that the thread runs, and the shim's own buffers and state data), and every one after it, for k = 0, 1, 2,
/// ... until the operation succeeds. Every failure must be a thrown `LuaError` (or a Lua error caught in Lua) that
/// names what failed; never an abort, a hang, or a leak: a state's bytes, collected, come back to what they were, and
/// no state is left open.
@Suite("Allocation failures: every one a clean error", .serialized)
struct AllocationSweepTests {
    /// The largest k tried: every operation here succeeds well below it.
    static let maxSteps = 20_000

    /// Runs `operation` with allocation k failing, for k = 0, 1, ...; `failed` checks each error. Returns the k at
    /// which the operation succeeded (its number of allocations).
    @discardableResult
    static func sweep(
        _ name: String, _ operation: () throws -> Void,
        failed: (any Error) -> Void = { error in
            guard let error = error as? LuaError else {
                Issue.record("not a LuaError: \(error)")
                return
            }
            #expect(
                error.message.contains("not enough memory") || error.message.contains("no memory was left"),
                "\(error)")
        }
    ) -> Int {
        for k in 0..<maxSteps {
            atl_test_fail_allocations(k)
            do {
                try operation()
                atl_test_fail_allocations(-1)
                return k
            } catch {
                atl_test_fail_allocations(-1)
                failed(error)
            }
        }
        Issue.record("\(name) never succeeded within \(maxSteps) allocations")
        return maxSteps
    }

    /// `operation` swept in `state` (after one run without failures): each k that fails is tried again until the
    /// state's collected bytes stop growing, and within five tries they must, so a failure leaks nothing (what an error
    /// path makes once and keeps, such as a library that only it loads, is no leak); after the sweep, runs without
    /// failures hold the same bytes each time.
    @discardableResult
    static func sweepLeakFree(_ name: String, in state: LuaState, _ operation: () throws -> Void) -> Int {
        // A collection frees half of a thread's unused call frames (64 bytes each): a few bring them to one count.
        func settled() -> Int {
            for _ in 0..<8 { state.collectGarbage() }
            return state.memory.bytes
        }
        try? operation()
        var steps = 0
        for k in 0..<maxSteps {
            var held: [Int] = []
            var succeeded = false
            // A per-failure leak grows at every try; a cache made once stops growing (its making may shift where the
            // next try fails, so a second thing may be made once too).
            while !succeeded && (held.count < 2 || held[held.count - 1] > held[held.count - 2]) && held.count < 5 {
                atl_test_fail_allocations(k)
                do {
                    try operation()
                    succeeded = true
                } catch {
                    atl_test_fail_allocations(-1)
                    if let error = error as? LuaError {
                        #expect(
                            error.message.contains("not enough memory") || error.message.contains("no memory was left"),
                            "\(name), k = \(k): \(error)")
                    } else {
                        Issue.record("\(name), k = \(k): not a LuaError: \(error)")
                    }
                }
                atl_test_fail_allocations(-1)
                if !succeeded { held.append(settled()) }
            }
            if succeeded {
                steps = k
                break
            }
            #expect(
                held[held.count - 1] <= held[held.count - 2],
                "\(name), k = \(k): each failure leaves more bytes behind: \(held)")
        }
        #expect(steps > 0, "\(name) never succeeded")
        let once = settled()
        for _ in 0..<3 {
            try? operation()
            #expect(settled() == once, "\(name): a run after the sweep left bytes behind")
        }
        return steps
    }

    static func openStates(_ f: HostFixture) -> Int { f.host.stateMemory().count }

    @Test("opening a worker state and setting up its executor")
    func openWorkerState() throws {
        let f = HostFixture()
        defer { f.finish() }
        let values = try f.host.run(
            string: """
                local n = 0
                local function helper(x) n = n + x return n end
                return function(kw) return helper(kw.step) end
                """)
        let function = try EncodedValues([try #require(values.first)])
        let keywords = try EncodedValues([.table(LuaTable(["step": .integer(2)])), .nil, .nil, .string("w")])
        let open = Self.openStates(f)
        let steps = Self.sweep("open a worker state") {
            let state = try f.host.core.openState(isMain: false, label: "worker 'w'")
            defer { state.close() }
            try state.setUpWorker(function: function, keywords: keywords, onError: nil)
        }
        #expect(steps > 100, "opening a state takes hundreds of allocations: \(steps)")
        #expect(Self.openStates(f) == open, "no state is left open")
    }

    @Test("loading and running a script, encoding its results (a function with shared upvalues)")
    func loadScript() throws {
        let f = HostFixture()
        defer { f.finish() }
        let state = try f.host.core.openState(isMain: true)
        defer { state.close() }
        let code = """
            local shared = {count = 0}
            local function a() shared.count = shared.count + 1 return shared.count end
            local function b() return a() + shared.count end
            local t = setmetatable({a, b, shared, s = "text"}, {__index = {m = 1}})
            t.self = t
            return t, b, string.rep("x", 100)
            """
        _ = try state.runString(code, name: "=sweep")
        Self.sweepLeakFree("run a chunk", in: state) {
            _ = try state.runString(code, name: "=sweep")
        }
    }

    @Test("decoding a function with upvalues, a table graph and strings into another state")
    func decode() throws {
        let f = HostFixture()
        defer { f.finish() }
        let source = try f.host.core.openState(isMain: true)
        defer { source.close() }
        let code = """
            local shared = {count = 0}
            local function a() shared.count = shared.count + 1 return shared.count end
            local function b() return a() + shared.count end
            local t = setmetatable({a, b, shared, s = string.rep("y", 300)}, {__index = {m = 1}})
            t.self = t
            return t, b
            """
        guard case .values(let encoded?) = try source.runString(code, name: "=graph") else {
            Issue.record("no values")
            return
        }
        let bytes = encoded.withBytes { Array($0) }
        let state = try f.host.core.openState(isMain: false)
        defer { state.close() }
        try state.probeDecode(bytes)
        Self.sweepLeakFree("decode", in: state) {
            try state.probeDecode(bytes)
        }
    }

    @Test("a task: its function loaded, its arguments decoded, its result encoded")
    func taskResult() throws {
        let f = HostFixture()
        defer { f.finish() }
        let function = try ChildRunnerTests.function(
            f,
            """
            local k = {base = 10}
            return atasker.background_task(function(n, t)
              local r = {sum = k.base + n, list = {}}
              for i = 1, #t do r.list[i] = t[i] * 2 end
              return r
            end)
            """)
        let arguments = try EncodedValues([
            .integer(5), .table(LuaTable(array: (1...20).map { .integer(Int64($0)) })),
        ])
        // Cold: a new state each time (the function is loaded and cached on the way).
        Self.sweep("a task's first run") {
            let state = try f.host.core.openState(isMain: false)
            defer { state.close() }
            _ = try state.runTask(functionID: function.id, function: function.function, arguments: arguments)
        }
        // Warm: the function is cached; the run must leave nothing behind when it fails.
        let state = try f.host.core.openState(isMain: false)
        defer { state.close() }
        _ = try state.runTask(functionID: function.id, function: function.function, arguments: arguments)
        Self.sweepLeakFree("a task's result", in: state) {
            guard
                case .values(let result) = try state.runTask(
                    functionID: function.id, function: function.function, arguments: arguments)
            else { throw LuaError(code: .runtime, fullMessage: "no result") }
            #expect(try result?.decode().first?.tableValue?["sum"] == .integer(15))
        }
    }

    @Test("put, shared set and host calls from Lua: each failure is a Lua error at the call")
    func hostCalls() throws {
        let f = HostFixture()
        defer { f.finish() }
        try f.host.register("echo") { args in .table(LuaTable(array: args)) }
        let state = try f.host.core.openState(isMain: true)
        defer { state.close() }
        _ = try state.runString(
            """
            Q = atasker.background_worker{name = "sweep-q", q = true, fn = function() end}
            S = atasker.shared("sweep")
            """, name: "=setup")
        let calls = [
            ("put", "Q:put({1, 2, {x = 'y'}, string.rep('z', 200)})"),
            ("shared set", "S:set('k', {1, 2, {x = 'y'}, string.rep('z', 200)})"),
            ("shared get", "return S:get('k')"),
            ("host call", "return require('host').echo(1, 'two', {3})"),
            ("atasker call", "return atasker.monotonic(), tostring(atasker.supervisor), atasker.getpid()"),
        ]
        for (name, code) in calls {
            _ = try state.runString(code, name: "=\(name)")
            // In a pcall: the error is a Lua error at the call; the chunk goes on and returns it.
            let wrapped = "local ok, e = pcall(function() \(code) end) if not ok then error(e, 0) end"
            Self.sweepLeakFree(name, in: state) {
                _ = try state.runString(wrapped, name: "=\(name)")
            }
        }
        _ = try state.runString("Q:stop()", name: "=stop")
    }

    @Test("put from Swift and encoding values in Swift")
    func swiftEncode() throws {
        let f = HostFixture()
        defer { f.finish() }
        try f.host.run(string: "SWQ = atasker.background_worker{name = 'sweep-swift', q = true, fn = function() end}")
        let value = LuaValue.table(
            LuaTable(["a": .integer(1), "b": .string(LuaString(String(repeating: "q", count: 300)))]))
        Self.sweep("encode in Swift") { _ = try EncodedValues([value, value]) }
        Self.sweep("put from Swift") { try f.host.put(value, intoWorker: "sweep-swift") }
        try f.host.run(string: "SWQ:stop()")
    }

    @Test("a child's start and its first call")
    func childStart() throws {
        let f = HostFixture()
        defer { f.finish() }
        let function = try ChildRunnerTests.function(
            f, "local k = 3; return atasker.background_task(function(a) return {a * k} end, {mp = true})")
        let payload = ChildWire.call(function: function.id, arguments: try EncodedValues([.integer(5)]))
        Self.sweep("a child's start") {
            let runner = try ChildRunnerTests.child()
            switch runner.call(definitions: [function.definition], payload: payload) {
            case .success: return
            case .failure(let bytes):
                // The child answers its parent with the error: the parent reads a LuaError.
                _ = try HostCore.childResult(.failure(bytes))
                Issue.record("a failure reply that is not an error")
            }
        }
    }
    @Test("a worker's executions: an item, an error that goes to on_error, kw for a child, a child's error")
    func workerExecutions() throws {
        let f = HostFixture()
        defer { f.finish() }
        let state = try f.host.core.openState(isMain: true)
        defer { state.close() }
        guard
            case .values(let functions?) = try state.runString(
                """
                local seen = {}
                return function(item, kw)
                  if item.fail then error({code = item.fail, list = {1, 2, 3}}) end
                  seen[#seen + 1] = item.n
                  seen = {}
                  return true
                end, function(kw) return tostring(kw.error.code) .. #kw.traceback end
                """, name: "=worker")
        else {
            Issue.record("no functions")
            return
        }
        let parts = try functions.split()
        let worker = try f.host.core.openState(isMain: false, label: "worker 'sweep'")
        defer { worker.close() }
        let keywords = try EncodedValues([.table(LuaTable(["k": .integer(1)])), .nil, .nil, .string("sweep")])
        try worker.setUpWorker(
            function: parts[0], keywords: keywords, onError: try EncodedValues(concatenating: [parts[1]]))
        let item = LuaQueueItem.encoded(
            try EncodedValues([.table(LuaTable(["n": .integer(7), "s": .string(LuaString("text"))]))]))
        _ = try worker.runWorker(item: item, taskID: 1)
        Self.sweepLeakFree("an execution with an item", in: worker) {
            _ = try worker.runWorker(item: item, taskID: 2)
        }
        let failing = LuaQueueItem.encoded(try EncodedValues([.table(LuaTable(["fail": .integer(5)]))]))
        Self.sweepLeakFree("an execution whose error goes to on_error", in: worker) {
            guard case .handled = try worker.runWorker(item: failing, taskID: 3) else {
                throw LuaError(code: .runtime, fullMessage: "not handled")
            }
        }
        Self.sweepLeakFree("kw for a child", in: worker) { _ = try worker.workerKeywords(taskID: 4) }
        Self.sweepLeakFree("a child's error to on_error", in: worker) {
            _ = try worker.workerFailed("mp child 1: boom\nstack traceback:\n\t[C]: in ?")
        }
    }

    @Test("async steps: a task that yields, resumed, and its result")
    func asyncSteps() throws {
        let f = HostFixture()
        defer { f.finish() }
        let function = try ChildRunnerTests.function(
            f,
            """
            return atasker.background_task(function(n)
              local t = {}
              for i = 1, n do
                t[i] = {i}
                coroutine.yield()
                atasker.sleep(0)  -- a host call that yields to the aloop
              end
              return {count = #t}
            end)
            """)
        let arguments = try EncodedValues([.integer(3)])
        let state = try f.host.core.openState(isMain: false, label: "task 1")
        defer { state.close() }
        func run() throws {
            let ref = try state.newCoroutine()
            defer { state.freeCoroutine(ref) }
            var step = try state.beginTaskCoroutine(ref, function: function.function, arguments: arguments)
            while case .suspended(let call) = step {
                call?.completeEmpty()
                step = try state.resumeCoroutine(ref, isWorker: false, call: call, cancel: false)
            }
            guard case .returned(_, let result?) = step else {
                throw LuaError(code: .runtime, fullMessage: "did not return: \(step)")
            }
            #expect(try result.decode().first?.tableValue?["count"] == .integer(3))
        }
        try run()
        Self.sweepLeakFree("an async task", in: state) { try run() }

        // An async worker whose execution fails: its on_error runs in the coroutine's place.
        guard
            case .values(let functions?) = try state.runString(
                """
                return function(item, kw)
                  atasker.sleep(0)
                  error({code = item, list = {1, 2, 3}})
                end, function(kw) return tostring(kw.error.code) .. #kw.traceback end
                """, name: "=async worker")
        else {
            Issue.record("no functions")
            return
        }
        let parts = try functions.split()
        let worker = try f.host.core.openState(isMain: false, label: "worker 'async sweep'")
        defer { worker.close() }
        try worker.setUpWorker(
            function: parts[0], keywords: try EncodedValues([.nil, .nil, .nil, .string("async sweep")]),
            onError: try EncodedValues(concatenating: [parts[1]]))
        let ref = try worker.newCoroutine()
        defer { worker.freeCoroutine(ref) }
        let item = try EncodedValues([.integer(9)])
        Self.sweepLeakFree("an async worker's failing execution", in: worker) {
            var step = try worker.beginWorkerCoroutine(ref, item: item, taskID: 1)
            while case .suspended(let call) = step {
                call?.completeEmpty()
                step = try worker.resumeCoroutine(ref, isWorker: true, call: call, cancel: false)
            }
            guard case .handled = step else { throw LuaError(code: .runtime, fullMessage: "not handled: \(step)") }
        }
    }

    @Test("running a script file with its arguments in the main state")
    func runFile() throws {
        let f = HostFixture()
        defer { f.finish() }
        let state = try f.host.core.openState(isMain: true)
        defer { state.close() }
        let path = Self.fixture("sweep_script.lua")
        try state.setArguments([path, "a", "b"])
        _ = try state.runFile(path)
        Self.sweepLeakFree("a script file", in: state) {
            try state.setArguments([path, "a", "b"])
            _ = try state.runFile(path)
        }
    }

    static func fixture(_ name: String) -> String {
        var url = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2)
        url.append("Fixtures")
        url.append(Substring(name))
        return url.joined(separator: "/")
    }
}
