// Bounded shutdown the service-lifecycle way, through the public API only.
import ATasker
import ATaskerLua
import Glibc
import Logging
import ServiceLifecycle
import Synchronization
import Testing

/// Whether this test process runs under ThreadSanitizer (scripts/sanitize thread): its runtime is linked in. There the
/// time bounds below are not checked: a synchronous test beside these, which TSan makes minutes long, may hold both
/// threads of Swift concurrency's pool on this two-core machine for most of the run.
private let underThreadSanitizer = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "__tsan_init") != nil

@Suite("Embedding: a ServiceGroup's shutdown ends Lua code that never returns")
struct ShutdownTests {
    /// A host whose supervisor lets running work finish for `stopTimeout`, with a worker that never returns
    /// started by a script; returns once the worker runs.
    static func hostWithRunaway(stopTimeout: Duration) throws -> (LuaHost, TaskSupervisor) {
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let supervisor = TaskSupervisor(
            configuration: .init(poolSize: 2, stopTimeout: stopTimeout), logger: logger)
        let host = LuaHost(supervisor: supervisor, logger: logger)
        supervisor.start()
        try host.run(
            string: """
                local w = atasker.background_worker{name = "spinner", fn = function()
                  atasker.shared("spin"):set("in", true)
                  while true do end
                end}
                w:start()
                while not atasker.shared("spin"):get("in") do atasker.sleep(0.005) end
                """)
        return (host, supervisor)
    }

    @Test("graceful shutdown: the running worker gets stopTimeout, then is cancelled, and run() returns")
    func gracefulShutdownCancels() async throws {
        let (host, supervisor) = try Self.hostWithRunaway(stopTimeout: .milliseconds(200))
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let group = ServiceGroup(services: [host], logger: logger)
        let clock = ContinuousClock()
        let started = clock.now
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await group.run() }
            await group.triggerGracefulShutdown()
            try await tasks.waitForAll()
        }
        // the deadline is 0.2 s and the cancel grace 0.5 s; the bound is for a busy machine, where the tests that
        // run beside this one may hold the threads of Swift concurrency for a while
        #expect(underThreadSanitizer || clock.now - started < .seconds(120))
        #expect(supervisor.info().tasks == 0)
        #expect(supervisor.workers.allSatisfy { $0.isStopped })
    }

    @Test("a cancelled service cancels the running Lua code at once, whatever the stop timeout")
    func cancellationCancelsAtOnce() async throws {
        let (_, supervisor) = try Self.hostWithRunaway(stopTimeout: .seconds(3600))
        let clock = ContinuousClock()
        let started = clock.now
        let service = Task { try await supervisor.run() }
        service.cancel()
        try await service.value
        #expect(underThreadSanitizer || clock.now - started < .seconds(120))
        #expect(supervisor.info().tasks == 0)
    }

    @Test("shutdown(timeout:) returns what still runs after the cancel: nothing, for Lua code")
    func shutdownReturnsNothingLeft() async throws {
        let (host, supervisor) = try Self.hostWithRunaway(stopTimeout: .seconds(3600))
        defer { host.close() }
        let left = await supervisor.shutdown(timeout: .milliseconds(100))
        #expect(left.isEmpty)
        #expect(supervisor.runningCode().isEmpty)
    }

    @Test("close(timeout:) leaves a finalizer that does not return in time behind, and the host is closed")
    func closeWithTimeout() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: HostMisuseTests.quietLogger())
        supervisor.start()
        defer { _ = supervisor.stop(wait: .seconds(10), cancelTasks: true) }
        let quick = LuaHost(supervisor: supervisor, logger: HostMisuseTests.quietLogger())
        try quick.run(string: "setmetatable({}, {__gc = function() end})")
        #expect(quick.close(timeout: .seconds(30)))
        let slow = LuaHost(supervisor: supervisor, logger: HostMisuseTests.quietLogger())
        // A C call that returns by itself, so the finalizer left behind ends soon after the test.
        try slow.run(string: "SLOW = setmetatable({}, {__gc = function() os.execute('sleep 2') end})")
        let started = ContinuousClock.now
        #expect(!slow.close(timeout: .milliseconds(200)))
        #expect(ContinuousClock.now - started < .seconds(2))
        #expect(throws: LuaError.self) { try slow.run(string: "return 1") }
    }
}
