import Glibc
import Testing

@testable import ATasker

@Suite("Scheduling: priorities, reserves, pool sizes")
struct SchedulingTests {
    @Test("reserves admit normal, high and critical tasks in order; a low task waits")
    func reserves() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2, reserveNormal: 1, reserveHigh: 1)
        let log = EventLog()
        var gates: [String: Gate] = [:]
        for name in ["b1", "b2", "N", "H1", "H2", "C", "L"] {
            gates[name] = Gate()
        }
        let allGates = gates
        func blocking(_ name: String) -> @Sendable (SupervisorTask) -> (any Sendable)? {
            { _ in
                log.append(name)
                allGates[name]!.wait()
                return nil
            }
        }
        let b1 = supervisor.submit(priority: .low, name: "b1", blocking("b1"))
        let b2 = supervisor.submit(priority: .low, name: "b2", blocking("b2"))
        #expect(log.wait(forCount: 2))
        let low = supervisor.submit(priority: .low, name: "L", blocking("L"))
        let normal = supervisor.submit(priority: .normal, name: "N", blocking("N"))
        let high1 = supervisor.submit(priority: .high, name: "H1", blocking("H1"))
        let high2 = supervisor.submit(priority: .high, name: "H2", blocking("H2"))
        let critical = supervisor.submit(priority: .critical, name: "C", blocking("C"))
        #expect(log.wait(forCount: 5))
        // Nothing has finished, so admission cannot change: these are exact.
        #expect(Set(log.all) == ["b1", "b2", "N", "H1", "C"])
        #expect(low.status == .queued)
        #expect(high2.status == .queued)
        let info = supervisor.info()
        #expect(info.threadTasksCount == 5)
        #expect(info.threadTasks == [b1.id, b2.id, normal.id, high1.id, critical.id])
        #expect(info.queued[.low] == 1)
        #expect(info.queued[.high] == 1)
        #expect(info.queued[.normal] == 0)
        #expect(info.queuedCount == 2)
        #expect(info.threadsCount == 5)  // the critical task went beyond max size 4

        // Two tasks end: 3 run, so the waiting HIGH may start (3 < 4) and the LOW may not (3 >= 2).
        allGates["C"]!.open()
        allGates["b1"]!.open()
        #expect(log.wait(for: "H2"))
        #expect(critical.wait(timeout: 30) && b1.wait(timeout: 30))
        #expect(low.status == .queued)

        // Everything else ends; the LOW starts last.
        for name in ["b2", "N", "H1", "H2", "L"] {
            allGates[name]!.open()
        }
        #expect(low.wait(timeout: 30))
        #expect(log.all.last == "L")
        #expect(log.all.count == 7)
        supervisor.finish()
    }

    @Test("a more urgent waiting task starts first; FIFO within one priority")
    func urgencyOrder() throws {
        let supervisor = TaskSupervisor.started(poolSize: 1)
        let log = EventLog()
        let gate = Gate()
        supervisor.submit(priority: .low) { _ in
            log.append("blocker")
            gate.wait()
            return nil
        }
        #expect(log.wait(for: "blocker"))
        var tasks: [SupervisorTask] = []
        for (name, priority) in [
            ("L1", TaskPriority.low), ("N1", .normal), ("L2", .low), ("H1", .high),
            ("N2", .normal), ("H2", .high), ("X", TaskPriority(rawValue: 70)),
        ] {
            tasks.append(
                supervisor.submit(priority: priority, name: name) { _ in
                    log.append(name); return nil
                })
        }
        gate.open()
        for task in tasks {
            #expect(task.wait(timeout: 30))
        }
        #expect(log.all == ["blocker", "H1", "H2", "X", "N1", "N2", "L1", "L2"])
        supervisor.finish()
    }

    @Test("pool size 0 is unlimited")
    func unlimited() throws {
        let supervisor = TaskSupervisor.started(poolSize: 0)
        let log = EventLog()
        let gate = Gate()
        let tasks = (0..<24).map { index in
            supervisor.submit(priority: .low) { _ in
                log.append("t\(index)")
                gate.wait()
                return nil
            }
        }
        #expect(log.wait(forCount: 24))
        #expect(supervisor.info().threadTasksCount == 24)
        #expect(supervisor.info().threadMaxSize == nil)
        gate.open()
        for task in tasks {
            #expect(task.wait(timeout: 30))
        }
        supervisor.finish()
    }

    @Test("growing the pool while running admits waiting tasks at once; shrinking lets tasks finish")
    func resize() throws {
        let supervisor = TaskSupervisor.started(poolSize: 1)
        let log = EventLog()
        let gate = Gate()
        let tasks = (0..<4).map { index in
            supervisor.submit(priority: .low) { _ in
                log.append("t\(index)")
                gate.wait()
                return nil
            }
        }
        #expect(log.wait(forCount: 1))
        #expect(supervisor.info().queuedCount == 3)
        supervisor.setThreadPool(poolSize: 3)
        #expect(log.wait(forCount: 3))
        #expect(supervisor.info().threadTasksCount == 3)
        #expect(supervisor.configuration.poolSize == 3)
        supervisor.setThreadPool(poolSize: 1, maxSize: 1)
        #expect(supervisor.info().threadTasksCount == 3)  // running tasks are never interrupted
        gate.open()
        for task in tasks {
            #expect(task.wait(timeout: 30))
        }
        #expect(log.all.count == 4)
        #expect(supervisor.info().threadMaxSize == 1)
        supervisor.finish()
    }

    @Test("tasks submitted before start wait for it")
    func submitBeforeStart() async throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2))
        #expect(!supervisor.isStarted)
        let task = supervisor.submit { _ in 42 }
        sleep(seconds: 0.05)
        #expect(task.status == .queued)
        supervisor.start()
        supervisor.start()  // idempotent
        #expect(try await task.value(as: Int.self) == 42)
        #expect(supervisor.isStarted)
        supervisor.finish()
    }

    @Test("pool threads are named and created on demand")
    func threadNames() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        #expect(supervisor.info().threadsCount == 0)
        let name = supervisor.submit { _ in Self.currentThreadName() }
        #expect(name.wait(timeout: 30))
        let threadName = try #require(name.result as? String)
        #expect(threadName.hasPrefix("atasker-pool-"))
        #expect(supervisor.info().threadsCount == 1)
        supervisor.finish()
    }

    @Test("minSize threads are kept ready")
    func minSize() throws {
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 4, minSize: 3))
        supervisor.start()
        #expect(eventually { supervisor.info().idleThreadsCount == 3 })
        #expect(supervisor.info().threadsCount == 3)
        supervisor.finish()
    }

    @Test("extra idle threads exit after the idle timeout; a critical task may exceed max size")
    func idleTimeout() throws {
        let supervisor = TaskSupervisor(
            configuration: .init(poolSize: 1, reserveNormal: 0, reserveHigh: 0, idleThreadTimeout: 0.05)
        )
        supervisor.start()
        let log = EventLog()
        let gate = Gate()
        let blocker = supervisor.submit { _ in
            log.append("blocker"); gate.wait(); return nil
        }
        #expect(log.wait(for: "blocker"))
        let critical = supervisor.submit(priority: .critical) { _ in
            log.append("critical"); return nil
        }
        #expect(critical.wait(timeout: 30))
        gate.open()
        #expect(blocker.wait(timeout: 30))
        #expect(eventually { supervisor.info().threadsCount == 0 })
        // New work creates threads again.
        let again = supervisor.submit { _ in 1 }
        #expect(again.wait(timeout: 30))
        supervisor.finish()
    }

    /// A started supervisor with one pool thread, and a started interval worker on it that logs "tick".
    private static func oneThread(ticking interval: Double, into log: EventLog) throws -> (
        supervisor: TaskSupervisor, worker: IntervalWorker
    ) {
        let supervisor = TaskSupervisor(
            configuration: .init(poolSize: 1, reserveNormal: 0, reserveHigh: 0, minSize: 1, maxSize: 1)
        )
        supervisor.start()
        let worker = try IntervalWorker(supervisor: supervisor, name: "ticks", interval: interval) { _ in
            log.append("tick")
            return true
        }
        try worker.start()
        return (supervisor, worker)
    }

    @Test("a pool thread that serves the timers is interrupted for a task at once")
    func leaderInterrupted() throws {
        // One thread: between the worker's ticks it serves the timers, with the next tick 30 s away.
        let log = EventLog()
        let (supervisor, worker) = try Self.oneThread(ticking: 30, into: log)
        #expect(log.wait(for: "tick"))
        for round in 0..<20 {
            sleep(seconds: 0.005)
            let submitted = Monotonic.now()
            let task = supervisor.submit { _ in Monotonic.now() }
            #expect(task.wait(timeout: 30))
            let started = try #require(task.result as? Double)
            #expect(started - submitted < 5, "round \(round): the task waited for the timers")
        }
        #expect(supervisor.info().threadsCount == 1)
        worker.stop(wait: .seconds(30))
        supervisor.finish()
    }

    @Test("timers fire on time while every pool thread is busy")
    func timersWhilePoolBusy() throws {
        let log = EventLog()
        let (supervisor, worker) = try Self.oneThread(ticking: 0.02, into: log)
        #expect(log.wait(timeout: 30) { $0.count >= 3 })
        // The only thread runs a long task: the worker's ticks wait for it (its executions are pool
        // tasks), but a timer still fires, on the timer queue's own thread.
        let gate = Gate()
        let blocker = supervisor.submit { _ in
            log.append("blocker")
            gate.wait()
            return nil
        }
        #expect(log.wait(for: "blocker"))
        let armed = Monotonic.now()
        supervisor.timers.schedule(after: 0.05) { log.append("timer") }
        #expect(log.wait(for: "timer"))
        #expect(Monotonic.now() - armed < 10)
        let ticks = log.count(of: "tick")
        sleep(seconds: 0.1)
        #expect(log.count(of: "tick") == ticks)
        gate.open()
        #expect(blocker.wait(timeout: 30))
        #expect(log.wait(timeout: 30) { $0.filter { $0 == "tick" }.count >= ticks + 2 })
        worker.stop(wait: .seconds(30))
        supervisor.finish()
    }

    @Test("a burst of submissions wakes one idle thread; a submission on its own wakes its own")
    func wakeUpsOfBurstsAndSingleSubmissions() {
        var machine = SupervisorStateMachine(configuration: .init(poolSize: 8, minSize: 4))
        machine.awakeLimit = 8  // (the cap on awake threads is the next test's)
        var effects = SupervisorStateMachine.Effects()
        let started = machine.start(&effects)
        #expect(started && effects.spawnNumbers.count == 4)
        // The four threads start: the first serves the timers (the leader), the others wait.
        var steps: [SupervisorStateMachine.ThreadStep] = []
        for _ in 0..<4 {
            var spawned = SupervisorStateMachine.Effects()
            steps.append(machine.threadStep(.spawned, effects: &spawned))
        }
        #expect(steps.filter { if case .wait = $0 { true } else { false } }.count == 3)
        #expect(machine.idleThreads == 3)

        func submit(at now: Double) -> Int {
            let task = SupervisorTask(priority: .normal, name: nil, supervisor: nil, status: .queued, queuedAt: now)
            var effects = SupervisorStateMachine.Effects()
            let accepted = machine.submit(
                TaskQueue.Entry(task: task) { _ in nil }, delay: nil, now: now, effects: &effects)
            #expect(accepted)
            return effects.signals
        }
        // A burst: the first submission wakes a thread; the next ones, microseconds later, leave their tasks
        // to it (it wakes more when it comes).
        let start = 1000.0
        let burst = [submit(at: start), submit(at: start + 0.000_003), submit(at: start + 0.000_006)]
        #expect(burst == [1, 0, 0])
        // A submission long after the one before, while that thread has still not come, wakes another one
        // rather than wait behind it.
        let alone = submit(at: start + 0.001)
        #expect(alone == 1)
    }

    @Test("wake-ups stop at the cap on awake threads; the wake timer then wakes threads for every ready task")
    func wakeUpsStopAtTheCap() throws {
        var machine = SupervisorStateMachine(configuration: .init(poolSize: 8, minSize: 4))
        machine.awakeLimit = 1
        var effects = SupervisorStateMachine.Effects()
        let started = machine.start(&effects)
        #expect(started)
        for _ in 0..<4 {
            var spawned = SupervisorStateMachine.Effects()
            _ = machine.threadStep(.spawned, effects: &spawned)
        }
        #expect(machine.idleThreads == 3)  // and the leader
        func submit(at now: Double) -> SupervisorStateMachine.Effects {
            let task = SupervisorTask(priority: .normal, name: nil, supervisor: nil, status: .queued, queuedAt: now)
            var effects = SupervisorStateMachine.Effects()
            let accepted = machine.submit(
                TaskQueue.Entry(task: task) { _ in nil }, delay: nil, now: now, effects: &effects)
            #expect(accepted)
            return effects
        }
        // The first submission wakes a thread; one that comes alone later does not wake a second one (one thread
        // is awake, the cap), nor the leader: it arms the wake timer.
        let first = submit(at: 1000)
        #expect(first.signals == 1 && first.wakeTimer == nil && !first.interruptLeader)
        let alone = submit(at: 1000.001)
        #expect(alone.signals == 0 && !alone.interruptLeader)
        let timer = try #require(alone.wakeTimer)
        // The woken thread takes a task and does not fan out either.
        var woke = SupervisorStateMachine.Effects()
        guard case .run = machine.threadStep(.woke(timedOut: false), effects: &woke) else {
            Issue.record("the woken thread did not take a task")
            return
        }
        #expect(woke.signals == 0)
        // The timer fires: the task still ready gets a thread, whatever the cap; a stale timer does nothing.
        var fired = SupervisorStateMachine.Effects()
        machine.wakeTimerFired(timer, effects: &fired)
        #expect(fired.signals == 1)
        var stale = SupervisorStateMachine.Effects()
        machine.wakeTimerFired(timer, effects: &stale)
        #expect(stale.signals == 0 && stale.wakeTimer == nil)
    }

    @Test("tasks that wait for each other all start, whatever the CPUs: the cap on wake-ups never holds one back")
    func blockedTasksDoNotHoldOthersBack() {
        let count = SupervisorStateMachine.cpuCount + 6
        // min_size: the threads never time out of their idle wait (which would start a held-back task too)
        let supervisor = TaskSupervisor(
            configuration: .init(poolSize: count, minSize: count, timeoutWarning: 60, timeoutCritical: 120))
        supervisor.start()
        // Twice: the pool may still be making its threads in the first round (a new thread is not held back by
        // the cap); in the second the tasks find them idle, and the cap decides which ones are woken.
        for round in 1...2 {
            let log = EventLog()
            let gate = Gate()
            var tasks: [SupervisorTask] = []
            for i in 0..<count {
                tasks.append(
                    supervisor.submit(name: "t\(i)") { _ in
                        log.append("started")
                        // every task blocks its thread until all of them have started
                        return gate.wait(timeout: 120)  // (longer than the wait for their starts below)
                    })
            }
            #expect(
                log.wait(forCount: count), "round \(round): only \(log.count(of: "started")) of \(count) tasks started")
            gate.open()
            for task in tasks {
                #expect(task.wait(timeout: 30))
                #expect(task.result as? Bool == true)
            }
            if round == 1 {
                #expect(eventually { supervisor.info().threadsCount == count })
            }
        }
        supervisor.finish()
    }

    static func currentThreadName() -> String {
        var buffer = [UInt8](repeating: 0, count: 64)
        let descriptor = open("/proc/thread-self/comm", O_RDONLY)
        guard descriptor >= 0 else {
            return ""
        }
        defer { close(descriptor) }
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, 63) }
        return String(decoding: buffer.prefix(max(0, count)), as: UTF8.self)
            .trimmingCharacters(in: "\n")
    }
}

extension String {
    fileprivate func trimmingCharacters(in character: Character) -> String {
        var result = self
        while result.last == character {
            result.removeLast()
        }
        return result
    }
}
