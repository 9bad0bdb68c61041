import Synchronization
import Testing

@testable import ATasker

@Suite("Workers: lifecycle, names, hooks, errors")
struct WorkerLifecycleTests {
    @Test("start, stop, restart; start twice and stop twice are safe; hooks pair up")
    func lifecycle() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let log = EventLog()
        let runs = Atomic<Int>(0)
        let worker = try BackgroundWorker(
            supervisor: supervisor,
            name: "loop",
            hooks: Worker.Hooks(
                onStart: { _ in log.append("start") },
                onStop: { _ in log.append("stop") }
            )
        ) { _ in
            runs.add(1, ordering: .relaxed)
            if runs.load(ordering: .relaxed) == 3 {
                log.append("three")
            }
            sleep(seconds: 0.001)
            return true
        }
        #expect(worker.isStopped && !worker.isStarted && !worker.isActive)
        #expect(worker.state == .stopped)
        #expect(try worker.start())
        #expect(try !worker.start())
        #expect(worker.isActive && worker.isStarted && !worker.isStopped)
        #expect(log.wait(for: "three"))
        #expect(worker.stop())
        #expect(worker.isStopped)
        #expect(worker.stop())
        #expect(worker.stop(wait: .none))
        #expect(log.all.filter { $0 != "three" } == ["start", "stop"])
        let afterStop = runs.load(ordering: .relaxed)
        sleep(seconds: 0.02)
        #expect(runs.load(ordering: .relaxed) == afterStop)
        #expect(worker.executions == afterStop)

        try worker.restart()
        #expect(worker.isActive)
        #expect(log.wait { $0.filter { $0 == "start" }.count == 2 })
        try worker.restart()
        #expect(log.wait { $0.filter { $0 == "start" }.count == 3 })
        worker.stop()
        #expect(log.count(of: "start") == 3)
        #expect(log.count(of: "stop") == 3)
        #expect(supervisor.info().activity == 0)
        supervisor.finishWorkers()
    }

    @Test("stop from inside the executor never waits for itself; returning false stops the worker")
    func stopFromInside() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let worker = try EventWorker(
            supervisor: supervisor,
            hooks: Worker.Hooks(onStop: { worker in
                // A stop from onStop does not wait either.
                log.append("onStop stopped=\(worker.stop())")
            })
        ) { worker in
            log.append("stopped=\(worker.stop())")
            log.append("active=\(worker.isActive)")
            return true
        }
        try worker.start()
        worker.trigger()
        #expect(log.wait(for: "onStop stopped=false"))
        #expect(log.all == ["stopped=false", "active=false", "onStop stopped=false"])
        #expect(worker.stop())

        let counted = Atomic<Int>(0)
        let finite = try IntervalWorker(
            supervisor: supervisor,
            hooks: Worker.Hooks(onStop: { _ in log.append("finite stopped") })
        ) { _ in
            counted.add(1, ordering: .relaxed).newValue < 5
        }
        try finite.start()
        #expect(log.wait(for: "finite stopped"))
        #expect(finite.stop())
        #expect(counted.load(ordering: .relaxed) == 5)
        #expect(finite.executions == 5)
        supervisor.finishWorkers()
    }

    @Test("restart from inside the executor: onStop, then a new start with onStart")
    func restartFromInside() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let worker = try EventWorker(
            supervisor: supervisor,
            hooks: Worker.Hooks(
                onStart: { _ in log.append("start") },
                onStop: { _ in log.append("stop") }
            )
        ) { worker in
            log.append("run")
            if log.count(of: "run") == 1 {
                try worker.restart()
                log.append("restart returned")
            }
            return true
        }
        try worker.start()
        worker.trigger()
        #expect(log.wait(for: "restart returned"))
        #expect(eventually { worker.isActive })
        #expect(worker.trigger(force: true))
        #expect(log.wait(forCount: 6))
        worker.stop()
        #expect(log.all == ["start", "run", "restart returned", "stop", "start", "run", "stop"])
        supervisor.finishWorkers()
    }

    @Test("stop cancels a task still waiting for a pool thread, and does not wait for the pool")
    func stopCancelsQueuedTask() throws {
        let supervisor = TaskSupervisor.started(poolSize: 1)
        let log = EventLog()
        let blocker = Gate()
        supervisor.submit(priority: .low) { _ in
            log.append("blocking")
            blocker.wait()
            return nil
        }
        #expect(log.wait(for: "blocking"))
        let worker = try EventWorker(
            supervisor: supervisor,
            priority: .low,
            hooks: Worker.Hooks(
                onStart: { _ in log.append("start") },
                onStop: { _ in log.append("stop") }
            )
        ) { _ in
            log.append("run")
            return true
        }
        try worker.start()
        worker.trigger()
        #expect(supervisor.info().queuedCount == 1)
        #expect(worker.stop(wait: .seconds(30)))
        #expect(supervisor.info().queuedCount == 0)
        #expect(supervisor.info().activity == 0)
        blocker.open()
        sleep(seconds: 0.02)
        #expect(log.all == ["blocking"])
        supervisor.finishWorkers()
    }

    @Test("names are unique per supervisor; default names are worker-N; lookups find workers")
    func names() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let first = try EventWorker(supervisor: supervisor, name: "alpha") { _ in true }
        #expect(throws: WorkerError.self) {
            _ = try EventWorker(supervisor: supervisor, name: "alpha") { _ in true }
        }
        do {
            _ = try QueueWorker<Int>(supervisor: supervisor, name: "alpha") { _, _ in true }
            Issue.record("a second worker named alpha was created")
        } catch let error as WorkerError {
            #expect(error.code == .nameInUse)
            #expect(error.message.contains("alpha"))
        }
        let generated = try EventWorker(supervisor: supervisor) { _ in true }
        #expect(generated.name.hasPrefix("worker-"))
        #expect(supervisor.worker(named: "alpha") === first)
        #expect(supervisor.worker(named: generated.name) === generated)
        #expect(supervisor.workers.map(\.name) == ["alpha", generated.name])

        // Another supervisor has its own names.
        let other = TaskSupervisor.started(poolSize: 1)
        let twin = try EventWorker(supervisor: other, name: "alpha") { _ in true }
        #expect(twin.name == "alpha")

        // A name is free again once its worker is released; a start can rename.
        do {
            let temporary = try EventWorker(supervisor: supervisor, name: "temp") { _ in true }
            #expect(temporary.name == "temp")
        }
        #expect(supervisor.worker(named: "temp") == nil)
        let renamed = try EventWorker(supervisor: supervisor, name: "temp") { _ in true }
        #expect(throws: WorkerError.self) { try renamed.start(name: "alpha") }
        try renamed.start(name: "beta", priority: .high)
        #expect(renamed.name == "beta" && renamed.priority == .high)
        #expect(supervisor.worker(named: "beta") === renamed)
        #expect(supervisor.worker(named: "temp") == nil)
        supervisor.finishWorkers()
        other.finishWorkers()
    }

    @Test("errors go to onError or the log, are counted, and the worker goes on")
    func errors() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let count = Atomic<Int>(0)
        let withHandler = try BackgroundWorker(
            supervisor: supervisor,
            name: "failing",
            hooks: Worker.Hooks(onError: { worker, error in
                log.append("\(worker.name): \(error)")
            })
        ) { _ in
            let n = count.add(1, ordering: .relaxed).newValue
            if n <= 2 {
                throw TestFailure(message: "boom \(n)")
            }
            return n < 4
        }
        try withHandler.start()
        // It returns false on its fourth execution, which stops it.
        #expect(eventually { withHandler.isStopped })
        #expect(withHandler.errors == 2)
        #expect(withHandler.executions == 4)
        #expect(log.all.count == 2 && log.all[0].hasPrefix("failing: ") && log.all[0].contains("boom 1"))

        // Without a handler the error is logged; the worker still goes on.
        let logged = Atomic<Int>(0)
        let quiet = try EventWorker(supervisor: supervisor) { _ in
            logged.add(1, ordering: .relaxed)
            throw TestFailure(message: "logged")
        }
        try quiet.start()
        quiet.trigger()
        #expect(eventually { quiet.errors == 1 })
        // Forced: the first execution may not have returned yet.
        quiet.trigger(force: true)
        #expect(eventually { quiet.errors == 2 })
        #expect(quiet.isActive)

        // onStart that throws: no executions, no onStop, the worker stops.
        let broken = try BackgroundWorker(
            supervisor: supervisor,
            hooks: Worker.Hooks(
                onStart: { _ in throw TestFailure(message: "cannot open") },
                onStop: { _ in log.append("broken onStop") },
                onError: { _, error in log.append("broken: \(error)") }
            )
        ) { _ in
            log.append("broken ran")
            return true
        }
        try broken.start()
        #expect(log.wait { $0.contains { $0.hasPrefix("broken: ") } })
        #expect(eventually { broken.isStopped })
        #expect(!log.all.contains("broken ran") && !log.all.contains("broken onStop"))
        #expect(broken.errors == 1 && broken.executions == 0)
        supervisor.finishWorkers()
    }

    @Test("an active worker keeps the supervisor busy: waitUntilIdle waits for it")
    func waitUntilIdle() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let gate = Gate()
        let log = EventLog()
        let worker = try EventWorker(supervisor: supervisor) { _ in
            gate.wait()
            return false
        }
        try worker.start()
        #expect(!supervisor.isIdle)
        #expect(supervisor.info().activity == 1)
        let waiter = TestThread {
            supervisor.waitUntilIdle(); log.append("idle")
        }
        sleep(seconds: 0.05)
        #expect(!log.all.contains("idle"))
        worker.trigger()
        sleep(seconds: 0.02)
        #expect(!log.all.contains("idle"))
        gate.open()
        #expect(log.wait(for: "idle"))
        #expect(worker.isStopped)
        #expect(supervisor.isIdle)
        waiter.join()
        supervisor.finishWorkers()
    }

    @Test("info lists the workers with their kind, state and counters")
    func info() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let queue = try QueueWorker<Int>(supervisor: supervisor, name: "q") { _, _ in true }
        let interval = try IntervalWorker(supervisor: supervisor, name: "i", interval: 60) { _ in true }
        queue.put(1)
        queue.put(2)
        try interval.start()
        #expect(eventually { interval.executions == 1 })
        let infos = supervisor.info().workers
        #expect(infos.map(\.name) == ["q", "i"])
        #expect(infos.map(\.kind) == [.queue, .interval])
        #expect(infos.map(\.state) == [.stopped, .running])
        #expect(infos[0].queueDepth == 2)
        #expect(infos[1].executions == 1)
        #expect(queue.description == "queue worker \"q\"")
        supervisor.finishWorkers()
    }

    @Test("stopping the supervisor stops its workers; a stopped supervisor refuses starts")
    func supervisorStop() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let worker = try IntervalWorker(
            supervisor: supervisor,
            interval: 0.01,
            hooks: Worker.Hooks(onStop: { _ in log.append("stopped") })
        ) { _ in
            log.append("run")
            return true
        }
        try worker.start()
        #expect(log.wait(for: "run"))
        #expect(supervisor.stop(wait: .seconds(30)).isEmpty)
        #expect(log.wait(for: "stopped"))
        #expect(worker.isStopped)
        #expect(supervisor.info().activity == 0)
        do {
            try worker.start()
            Issue.record("started on a stopped supervisor")
        } catch let error as WorkerError {
            #expect(error.code == .supervisorStopped)
        }
    }
}

/// A joinable thread for tests that block.
final class TestThread: Sendable {
    private let done = Gate()

    init(_ body: @escaping @Sendable () -> Void) {
        let done = self.done
        let started = PoolThread.spawn(name: "test-thread") {
            body()
            done.open()
        }
        precondition(started)
    }

    func join() {
        self.done.wait()
    }
}
