// An app that creates supervisors and hosts and drops them gets their memory back: nothing that the library makes
// keeps a stopped supervisor or a closed host alive (public API only).
import ATasker
import ATaskerLua
import Logging
import Testing

/// A logger that tells when its last copy is gone: the supervisor and the host keep copies of their logger (and so
/// does what they make), so that is when the whole graph has been freed. Waiting for it waits for an event.
struct ReleaseSignal {
    /// Freed with the last copy of the logger's handler.
    private final class Token: Sendable {
        let continuation: AsyncStream<Void>.Continuation

        init(_ continuation: AsyncStream<Void>.Continuation) {
            self.continuation = continuation
        }

        deinit {
            self.continuation.finish()
        }
    }

    private struct Handler: LogHandler {
        let token: Token
        var logLevel: Logger.Level = .critical
        var metadata: Logger.Metadata = [:]

        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { self.metadata[key] }
            set { self.metadata[key] = newValue }
        }

        func log(event: LogEvent) {}
    }

    private let stream: AsyncStream<Void>

    /// A signal, and the logger whose last copy going fires it: give that to the supervisor and the host, and keep
    /// no copy of it.
    static func make() -> (ReleaseSignal, Logger) {
        let (stream, continuation) = AsyncStream<Void>.makeStream()
        let token = Token(continuation)
        return (ReleaseSignal(stream: stream), Logger(label: "release-test") { _ in Handler(token: token) })
    }

    /// Whether every copy of the logger was freed within `seconds` (a bound for a busy machine: the pool threads
    /// that drop their states after a stop may wait for a core).
    func released(within seconds: Int = 60) async -> Bool {
        let stream = self.stream
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                for await _ in stream {}
                return true
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(seconds))
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }
}

@Suite("Embedding: a stopped supervisor and a closed host are freed")
struct ReleaseTests {
    @Test("Swift workers, an aloop and a cancelled delayed task: the supervisor is freed once stopped")
    func swiftSupervisor() async throws {
        let signal: ReleaseSignal
        weak var released: TaskSupervisor?
        do {
            let (made, logger) = ReleaseSignal.make()
            signal = made
            let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: logger)
            released = supervisor
            supervisor.start()
            let event = try EventWorker(supervisor: supervisor, name: "event") { worker in
                _ = worker.stop()  // a stop from inside, which never waits for itself
                return true
            }
            try event.start()
            event.trigger()
            let interval = try IntervalWorker(supervisor: supervisor, name: "interval", interval: 0.01) { _ in false }
            try interval.start()
            let loop = try supervisor.createAloop(named: "loop")
            #expect(try await loop.run { 42 } == 42)
            let delayed = supervisor.submit(delay: 3600) { _ in 1 }
            #expect(await supervisor.stop(wait: .seconds(30)).isEmpty)
            #expect(delayed.status == .canceled)
        }
        #expect(await signal.released(), "a stopped supervisor is still alive: a reference cycle keeps it")
        #expect(released == nil)
    }

    @Test("Lua workers that ran, in the thread pool and on an aloop: the supervisor and the host are freed")
    func luaWorkers() async throws {
        let signal: ReleaseSignal
        weak var releasedSupervisor: TaskSupervisor?
        weak var releasedHost: LuaHost?
        do {
            let (made, logger) = ReleaseSignal.make()
            signal = made
            let supervisor = TaskSupervisor(configuration: .init(poolSize: 4), logger: logger)
            supervisor.start()
            let host = LuaHost(supervisor: supervisor, logger: logger)
            releasedSupervisor = supervisor
            releasedHost = host
            let values = try await host.run(
                string: """
                    -- each executor reads kw._worker: the worker's handle, which its state holds while it runs
                    local q = atasker.background_worker{name = "q", q = true, fn = function(item, kw)
                      atasker.shared("ran"):incr(kw._worker.name, item)
                    end}
                    q:start()
                    q:put(1)
                    q:put(2)
                    q:stop{drain = true}
                    local e = atasker.background_worker{name = "e", e = true, fn = function(kw) end}
                    e:start()
                    e:stop()
                    atasker.supervisor:create_aloop("loop", {default = true})
                    local a = atasker.background_worker{name = "a", async = true, q = true, fn = function(item, kw)
                      atasker.sleep(0)
                      atasker.shared("ran"):incr(kw._worker.name, item)
                    end}
                    a:start()
                    a:put(5)
                    a:stop{drain = true}
                    return atasker.shared("ran"):get("q"), atasker.shared("ran"):get("a")
                    """)
            #expect(values == [.integer(3), .integer(5)])
            try host.put(.integer(4), intoWorker: "q")  // kept for a next start, which never comes
            #expect(await supervisor.stop(wait: .seconds(30), cancelTasks: true).isEmpty)
            host.close()
        }
        #expect(await signal.released(), "a worker that ran keeps its host and supervisor alive: a reference cycle")
        #expect(releasedSupervisor == nil && releasedHost == nil)
    }

    /// Values that the host keeps for its scripts, each holding a handle (a worker, an async job) whose object
    /// refers to the host.
    static let keptValues = [
        """
        local w = atasker.background_worker{name = "kept", e = true, fn = function(kw) end}
        w:start()
        atasker.shared("keep"):set("worker", w)
        w:stop()
        """,
        """
        local w = atasker.background_worker{name = "kept", e = true, fn = function(kw) end}
        w:start()
        atasker.supervisor.timeout_warning_func = function(task) w:trigger() end
        w:stop()
        """,
        """
        atasker.supervisor:create_aloop("jobs-loop")
        atasker.supervisor:create_async_job_scheduler("jobs", {aloop = "jobs-loop", default = true})
        local job = atasker.supervisor:create_async_job{target = function() end, interval = 0.01}
        atasker.shared("keep"):set("job", job)
        """,
    ]

    @Test(
        "what a host keeps (a shared table, s.timeout_warning_func, an async job's scheduler) holds no cycle back to it",
        arguments: Self.keptValues)
    func hostValues(script: String) async throws {
        let signal: ReleaseSignal
        weak var releasedSupervisor: TaskSupervisor?
        weak var releasedHost: LuaHost?
        do {
            let (made, logger) = ReleaseSignal.make()
            signal = made
            let supervisor = TaskSupervisor(configuration: .init(poolSize: 4), logger: logger)
            supervisor.start()
            let host = LuaHost(supervisor: supervisor, logger: logger)
            releasedSupervisor = supervisor
            releasedHost = host
            try await host.run(string: script)
            // a job still runs: the stop ends it
            #expect(await supervisor.stop(wait: .seconds(30), cancelTasks: true).isEmpty)
            // the host is dropped without close(): its deinit closes the main state
        }
        #expect(await signal.released(), "a value that the host keeps keeps the host alive: a reference cycle")
        #expect(releasedSupervisor == nil && releasedHost == nil)
    }
}
