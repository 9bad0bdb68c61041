import Glibc
import Synchronization
import Testing

@testable import ATasker

@Suite("Workers: queue")
struct WorkerQueueTests {
    @Test("FIFO, LIFO and priority orders")
    func orders() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        for order in [QueueOrder.fifo, .lifo, .priority] {
            let seen = Recorder<Int>()
            let worker = try QueueWorker<Int>(supervisor: supervisor, order: order) { item, _ in
                seen.append(item)
                return true
            }
            // Put before the start, so that the order does not depend on timing.
            for item in 0..<6 {
                worker.put(item, priority: [3, 1, 2, 1, 0, 3][item])
            }
            try worker.start()
            #expect(eventually { seen.all.count == 6 })
            switch order {
            case .fifo: #expect(seen.all == [0, 1, 2, 3, 4, 5])
            case .lifo: #expect(seen.all == [5, 4, 3, 2, 1, 0])
            case .priority: #expect(seen.all == [4, 1, 3, 2, 0, 5])
            }
            worker.stop()
        }
        supervisor.finishWorkers()
    }

    @Test("a burst of items is drained by one task on one thread, in order")
    func batches() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let detector = OverlapDetector()
        let threads = Recorder<pthread_t>()
        let last = Atomic<Int>(-1)
        let outOfOrder = Atomic<Int>(0)
        let worker = try QueueWorker<Int>(supervisor: supervisor) { item, _ in
            detector.enter()
            if last.exchange(item, ordering: .relaxed) != item - 1 {
                outOfOrder.add(1, ordering: .relaxed)
            }
            if item % 1000 == 0 {
                threads.append(pthread_self())
            }
            detector.leave()
            return true
        }
        for item in 0..<10_000 {
            worker.put(item)
        }
        #expect(worker.queueDepth == 10_000)
        try worker.start()
        #expect(eventually { worker.executions == 10_000 })
        #expect(worker.tasksSubmitted == 1)
        #expect(Set(threads.all.map { UInt($0) }).count == 1)
        #expect(detector.overlaps == 0 && outOfOrder.load(ordering: .relaxed) == 0)
        #expect(worker.queueDepth == 0)

        // While running: many items, few tasks.
        for item in 10_000..<60_000 {
            worker.put(item)
        }
        #expect(eventually { worker.executions == 60_000 })
        #expect(worker.tasksSubmitted < 5_000)
        #expect(detector.overlaps == 0 && outOfOrder.load(ordering: .relaxed) == 0)
        supervisor.finishWorkers()
    }

    @Test("items put before start or after stop are kept; stop drops the rest unless drain")
    func keepDropDrain() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        for order in [QueueOrder.fifo, .priority] {
            for drain in [false, true] {
                let seen = Recorder<Int>()
                let gate = Gate()
                let worker = try QueueWorker<Int>(supervisor: supervisor, order: order) { item, _ in
                    seen.append(item)
                    if item == 0 {
                        gate.wait()
                    }
                    return true
                }
                worker.put(0)
                try worker.start()
                #expect(eventually { seen.all == [0] })
                for item in 1...5 {
                    worker.put(item)
                }
                #expect(worker.queueDepth == 5)
                let stopper = TestThread { worker.stop(drain: drain) }
                #expect(eventually { worker.state == .stopping })
                worker.put(100)  // after the stop: kept for the next start
                gate.open()
                stopper.join()
                #expect(worker.isStopped)
                #expect(seen.all == (drain ? [0, 1, 2, 3, 4, 5] : [0]), "order \(order) drain \(drain)")
                #expect(worker.queueDepth == 1)
                try worker.start()
                #expect(eventually { seen.all.last == 100 })
                worker.stop()
            }
        }
        supervisor.finishWorkers()
    }

    @Test("maxQueue: put waits for room, tryPut refuses; put from inside never waits")
    func maxQueue() throws {
        let supervisor = TaskSupervisor.started(poolSize: 2)
        let log = EventLog()
        #expect(throws: WorkerError.self) {
            _ = try QueueWorker<Int>(supervisor: supervisor, maxQueue: 0) { _, _ in true }
        }
        let worker = try QueueWorker<Int>(supervisor: supervisor, maxQueue: 2) { item, worker in
            log.append("item \(item)")
            if item == 2 {
                // The queue may be full: a put from inside adds anyway.
                worker.put(10)
                worker.put(11)
                worker.put(12)
            }
            return true
        }
        worker.put(1)
        worker.put(2)
        #expect(!worker.tryPut(3))
        let putter = TestThread {
            worker.put(3)
            log.append("put 3 returned")
        }
        sleep(seconds: 0.05)
        #expect(log.all.isEmpty)
        try worker.start()
        putter.join()
        // Item 3 may come after 10-12: the putter finds the queue full again when item 2 refills it.
        #expect(log.wait { $0.filter { $0.hasPrefix("item") }.count == 6 })
        #expect(log.all.contains("put 3 returned"))
        #expect(
            Set(log.all.filter { $0.hasPrefix("item") }) == [
                "item 1", "item 2", "item 3", "item 10", "item 11", "item 12",
            ])
        #expect(worker.tryPut(4))
        #expect(log.wait(for: "item 4"))

        // A stop that drops the queue releases a blocked putter.
        worker.stop()
        worker.put(20)
        worker.put(21)
        let blocked = TestThread { worker.put(22) }
        sleep(seconds: 0.02)
        try worker.start()
        blocked.join()
        #expect(log.wait(for: "item 22"))
        supervisor.finishWorkers()
    }

    @Test("throughput: 1,000,000 items through a queue worker")
    func throughput() throws {
        let supervisor = TaskSupervisor.started(poolSize: 4)
        let sum = Atomic<Int>(0)
        let count = 1_000_000
        let worker = try QueueWorker<Int>(supervisor: supervisor) { item, _ in
            sum.store(sum.load(ordering: .relaxed) &+ item, ordering: .relaxed)
            return true
        }
        try worker.start()
        let started = Monotonic.now()
        for item in 0..<count {
            worker.put(item)
        }
        #expect(worker.stop(wait: .seconds(120), drain: true))
        let elapsed = Monotonic.now() - started
        #expect(worker.executions == count)
        #expect(sum.load(ordering: .relaxed) == count * (count - 1) / 2)
        print(
            "queue worker: \(Int(Double(count) / elapsed)) items/s (\(count) items in \(TaskSupervisor.format(elapsed)) s, \(worker.tasksSubmitted) tasks)"
        )
        #expect(elapsed < 120)
        supervisor.finishWorkers()
    }
}
