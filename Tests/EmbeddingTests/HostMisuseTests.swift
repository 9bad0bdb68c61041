// The public API as an app uses it (no @testable): misuse is a thrown error, never a trap.
import ATasker
import ATaskerLua
import Logging
import Testing

@Suite("Embedding: misuse of the public API throws instead of trapping")
struct HostMisuseTests {
    static func quietLogger() -> Logger {
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        return logger
    }

    @Test("register after a script ran throws LuaHostError.registeredTooLate, and the host goes on")
    func registerTooLate() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: Self.quietLogger())
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        let host = LuaHost(supervisor: supervisor, logger: Self.quietLogger())
        defer { host.close() }
        try host.register("first") { _ in .integer(1) }
        #expect(try host.run(string: "return require('host').first()") == [.integer(1)])
        #expect {
            try host.register("second") { _ in .integer(2) }
        } throws: { error in
            (error as? LuaHostError)?.code == .registeredTooLate
                && "\(error)".contains("register every function before the first script runs")
        }
        #expect(try host.run(string: "return require('host').first()") == [.integer(1)])
    }

    @Test("result(of:) throws for a Swift task; LuaValue.task gives a Lua task's handle")
    func resultOfSwiftTask() async throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: Self.quietLogger())
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        let host = LuaHost(supervisor: supervisor, logger: Self.quietLogger())
        defer { host.close() }
        let values = try await host.run(string: "return atasker.background_task(function(x) return x * 2 end)(21), 5")
        let task = try #require(values.first?.task)
        #expect(values.last?.task == nil)
        #expect(try await host.result(of: task) == .integer(42))
        let swiftTask = supervisor.submit(priority: .normal) { _ in 7 }
        await #expect {
            try await host.result(of: swiftTask)
        } throws: { error in
            (error as? LuaHostError)?.code == .notALuaTask
        }
        #expect(try await swiftTask.value(as: Int.self) == 7)
    }

    @Test("a host dropped without close() closes its main state: no trap")
    func droppedWithoutClose() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: Self.quietLogger())
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        func runAndDrop() throws {
            let host = LuaHost(supervisor: supervisor, logger: Self.quietLogger())
            _ = try host.run(string: "x = setmetatable({}, {__gc = function() end}); return 1")
            // an error thrown here would skip close(): the host is dropped open
        }
        try runAndDrop()
        #expect(supervisor.info().tasks == 0)
    }
}
