import Synchronization
import Testing

@testable import ATasker

/// A work registered on an aloop by a test: it records what the aloop asks of it.
final class TestWork: AloopWork {
    let stopping = Atomic<Int>(0)
    let cancelled = Atomic<Int>(0)
    let onCancel: @Sendable () -> Void

    init(onCancel: @escaping @Sendable () -> Void = {}) {
        self.onCancel = onCancel
    }

    func aloopStopping() {
        self.stopping.wrappingAdd(1, ordering: .relaxed)
    }

    func aloopCancel() {
        self.cancelled.wrappingAdd(1, ordering: .relaxed)
        self.onCancel()
    }
}

@Suite("Aloops")
struct AloopTests {
    @Test("jobs run on the aloop's one thread, in the order they were scheduled")
    func jobsInOrder() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "order")
        let log = EventLog()
        for i in 0..<100 {
            loop.schedule {
                log.append(loop.isCurrent && Aloop.current === loop ? "\(i)" : "elsewhere")
            }
        }
        #expect(log.wait(forCount: 100))
        #expect(log.all == (0..<100).map { "\($0)" })
        #expect(!loop.isCurrent)
        #expect(loop.stop(wait: .seconds(30)))
        #expect(loop.isStopped)
        #expect(!loop.schedule {})
        supervisor.finish()
    }

    @Test("timers fire at their monotonic deadlines, in deadline order; a cancelled timer never fires")
    func timers() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "timers")
        let log = EventLog()
        let start = Monotonic.now()
        let late = Recorder<Double>()
        loop.schedule(after: 0.15) {
            late.append(Monotonic.now() - (start + 0.15))
            log.append("c")
        }
        loop.schedule(after: 0.05) { log.append("a") }
        let cancelled = try #require(loop.schedule(after: 0.1) { log.append("x") })
        loop.schedule(at: start + 0.1) { log.append("b") }
        #expect(loop.cancel(cancelled))
        #expect(!loop.cancel(cancelled))
        #expect(log.wait(forCount: 3))
        sleep(seconds: 0.1)
        #expect(log.all == ["a", "b", "c"])
        #expect(late.all.allSatisfy { $0 >= 0 && $0 < 1 })
        loop.stop()
        supervisor.finish()
    }

    @Test("a job scheduled from another thread wakes the aloop at once, without waiting for its timer")
    func wakesForJobs() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "wake")
        let log = EventLog()
        loop.schedule(after: 60) { log.append("late") }
        sleep(seconds: 0.05)  // the aloop sleeps until its timer now
        let sent = Monotonic.now()
        let took = Recorder<Double>()
        loop.schedule {
            took.append(Monotonic.now() - sent)
            log.append("job")
        }
        #expect(log.wait(for: "job"))
        #expect(try #require(took.all.first) < 5)
        #expect(!log.all.contains("late"))
        loop.stop()
        supervisor.finish()
    }

    @Test("run awaits a closure's result on the aloop; a stopped aloop refuses it")
    func runAwaits() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "run")
        let answer = try await loop.run { () -> Int in
            precondition(loop.isCurrent)
            return 6 * 7
        }
        #expect(answer == 42)
        await #expect(throws: TestFailure.self) {
            try await loop.run { () -> Int in throw TestFailure(message: "no") }
        }
        loop.stop()
        await #expect(throws: AloopError.self) {
            try await loop.run { 1 }
        }
        await supervisor.stop()
    }

    @Test("backgroundTask returns a started task that completes with the closure's result")
    func backgroundTask() async throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "tasks")
        let gate = Gate()
        let task = loop.backgroundTask(name: "sum") { () -> Int in
            gate.wait()
            return (1...10).reduce(0, +)
        }
        #expect(task.status == .started)
        #expect(!supervisor.isIdle)  // a pending aloop task keeps the supervisor busy
        gate.open()
        let sum: Int = try await task.value()
        #expect(sum == 55)
        let failed = loop.backgroundTask { () -> Int in throw TestFailure(message: "bad") }
        await failed.wait()
        #expect(failed.status == .failed)
        await supervisor.waitUntilIdle()
        loop.stop()
        let refused = loop.backgroundTask { 1 }
        #expect(refused.status == .failed)
        #expect((refused.error as? AloopError)?.code == .notRunning)
        await supervisor.stop()
    }

    @Test("a stopping aloop runs until its work ends; cancelTasks and the wait deadline cancel the work left")
    func stopWaitsForWork() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "work")
        let work = TestWork()
        #expect(loop.register(work, whileStopping: false) == .registered)
        #expect(!loop.stop(wait: .seconds(0.1)))  // the deadline passes: the work left is cancelled
        #expect(work.stopping.load(ordering: .relaxed) == 1)
        #expect(work.cancelled.load(ordering: .relaxed) == 1)
        #expect(!loop.isStopped)
        #expect(loop.schedule {})  // a stopping aloop still runs jobs
        #expect(loop.register(TestWork(), whileStopping: false) == .stopping)
        loop.unregister(work)
        #expect(loop.stop(wait: .seconds(30)))

        let cancelling = try supervisor.createAloop(named: "cancel")
        let cancelled = Box<TestWork>()
        let work2 = TestWork(onCancel: { cancelling.schedule { cancelling.unregister(cancelled.value!) } })
        cancelled.value = work2
        #expect(cancelling.register(work2, whileStopping: false) == .registered)
        #expect(cancelling.stop(wait: .seconds(30), cancelTasks: true))
        #expect(work2.cancelled.load(ordering: .relaxed) == 1)
        cancelled.value = nil  // work2 -> its onCancel -> the box -> work2: a cycle of the test's own
        supervisor.finish()
    }

    @Test("the supervisor keeps its aloops by name, makes the default one on demand, and stops them")
    func registry() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        #expect(try supervisor.defaultAloop(creating: false) == nil)
        let first = try supervisor.createAloop(named: "one", start: false)
        #expect(!first.isActive)
        #expect(throws: AloopError.self) { try supervisor.createAloop(named: "one") }
        try supervisor.startAloop(named: "one")
        #expect(first.isActive)
        let made = try #require(try supervisor.defaultAloop(creating: true))
        #expect(made.name == TaskSupervisor.defaultAloopName && made.isActive)
        try supervisor.setDefaultAloop(named: "one")
        #expect(supervisor.defaultAloop === first)
        #expect(throws: AloopError.self) { try supervisor.setDefaultAloop(named: "none") }
        #expect(supervisor.aloop(named: "one") === first)
        #expect(supervisor.aloops.map(\.name) == ["one", "default"])
        #expect(try supervisor.stopAloop(named: "one"))
        #expect(first.isStopped)
        try supervisor.startAloop(named: "one")
        #expect(first.isActive)
        supervisor.finish()
        #expect(supervisor.aloops.allSatisfy { $0.isStopped })
        #expect(throws: AloopError.self) { try supervisor.createAloop(named: "late") }
    }
}

@Suite("Workers on aloops")
struct AloopWorkerTests {
    @Test("an interval worker bound to an aloop runs its executions on the aloop's thread, on schedule")
    func intervalOnAloop() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "iv")
        let log = EventLog()
        let worker = try IntervalWorker(supervisor: supervisor, name: "iv", interval: 0.02) { _ in
            log.append(Aloop.current === loop ? "on" : "off")
            return true
        }
        try worker.bind(to: loop)
        try worker.start()
        #expect(log.wait(forCount: 5))
        worker.stop()
        #expect(log.all.allSatisfy { $0 == "on" })
        #expect(loop.pendingWork == 0)
        #expect(throws: Never.self) { try worker.bind(to: nil) }
        loop.stop()
        supervisor.finishWorkers()
    }

    @Test("a suspended execution keeps the slot while the aloop runs other jobs, and ends when resumed")
    func suspension() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "susp")
        let log = EventLog()
        let overlap = OverlapDetector()
        let worker = try QueueWorker<Int>(supervisor: supervisor, name: "q") { item, w in
            overlap.enter()
            log.append("begin \(item)")
            let resumption = w.suspendExecution()
            loop.schedule(after: 0.02) {
                log.append("end \(item)")
                overlap.leave()
                resumption.finish(goOn: item != 3)
            }
            return true
        }
        try worker.bind(to: loop)
        try worker.start()
        for i in 1...4 {
            worker.put(i)
        }
        loop.schedule { log.append("other job") }
        #expect(log.wait(for: "end 3"))
        #expect(worker.stop(wait: .seconds(30)))
        #expect(overlap.overlaps == 0)
        #expect(worker.executions == 3)  // the third returned false: the fourth item is dropped
        let events = log.all
        #expect(events.prefix(2) == ["begin 1", "other job"])
        #expect(events.filter { $0.hasPrefix("begin") } == ["begin 1", "begin 2", "begin 3"])
        loop.stop()
        supervisor.finishWorkers()
    }

    @Test("an error that ends a suspended execution is counted and reported; the worker goes on")
    func suspendedError() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "err")
        let errors = EventLog()
        let hooks = Worker.Hooks(onError: { _, error in errors.append("\(error)") })
        let worker = try EventWorker(supervisor: supervisor, name: "ev", hooks: hooks) { w in
            let resumption = w.suspendExecution()
            loop.schedule { resumption.fail(TestFailure(message: "boom")) }
            return true
        }
        try worker.bind(to: loop)
        try worker.start()
        worker.trigger()
        #expect(errors.wait(forCount: 1))
        #expect(eventually { worker.executions == 1 })  // a trigger during an execution would be dropped
        worker.trigger()
        #expect(errors.wait(forCount: 2))
        worker.stop()
        #expect(worker.errors == 2 && worker.executions == 2)
        loop.stop()
        supervisor.finishWorkers()
    }

    @Test("a plain worker on an aloop takes turns with the aloop's other jobs")
    func plainTakesTurns() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "plain")
        let runs = Atomic<Int>(0)
        let worker = try BackgroundWorker(supervisor: supervisor, name: "spin") { _ in
            runs.wrappingAdd(1, ordering: .relaxed)
            return true
        }
        try worker.bind(to: loop)
        try worker.start()
        let log = EventLog()
        #expect(eventually { runs.load(ordering: .relaxed) > 100 })
        loop.schedule { log.append("job") }
        #expect(log.wait(for: "job"))
        worker.stop()
        loop.stop()
        supervisor.finishWorkers()
    }

    @Test("stopping an aloop stops its workers; a worker cannot start on a stopped aloop")
    func aloopStopStopsWorkers() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "stopper")
        let worker = try IntervalWorker(supervisor: supervisor, name: "tick", interval: 0.01) { _ in true }
        try worker.bind(to: loop)
        try worker.start()
        #expect(loop.stop(wait: .seconds(30)))
        #expect(worker.isStopped)
        try worker.start()
        #expect(eventually { worker.isStopped })
        supervisor.finishWorkers()
    }

    @Test("the supervisor's stop waits for a suspended execution on an aloop")
    func supervisorStopWaits() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let loop = try supervisor.createAloop(named: "slow")
        let log = EventLog()
        let worker = try EventWorker(supervisor: supervisor, name: "slow") { w in
            let resumption = w.suspendExecution()
            loop.schedule(after: 0.2) {
                log.append("done")
                resumption.finish(goOn: true)
            }
            return true
        }
        try worker.bind(to: loop)
        try worker.start()
        worker.trigger()
        sleep(seconds: 0.05)
        let left = supervisor.stop(wait: .seconds(30))
        #expect(left.isEmpty)
        #expect(log.all == ["done"])
        #expect(worker.isStopped && loop.isStopped)
    }
}
