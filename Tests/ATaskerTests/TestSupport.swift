import Glibc
import Synchronization
import Testing

@testable import ATasker

/// A gate that tasks block on until the test opens it.
final class Gate: Sendable {
    private let isOpen = ConditionLock(false)

    func open() {
        self.isOpen.withLock { $0 = true }
        self.isOpen.broadcast()
    }

    /// Blocks until open, at most `timeout` seconds (a generous bound so that a failing test ends).
    @discardableResult
    func wait(timeout: Double = 30) -> Bool {
        let deadline = Monotonic.now() + timeout
        self.isOpen.lock()
        defer { self.isOpen.unlock() }
        while !self.isOpen.lockedValue {
            if !self.isOpen.wait(until: deadline) {
                return self.isOpen.lockedValue
            }
        }
        return true
    }
}

/// An ordered log of events that a test can wait on.
final class EventLog: Sendable {
    private let events = ConditionLock<[String]>([])

    func append(_ event: String) {
        self.events.withLock { $0.append(event) }
        self.events.broadcast()
    }

    var all: [String] {
        self.events.withLock { $0 }
    }

    func count(of event: String) -> Int {
        self.events.withLock { $0.filter { $0 == event }.count }
    }

    /// Waits until `predicate` holds for the events, at most `timeout` seconds.
    @discardableResult
    func wait(timeout: Double = 30, until predicate: ([String]) -> Bool) -> Bool {
        let deadline = Monotonic.now() + timeout
        self.events.lock()
        defer { self.events.unlock() }
        while !predicate(self.events.lockedValue) {
            if !self.events.wait(until: deadline) {
                return predicate(self.events.lockedValue)
            }
        }
        return true
    }

    /// Waits until the log holds at least `count` events.
    @discardableResult
    func wait(forCount count: Int, timeout: Double = 30) -> Bool {
        self.wait(timeout: timeout) { $0.count >= count }
    }

    /// Waits until the log contains `event`.
    @discardableResult
    func wait(for event: String, timeout: Double = 30) -> Bool {
        self.wait(timeout: timeout) { $0.contains(event) }
    }
}

struct TestFailure: Error, Equatable {
    let message: String
}

/// Sleeps the calling thread (only for negative checks: "this has not happened yet").
func sleep(seconds: Double) {
    usleep(UInt32(seconds * 1_000_000))
}

extension TaskSupervisor {
    /// A started supervisor with quiet latency thresholds unless given.
    static func started(
        poolSize: Int,
        reserveNormal: Int = 0,
        reserveHigh: Int = 0,
        maxSize: Int? = nil,
        timeoutWarning: Double = 60,
        timeoutCritical: Double = 120
    ) -> TaskSupervisor {
        let supervisor = TaskSupervisor(
            configuration: .init(
                poolSize: poolSize,
                reserveNormal: reserveNormal,
                reserveHigh: reserveHigh,
                maxSize: maxSize,
                timeoutWarning: timeoutWarning,
                timeoutCritical: timeoutCritical
            )
        )
        supervisor.start()
        return supervisor
    }

    /// Stops and checks that nothing was left behind (the leak check of every test).
    func finish() {
        let left = self.stop(wait: .seconds(30))
        #expect(left.isEmpty, "tasks still running at the end of a test: \(left)")
        #expect(self.info().tasks == 0, "tasks left at the end of a test")
    }
}

/// Checks `condition` every few milliseconds until it holds, at most `timeout` seconds. Only for
/// states that no event announces (thread counts).
func eventually(timeout: Double = 30, _ condition: () -> Bool) -> Bool {
    let deadline = Monotonic.now() + timeout
    while !condition() {
        if Monotonic.now() > deadline {
            return false
        }
        sleep(seconds: 0.002)
    }
    return true
}
