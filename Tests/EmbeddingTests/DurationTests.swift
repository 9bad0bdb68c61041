// The public API as an app uses it (no @testable): times as Duration.
import ATasker
import ATaskerLua
import Logging
import Testing

@Suite("Embedding: the supervisor's and the host's times as Duration")
struct DurationTests {
    @Test("submit and run with a Duration delay; setTimeouts and setAloopBlockLimits with Durations")
    func durations() async throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: HostMisuseTests.quietLogger())
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        let delayed = supervisor.submit(delay: .milliseconds(20)) { _ in 5 }
        #expect(try await delayed.value(as: Int.self) == 5)
        #expect(try await supervisor.run(delay: .milliseconds(1)) { 6 * 7 } == 42)
        supervisor.setTimeouts(warning: .seconds(3), critical: .seconds(9))
        #expect(supervisor.info().timeoutWarning == 3)
        #expect(supervisor.info().timeoutCritical == 9)

        let host = LuaHost(supervisor: supervisor, logger: HostMisuseTests.quietLogger())
        defer { host.close() }
        host.setAloopBlockLimits(warning: .milliseconds(50), cancel: .milliseconds(100))
        let values = try await host.run(
            string: """
                local w = atasker.background_worker{async = true, e = true, name = "spin",
                  fn = function(kw) while true do end end}
                w:start()
                w:trigger()
                local deadline = atasker.monotonic() + 30
                while w.errors < 1 and atasker.monotonic() < deadline do atasker.sleep(0.01) end
                w:stop()
                return w.errors, atasker.supervisor.aloop_block_cancel
                """)
        #expect(values == [.integer(1), .number(0.1)])
    }
}
