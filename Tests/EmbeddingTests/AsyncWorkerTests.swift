// Swift workers with async executors, through the public API only. Every wait is for an event, never for time.
import ATasker
import Logging
import Synchronization
import Testing

@Suite("Embedding: async executors of Swift workers")
struct AsyncWorkerTests {
    struct Failure: Error, Equatable {
        let n: Int
    }

    static func supervisor() -> TaskSupervisor {
        var logger = Logger(label: "embedding-test")
        logger.logLevel = .critical
        let supervisor = TaskSupervisor(configuration: .init(poolSize: 2), logger: logger)
        supervisor.start()
        return supervisor
    }

    @Test("an async background executor runs without holding a pool thread, and stop cancels its Swift task")
    func backgroundRunsAndIsCancelledByStop() async throws {
        let supervisor = Self.supervisor()
        let (events, sink) = AsyncStream<String>.makeStream()
        let worker = try BackgroundWorker(
            supervisor: supervisor, name: "async-bg",
            hooks: .init(onStop: { _ in sink.yield("onStop") })
        ) { _ in
            sink.yield("started")
            do {
                try await Task.sleep(for: .seconds(3600))
                sink.yield("woke")
            } catch {
                sink.yield(error is CancellationError ? "cancelled" : "other error")
                throw error
            }
        }
        try worker.start()
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == "started")
        // Suspended in Task.sleep: no pool task runs for it.
        #expect(supervisor.info().threadTasksCount == 0)
        // stop(wait:) blocks until the execution has ended: call it on a pool thread, not on the test's.
        let stopped = try await supervisor.run { worker.stop() }
        #expect(stopped)
        #expect(worker.isStopped)
        #expect(await iterator.next() == "cancelled")
        #expect(await iterator.next() == "onStop")
        #expect(worker.executions == 1)
        #expect(worker.errors == 0)  // the cancellation a stop asked for is not an error
        await supervisor.shutdown(timeout: .seconds(10))
    }

    @Test("an async executor's error goes to onError, and the worker goes on")
    func errorsGoToOnError() async throws {
        let supervisor = Self.supervisor()
        let (errors, sink) = AsyncStream<Int>.makeStream()
        let count = Atomic<Int>(0)
        let worker = try BackgroundWorker(
            supervisor: supervisor, name: "async-failing",
            hooks: .init(onError: { _, error in sink.yield((error as? Failure)?.n ?? -1) })
        ) { worker in
            let n = count.wrappingAdd(1, ordering: .relaxed).newValue
            await Task.yield()
            if n == 2 {
                worker.stop(wait: .forever)  // from inside: never waits for itself
            }
            throw Failure(n: n)
        }
        try worker.start()
        var iterator = errors.makeAsyncIterator()
        #expect(await iterator.next() == 1)
        #expect(await iterator.next() == 2)
        let stopped = try await supervisor.run { worker.stop() }
        #expect(stopped)
        #expect(worker.errors == 2)
        #expect(worker.executions == 2)
        await supervisor.shutdown(timeout: .seconds(10))
    }

    @Test("async interval, event and queue executors run; a sync executor still resolves to the sync initialiser")
    func otherKinds() async throws {
        let supervisor = Self.supervisor()
        let (events, sink) = AsyncStream<String>.makeStream()
        let interval = try IntervalWorker(supervisor: supervisor, name: "async-interval", interval: 0.001) { w in
            await Task.yield()
            sink.yield("interval")
            w.stop(wait: .none)
        }
        let event = try EventWorker(supervisor: supervisor, name: "async-event") { _ in
            await Task.yield()
            sink.yield("event")
        }
        let queue = try QueueWorker<Int>(supervisor: supervisor, name: "async-queue") { n, _ in
            await Task.yield()
            sink.yield("item \(n)")
        }
        // A one-expression closure returning `Bool` is the sync executor: it runs on a pool thread, in no task.
        @Sendable func mark() -> Bool {
            sink.yield(withUnsafeCurrentTask { $0 == nil } ? "sync" : "in a task")
            return true
        }
        let sync = try EventWorker(supervisor: supervisor, name: "sync-event") { _ in mark() }
        var iterator = events.makeAsyncIterator()
        try interval.start()
        #expect(await iterator.next() == "interval")
        try event.start()
        event.trigger()
        #expect(await iterator.next() == "event")
        try queue.start()
        try await queue.put(1)
        try await queue.put(2)
        #expect(await iterator.next() == "item 1")
        #expect(await iterator.next() == "item 2")
        try sync.start()
        sync.trigger()
        #expect(await iterator.next() == "sync")
        let stopped = try await supervisor.run {
            [interval.stop(), event.stop(), queue.stop(), sync.stop()]
        }
        #expect(stopped == [true, true, true, true])
        await supervisor.shutdown(timeout: .seconds(10))
    }

    @Test("the async put suspends while the queue is full, resumes when an item is taken, and throws if cancelled")
    func asyncPutSuspendsAtMaxQueue() async throws {
        let supervisor = Self.supervisor()
        let (events, sink) = AsyncStream<String>.makeStream()
        let queue = try QueueWorker<Int>(supervisor: supervisor, name: "async-put", maxQueue: 1) { n, _ in
            sink.yield("item \(n)")
            return true
        }
        try await queue.put(1)  // room: added at once (the worker is not started, so the item stays)
        #expect(queue.queueDepth == 1)
        let waiting = Task {
            try await queue.put(2)
            sink.yield("put 2 returned")
        }
        let cancelled = Task { try await queue.put(3) }
        cancelled.cancel()
        await #expect(throws: CancellationError.self) { try await cancelled.value }
        // Neither putter could add its item to the full queue: the one that was cancelled never will.
        #expect(queue.queueDepth == 1)
        try queue.start()  // taking item 1 makes room: the waiting put resumes and adds item 2
        var seen: [String] = []
        for await event in events {
            seen.append(event)
            if seen.count == 3 {
                break
            }
        }
        #expect(Set(seen) == ["item 1", "put 2 returned", "item 2"])
        #expect(seen.firstIndex(of: "item 1")! < seen.firstIndex(of: "item 2")!)
        try await waiting.value
        let stopped = try await supervisor.run { queue.stop() }
        #expect(stopped)
        #expect(queue.executions == 2)
        await supervisor.shutdown(timeout: .seconds(10))
    }

    @Test("a stop wakes a put waiting on a full queue that it empties")
    func stopWakesSuspendedPut() async throws {
        let supervisor = Self.supervisor()
        let (events, sink) = AsyncStream<String>.makeStream()
        let queue = try QueueWorker<Int>(supervisor: supervisor, name: "async-put-stop", maxQueue: 1) { n, _ in
            sink.yield("started \(n)")
            try await Task.sleep(for: .seconds(3600))
        }
        try queue.start()
        try await queue.put(1)
        var iterator = events.makeAsyncIterator()
        #expect(await iterator.next() == "started 1")
        try await queue.put(2)  // item 1 runs: room for one more
        let waiting = Task { try await queue.put(3) }
        // A stop without drain cancels item 1 and drops item 2: the waiting put adds item 3, kept for the next start.
        let stopped = try await supervisor.run { queue.stop() }
        #expect(stopped)
        try await waiting.value
        #expect(queue.queueDepth == 1)
        await supervisor.shutdown(timeout: .seconds(10))
    }

    @Test("Duration overloads: an interval worker with a Duration interval, a task wait and an aloop timer")
    func durationOverloads() async throws {
        let supervisor = Self.supervisor()
        let (events, sink) = AsyncStream<String>.makeStream()
        let worker = try IntervalWorker(supervisor: supervisor, name: "duration", interval: .milliseconds(1)) { w in
            sink.yield(withUnsafeCurrentTask { $0 == nil } ? "tick on a pool thread" : "tick in a task")
            return w.stop(wait: .none) && false
        }
        #expect(worker.interval == 0.001)
        #expect(worker.delayBefore == 0)
        let delayed = try IntervalWorker(supervisor: supervisor, name: "duration-delay", delay: .seconds(2)) { _ in
            true
        }
        #expect(delayed.delay == 2)
        #expect(delayed.interval == nil)
        var iterator = events.makeAsyncIterator()
        try worker.start()
        #expect(await iterator.next() == "tick on a pool thread")
        let task = supervisor.submit { _ in 42 }
        // A blocking wait: on a pool thread.
        let finished = try await supervisor.run { task.wait(timeout: .seconds(60)) }
        #expect(finished)
        let loop = try supervisor.createAloop(named: "duration")
        #expect(loop.schedule(after: .milliseconds(1)) { sink.yield("timer") } != nil)
        #expect(await iterator.next() == "timer")
        _ = try await supervisor.run { worker.stop() }
        await supervisor.shutdown(timeout: .seconds(10))
    }
}
