import Logging
import Synchronization
import Testing

@testable import ATasker

/// A log handler that keeps messages, for checking latency reports.
struct CapturingLogHandler: LogHandler {
    let messages: EventLog
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        self.messages.append("\(event.level): \(event.message)")
    }
}

@Suite("Start latency warnings")
struct LatencyTests {
    @Test("warning and critical fire once per task, also for a task still waiting")
    func waitingTask() throws {
        let messages = EventLog()
        let logger = Logger(label: "latency") { _ in CapturingLogHandler(messages: messages) }
        let supervisor = TaskSupervisor(
            configuration: .init(
                poolSize: 1, reserveNormal: 0, reserveHigh: 0, timeoutWarning: 0.05, timeoutCritical: 0.1),
            logger: logger
        )
        let events = EventLog()
        supervisor.setTimeoutHandlers(
            warning: { task in events.append("warning \(task.name ?? "") \(task.status)") },
            critical: { task in events.append("critical \(task.name ?? "") \(task.status)") }
        )
        supervisor.start()
        let gate = Gate()
        let blocker = supervisor.submit(name: "blocker") { _ in
            events.append("blocker started")
            gate.wait()
            return nil
        }
        #expect(events.wait(for: "blocker started"))
        let waiting = supervisor.submit(name: "waiting") { _ in nil }
        // Both levels fire while the task is still queued (the pool's only thread is busy).
        #expect(events.wait(for: "critical waiting queued"))
        #expect(events.all.contains("warning waiting queued"))
        #expect(
            events.all.firstIndex(of: "warning waiting queued")! < events.all.firstIndex(of: "critical waiting queued")!
        )
        #expect(
            messages.wait { messages in
                messages.contains { $0.hasPrefix("critical: task \(waiting.id) (waiting) not started after 0.") }
            }
        )
        #expect(messages.all.contains { $0.contains("increase the pool size or decrease the number of workers") })
        gate.open()
        #expect(blocker.wait(timeout: 30))
        #expect(waiting.wait(timeout: 30))
        supervisor.waitUntilIdle()
        // Exactly once per level for the waiting task, even though it then started late.
        #expect(events.count(of: "warning waiting queued") == 1)
        #expect(events.count(of: "critical waiting queued") == 1)
        #expect(events.all.filter { $0.contains("waiting") }.count == 2)
        supervisor.finish()
    }

    @Test("a task that starts late is reported at start when the timer has not reported it")
    func atStart() throws {
        let messages = EventLog()
        let logger = Logger(label: "latency") { _ in CapturingLogHandler(messages: messages) }
        let supervisor = TaskSupervisor(
            configuration: .init(
                poolSize: 1, reserveNormal: 0, reserveHigh: 0, timeoutWarning: 60, timeoutCritical: 60),
            logger: logger
        )
        let events = EventLog()
        supervisor.setTimeoutHandlers(
            warning: { task in events.append("warning \(task.name ?? "") \(task.status)") },
            critical: { task in events.append("critical \(task.name ?? "") \(task.status)") }
        )
        supervisor.start()
        let gate = Gate()
        supervisor.submit(name: "blocker") { _ in
            events.append("blocker started")
            gate.wait()
            return nil
        }
        #expect(events.wait(for: "blocker started"))
        let late = supervisor.submit(name: "late") { _ in nil }
        sleep(seconds: 0.1)
        // Lower the thresholds without letting the timer see the task first: the timer is re-armed
        // for 0.05 s after the task was queued, which has passed, so it may fire at once; either way
        // each level is reported exactly once.
        supervisor.setTimeouts(warning: 0.05, critical: 0.08)
        gate.open()
        #expect(late.wait(timeout: 30))
        #expect(events.wait { $0.contains { $0.hasPrefix("critical late") } })
        sleep(seconds: 0.05)
        #expect(events.all.filter { $0.hasPrefix("warning late") }.count == 1)
        #expect(events.all.filter { $0.hasPrefix("critical late") }.count == 1)
        supervisor.finish()
    }
}
