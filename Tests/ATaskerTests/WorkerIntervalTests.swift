import Synchronization
import Testing

@testable import ATasker

@Suite("Workers: interval schedule, delay, trigger", .serialized)
struct WorkerIntervalTests {
    @Test("a slow executor never overlaps itself; the ticks it overruns are skipped and counted")
    func noOverlap() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let detector = OverlapDetector()
        let starts = Recorder<Double>()
        let origin = Monotonic.now()
        let worker = try IntervalWorker(supervisor: supervisor, interval: 0.01) { _ in
            detector.enter()
            starts.append(Monotonic.now())
            sleep(seconds: 0.035)
            detector.leave()
            return true
        }
        try worker.start()
        #expect(eventually { worker.executions >= 8 })
        worker.stop()
        #expect(detector.overlaps == 0)
        let executions = worker.executions
        // Each 35 ms execution overruns at least 3 ticks of 10 ms.
        #expect(worker.skippedTicks >= 3 * (executions - 1))
        // Skipped ticks are not piled up: each execution starts after the previous one ended, at a
        // tick (not back to back with it).
        let times = starts.all
        for (earlier, later) in zip(times, times.dropFirst()) {
            #expect(later - earlier >= 0.035)
        }
        let deviations = times.map { time in
            abs(time - (origin + ((time - origin) / 0.01).rounded(.down) * 0.01))
        }.sorted()
        #expect(deviations[deviations.count / 2] < 0.004)
        supervisor.finishWorkers()
    }

    @Test("the schedule does not drift: the k-th execution starts near start + k·interval")
    func driftFree() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let starts = Recorder<Double>()
        let enough = Gate()
        let interval = 0.02
        let worker = try IntervalWorker(supervisor: supervisor, interval: interval) { _ in
            starts.append(Monotonic.now())
            if starts.all.count == 25 {
                enough.open()
            }
            // Some work, so that a schedule of "interval after each start" would drift by now.
            sleep(seconds: 0.003)
            return true
        }
        let origin = Monotonic.now()
        try worker.start()
        // 25 executions, however long a busy machine makes them take
        #expect(enough.wait())
        worker.stop()
        let times = starts.all
        #expect(times.count >= 25)
        var deviations: [Double] = []
        for time in times {
            let tick = ((time - origin) / interval).rounded()
            deviations.append(time - (origin + tick * interval))
        }
        let sorted = deviations.map { abs($0) }.sorted()
        let median = sorted[sorted.count / 2]
        print(
            "interval 20 ms: \(times.count) executions, median deviation \(median * 1000) ms, max \(sorted.last! * 1000) ms"
        )
        #expect(median < 0.005)
        // The last executions are as close to their ticks as the first ones: no cumulative drift. An
        // executor of 3 ms every 20 ms would add up to 75 ms over 25 runs. (The median of the last five, so that
        // one execution that a busy machine delayed does not decide.)
        let lastFive = deviations.suffix(5).map { abs($0) }.sorted()
        #expect(lastFive[2] < 0.008)
        let last = try #require(times.last)
        let lastTick = ((last - origin) / interval).rounded()
        #expect(lastTick + Double(worker.skippedTicks) >= Double(times.count - 1))
        supervisor.finishWorkers()
    }

    @Test("delay waits after each execution ends; delayBefore before each one")
    func delays() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let spans = Recorder<(start: Double, end: Double)>()
        let worker = try IntervalWorker(supervisor: supervisor, delay: 0.03) { _ in
            let start = Monotonic.now()
            sleep(seconds: 0.01)
            spans.append((start, Monotonic.now()))
            return spans.all.count < 4
        }
        try worker.start()
        #expect(eventually { worker.isStopped })
        var all = spans.all
        #expect(all.count == 4)
        for (earlier, later) in zip(all, all.dropFirst()) {
            #expect(later.start - earlier.end >= 0.029)
        }

        let before = Recorder<(start: Double, end: Double)>()
        let started = Monotonic.now()
        let delayed = try IntervalWorker(supervisor: supervisor, delay: 0.01, delayBefore: 0.04) { _ in
            before.append((Monotonic.now(), Monotonic.now()))
            return before.all.count < 3
        }
        try delayed.start()
        #expect(eventually { delayed.isStopped })
        all = before.all
        #expect(all.count == 3)
        #expect(all[0].start - started >= 0.039)
        for (earlier, later) in zip(all, all.dropFirst()) {
            #expect(later.start - earlier.end >= 0.049)
        }

        // delayBefore with an interval shifts the whole schedule once.
        let shifted = Recorder<Double>()
        let origin = Monotonic.now()
        let intervalWorker = try IntervalWorker(supervisor: supervisor, interval: 0.02, delayBefore: 0.05) { _ in
            shifted.append(Monotonic.now())
            return shifted.all.count < 3
        }
        try intervalWorker.start()
        #expect(eventually { intervalWorker.isStopped })
        #expect(shifted.all.count == 3)
        #expect(shifted.all[0] - origin >= 0.049)
        supervisor.finishWorkers()
    }

    @Test("trigger runs at once without moving the schedule, and once more after a running execution")
    func trigger() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let log = EventLog()
        let gate = Gate()
        let worker = try IntervalWorker(supervisor: supervisor, interval: 30, delayBefore: 30) { worker in
            log.append("run")
            if log.count(of: "run") == 1 {
                gate.wait()
            }
            return true
        }
        #expect(!worker.trigger())
        try worker.start()
        sleep(seconds: 0.02)
        #expect(log.all.isEmpty)
        #expect(worker.trigger())
        #expect(log.wait(for: "run"))
        // Two triggers during the execution: one more run right after it.
        #expect(worker.trigger())
        #expect(worker.trigger())
        gate.open()
        #expect(log.wait(forCount: 2))
        sleep(seconds: 0.03)
        #expect(log.all.count == 2)
        #expect(worker.executions == 2)
        #expect(worker.skippedTicks == 0)
        // The schedule did not move: the first tick is still 30 s after the start.
        let timer = try #require(worker.core.withLock { $0.timer })
        #expect(timer.deadline - Monotonic.now() > 20)
        supervisor.finishWorkers()
    }

    @Test("bad schedules are refused; start overrides change the schedule")
    func validation() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        for (interval, delay, delayBefore) in [
            (1.0, 1.0, nil), (-1, nil, nil), (0, nil, nil), (nil, -1, nil), (nil, nil, -0.5),
        ]
            as [(Double?, Double?, Double?)]
        {
            do {
                _ = try IntervalWorker(
                    supervisor: supervisor, interval: interval, delay: delay, delayBefore: delayBefore
                ) { _ in true }
                Issue.record("accepted interval \(String(describing: interval)) delay \(String(describing: delay))")
            } catch let error as WorkerError {
                #expect(error.code == .invalidArgument)
            }
        }
        let log = EventLog()
        let worker = try IntervalWorker(supervisor: supervisor, name: "slow", interval: 60) { _ in
            log.append("run")
            return true
        }
        #expect(throws: WorkerError.self) { try worker.start(interval: 1, delay: 1) }
        #expect(throws: WorkerError.self) { try worker.start(delayBefore: -1) }
        #expect(worker.isStopped)
        try worker.start(interval: 0.01)
        #expect(worker.interval == 0.01 && worker.delay == nil)
        #expect(log.wait(forCount: 3))
        worker.stop()
        try worker.start(delay: 0.5, delayBefore: 0)
        #expect(worker.interval == nil && worker.delay == 0.5)
        worker.stop()
        supervisor.finishWorkers()
    }
}
