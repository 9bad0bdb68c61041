import Synchronization
import Testing

@testable import ATasker

@Suite("TimerQueue")
struct TimerQueueTests {
    @Test("timers fire in deadline order, equal deadlines in scheduling order; cancel works")
    func ordering() throws {
        let timers = TimerQueue(name: "test-timer")
        let log = EventLog()
        let now = Monotonic.now()
        timers.schedule(at: now + 0.06) { log.append("C") }
        let canceled = timers.schedule(at: now + 0.04) { log.append("B") }
        timers.schedule(at: now + 0.02) { log.append("A1") }
        timers.schedule(at: now + 0.02) { log.append("A2") }
        timers.schedule(after: 0.08) { log.append("D") }
        #expect(timers.cancel(canceled))
        #expect(!timers.cancel(canceled))
        #expect(log.wait(for: "D"))
        #expect(log.all == ["A1", "A2", "C", "D"])
        #expect(timers.count == 0)

        // A timer that has fired cannot be cancelled; a past deadline fires at once.
        let past = timers.schedule(at: Monotonic.now() - 1) { log.append("past") }
        #expect(log.wait(for: "past"))
        #expect(!timers.cancel(past))

        // An earlier timer scheduled while the thread sleeps for a later one wakes it.
        let start = Monotonic.now()
        timers.schedule(after: 30) { log.append("far") }
        timers.schedule(after: 0.01) { log.append("near") }
        #expect(log.wait(for: "near"))
        #expect(Monotonic.now() - start < 20)
        timers.shutdown()
        sleep(seconds: 0.02)
        #expect(!log.all.contains("far"))
    }

    /// Runs `body` on a thread of its own 30 ms from now (while the test's thread serves the timers).
    private static func later(_ body: @escaping @Sendable () -> Void) -> Bool {
        PoolThread.spawn(name: "test-later") {
            sleep(seconds: 0.03)
            body()
        }
    }

    @Test("a server that sleeps long, and so wakes up early, fires each timer at or after its deadline")
    func earlyWake() throws {
        let timers = TimerQueue(name: "test-early")
        let start = Monotonic.now()
        // Each deadline is further than `longSleep` from the one before: the server sleeps until just before
        // it, then the rest of the way.
        let deadlines = (1...5).map { start + Double($0) * (TimerQueue.longSleep + 0.003) }
        let firedAt = Mutex<[Double]>([])
        for deadline in deadlines {
            timers.schedule(at: deadline) { firedAt.withLock { $0.append(Monotonic.now()) } }
        }
        // On a busy machine one serve may return several due timers: serve until all have fired.
        while firedAt.withLock({ $0.count }) < deadlines.count {
            guard case .fired(let due, _) = timers.serve(until: start + 30) else {
                Issue.record("the server did not return with a due timer")
                return
            }
            due.forEach { $0() }
        }
        let fired = firedAt.withLock { $0 }
        #expect(fired.count == deadlines.count)
        for (time, deadline) in zip(fired, deadlines) {
            #expect(time >= deadline)
            #expect(time - deadline < 5)
        }
        timers.shutdown()
    }

    @Test("a server gets the due timers to run itself; when none serves, the alarm fires them")
    func serving() throws {
        let timers = TimerQueue(name: "test-serve")
        let log = EventLog()
        let start = Monotonic.now()
        timers.schedule(at: start + 0.02) { log.append("A") }
        let served = timers.serve(until: start + 30)
        guard case .fired(let due, staying: false) = served else {
            Issue.record("serve returned \(served) instead of the due timer")
            return
        }
        let woke = Monotonic.now()
        #expect(woke - start >= 0.019 && woke - start < 20)
        #expect(due.count == 1)
        #expect(log.all.isEmpty)  // the server runs it, not the queue's thread
        due.forEach { $0() }
        #expect(log.all == ["A"])

        // Nobody serves now: the queue's own thread wakes on its alarm.
        timers.schedule(after: 0.02) { log.append("B") }
        #expect(log.wait(for: "B"))

        // A timer scheduled while a server waits for a later one wakes that server.
        timers.schedule(after: 30) { log.append("far") }
        let near = Monotonic.now()
        #expect(Self.later { timers.schedule(after: 0.01) { log.append("near") } })
        guard case .fired(let nearDue, _) = timers.serve(until: near + 20) else {
            Issue.record("the server did not return with the near timer")
            return
        }
        #expect(Monotonic.now() - near < 15)
        nearDue.forEach { $0() }
        #expect(log.all.last == "near")
        timers.shutdown()
    }

    @Test("an interrupt before serving is not lost; idle timeout; shutdown ends a wait")
    func servingEnds() throws {
        let timers = TimerQueue(name: "test-serve-end")
        timers.interruptServer()
        let start = Monotonic.now()
        guard case .interrupted = timers.serve(until: start + 30) else {
            Issue.record("an interrupt made before serve was lost")
            return
        }
        #expect(Monotonic.now() - start < 10)

        let idle = Monotonic.now()
        guard case .idleTimeout = timers.serve(until: idle + 0.03) else {
            Issue.record("serve did not end at its idle deadline")
            return
        }
        #expect(Monotonic.now() - idle >= 0.029)

        // Interrupted while it waits, from another thread.
        #expect(Self.later { timers.interruptServer() })
        guard case .interrupted = timers.serve(until: nil) else {
            Issue.record("serve did not return when interrupted")
            return
        }

        #expect(Self.later { timers.shutdown() })
        guard case .unavailable = timers.serve(until: nil) else {
            Issue.record("serve did not return at the shutdown")
            return
        }
        guard case .unavailable = timers.serve(until: nil) else {
            Issue.record("serve after the shutdown did not return at once")
            return
        }
    }

    @Test("timers close together keep the server serving; the tick after them is its own")
    func staying() throws {
        let timers = TimerQueue(name: "test-stay")
        let log = EventLog()
        let start = Monotonic.now()
        timers.schedule(at: start + 0.02) { log.append("A") }
        timers.schedule(at: start + 0.0203) { log.append("B") }
        timers.schedule(at: start + 0.2) { log.append("C") }
        var rounds: [(count: Int, staying: Bool)] = []
        while log.count(of: "C") == 0 {
            guard case .fired(let due, let staying) = timers.serve(until: start + 30) else {
                Issue.record("serve ended without timers")
                return
            }
            rounds.append((due.count, staying))
            due.forEach { $0() }
        }
        #expect(log.all == ["A", "B", "C"])
        // A and B fire as one round (the server woke late) or as two, the first staying; C (far from
        // any other) is a round of its own, after which the server leaves.
        let shapes = rounds.map { "\($0.count)\($0.staying ? "s" : "")" }
        #expect(shapes == ["1s", "1", "1"] || shapes == ["2", "1"], "rounds: \(shapes)")
        timers.shutdown()
    }

    @Test("the monotonic clock moves forward and the wall clock is near the epoch time")
    func clocks() {
        let first = Monotonic.now()
        let second = Monotonic.now()
        #expect(second >= first)
        #expect(Monotonic.wallNow() > 1_600_000_000)
    }
}
