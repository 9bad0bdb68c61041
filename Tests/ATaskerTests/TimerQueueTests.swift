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

    @Test("the monotonic clock moves forward and the wall clock is near the epoch time")
    func clocks() {
        let first = Monotonic.now()
        let second = Monotonic.now()
        #expect(second >= first)
        #expect(Monotonic.wallNow() > 1_600_000_000)
    }
}
