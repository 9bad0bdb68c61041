import ATasker
import ATaskerJobs
import ATaskerLua
import Logging
import Synchronization
import Testing

/// What ATaskerJobs builds on, as any app sees it: Lua modules registered from Swift, and Lua task starters that
/// Swift keeps and starts.
@Suite("LuaHost: Lua modules and task starters from Swift")
struct PublicAPITests {
    let logger = Logger(label: "test")

    @Test func aRegisteredLuaModuleIsInEveryState() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: self.logger)
        supervisor.start()
        defer { supervisor.stop() }
        let host = LuaHost(supervisor: supervisor, logger: self.logger)
        defer { host.close() }
        try host.register("twice") { args in .integer((args.first?.intValue ?? 0) * 2) }
        try host.register(
            module: "app.math",
            source: """
                local name = ...
                local host = require "host"
                return {name = name, quad = function(n) return host.twice(host.twice(n)) end,
                        fail = function() error("from the module") end}
                """)
        let values = try host.run(
            string: """
                local m = require "app.math"
                local t = atasker.background_task(function(n) return require("app.math").quad(n) end)(5)
                local ok, e = pcall(m.fail)
                return m.name, m.quad(3), atasker.wait_completed(t), e
                """)
        #expect(values.count == 4)
        #expect(values[0] == "app.math")
        #expect(values[1] == 12)
        #expect(values[2] == 20)
        #expect(values[3].stringValue == "app.math:4: from the module")
        #expect(throws: LuaHostError.self) { try host.register(module: "late", source: "return {}") }
    }

    @Test func swiftStartsAStarterThatLuaMade() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: self.logger)
        supervisor.start()
        defer { supervisor.stop() }
        let host = LuaHost(supervisor: supervisor, logger: self.logger)
        defer { host.close() }
        let kept = Mutex<LuaValue?>(nil)
        try host.register("keep") { args in
            kept.withLock { $0 = args.first }
            return .nil
        }
        try host.run(
            string: """
                require("host").keep(atasker.background_task(function(a, b)
                  if a == "spin" then while true do end end
                  return a .. b
                end))
                """)
        let starter = try #require(kept.withLock { $0 })
        #expect(try host.kind(ofStarter: starter) == .thread)
        let task = try host.start(starter, arguments: ["x", "y"])
        #expect(try host.result(ofFinished: task) == "xy")
        let timed = try host.starter(starter, timeout: 0.2)
        let spinning = try host.start(timed, arguments: ["spin", ""])
        #expect(throws: LuaError.self) { try host.result(ofFinished: spinning) }
        #expect(throws: LuaHostError.self) { try host.start("not a starter", arguments: []) }
        #expect(throws: (any Error).self) { try host.starter(starter, timeout: .nan) }
    }

    // One store at a time: the test blocks its (cooperative) thread until the supervisor is idle, and the job
    // worker needs one for itself; two cases at once on a 2-core machine would hold both.
    @Test(.serialized, arguments: StoreKind.available) func aSwiftAppRunsAQueueWithAJobWorker(_ kind: StoreKind) throws
    {
        try withFreshStore(kind) { url in
            let supervisor = TaskSupervisor(configuration: .init(poolSize: 4), logger: self.logger)
            supervisor.start()
            defer { supervisor.stop() }
            let host = LuaHost(supervisor: supervisor, logger: self.logger)
            defer { host.close() }
            let kept = Mutex<LuaValue?>(nil)
            try host.register("keep") { args in
                kept.withLock { $0 = args.first }
                return .nil
            }
            // The module's wrapper is what `jobs.worker` passes; a Swift app passes its own starter the same way:
            // a function that returns {true, result} or {false, message, traceback}.
            try host.run(
                string: "require('host').keep(atasker.background_task(function(v) return {true, v.n * 3} end))")
            let starter = try #require(kept.withLock { $0 })
            let store = try kind.open(url)
            try store.migrate()
            let jobs = try (1...20).map { n in
                NewJob(queue: "swift", payload: try JobPayload.encode(["n": .integer(Int64(n))]), runAt: 0)
            }
            let ids = try store.put(jobs).map { outcome -> Int64 in
                if case .added(let id) = outcome { return id }
                return 0
            }
            var options = JobWorkerOptions()
            options.stopWhenEmpty = true
            options.concurrency = 3
            let worker = try JobWorker(
                host: host, store: store, queue: "swift", starter: starter, name: "swift-jobs", options: options,
                logger: self.logger)
            try worker.worker.start()
            supervisor.waitUntilIdle()
            #expect(worker.counts.completed == 20)
            for (n, id) in zip(1..., ids) {
                let record = try #require(try store.job(id: id))
                #expect(record.state == .completed)
                #expect(try JobPayload.decode(try #require(record.result)) == .integer(Int64(n * 3)))
            }
        }
    }
}
