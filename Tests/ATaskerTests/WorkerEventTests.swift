import Synchronization
import Testing

@testable import ATasker

@Suite("Workers: event")
struct WorkerEventTests {
    @Test("a trigger during an execution is dropped unless forced; forced ones merge into one more run")
    func forceSemantics() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        let gate = Gate()
        let worker = try EventWorker(supervisor: supervisor) { _ in
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
        #expect(!worker.trigger())
        #expect(worker.trigger(force: true))
        #expect(worker.trigger(force: true))
        gate.open()
        #expect(log.wait(forCount: 2))
        sleep(seconds: 0.03)
        #expect(log.all.count == 2)

        // Idle again: a trigger runs it once.
        #expect(eventually { !worker.core.withLock { $0.isExecuting } && worker.executions == 2 })
        #expect(worker.trigger())
        #expect(log.wait(forCount: 3))
        sleep(seconds: 0.02)
        #expect(worker.executions == 3)
        worker.stop()
        #expect(!worker.trigger())
        supervisor.finishWorkers()
    }

    @Test("triggers that arrive before the execution starts are merged; executions never overlap")
    func merged() throws {
        let supervisor = TaskSupervisor.started(poolSize: 1)
        let detector = OverlapDetector()
        let blocker = Gate()
        let log = EventLog()
        // Occupy the only thread, so that the worker's task waits in the queue.
        supervisor.submit(priority: .low) { _ in
            log.append("blocking")
            blocker.wait()
            return nil
        }
        #expect(log.wait(for: "blocking"))
        let worker = try EventWorker(supervisor: supervisor, priority: .low) { _ in
            detector.enter()
            log.append("run")
            detector.leave()
            return true
        }
        try worker.start()
        for _ in 0..<10 {
            #expect(worker.trigger())
        }
        blocker.open()
        #expect(log.wait(for: "run"))
        sleep(seconds: 0.03)
        #expect(log.count(of: "run") == 1)

        // Many threads triggering with force: never overlapping.
        let threads = (0..<4).map { _ in
            TestThread {
                for _ in 0..<200 {
                    worker.trigger(force: true)
                }
            }
        }
        threads.forEach { $0.join() }
        worker.stop()
        #expect(detector.overlaps == 0)
        supervisor.finishWorkers()
    }
}
