// The host from Swift concurrency, through the public API only.
import ATasker
import ATaskerLua
import Logging
import Testing

@Suite("Embedding: async running and waiting")
struct ConcurrencyTests {
    @Test("run(string:) and run(file:) await a script on a thread of their own; waitUntilIdle awaits its tasks")
    func asyncRun() async throws {
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: logger)
        supervisor.start()
        let host = LuaHost(supervisor: supervisor, logger: logger)
        // Many scripts at once, each waiting for a task: none holds a thread of the cooperative pool.
        let sums = try await withThrowingTaskGroup(of: LuaValue.self) { group in
            for n in 1...16 {
                group.addTask {
                    try await host.run(
                        string: "return atasker.wait_completed(atasker.background_task(function(x) return x end)(\(n)))"
                    ).first ?? .nil
                }
            }
            var total: Int64 = 0
            for try await value in group { total += value.intValue ?? 0 }
            return total
        }
        #expect(sums == 136)
        await #expect {
            try await host.run(file: "/nonexistent/workers.lua")
        } throws: { error in
            (error as? LuaError)?.code == .file
        }
        _ = try await host.run(string: "atasker.background_task(function() atasker.sleep(0.05) end)()")
        await host.waitUntilIdle()
        #expect(supervisor.info().tasks == 0)
        await supervisor.shutdown(timeout: .seconds(10))
        host.close()
    }
}
