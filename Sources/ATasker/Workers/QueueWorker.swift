import DequeModule
import Synchronization

/// A worker that runs its executor for each item put into its queue (atasker's
/// `BackgroundQueueWorker`).
///
/// ``put(_:priority:)`` is safe from any thread. One pool task drains the queue until it is empty,
/// so a burst of items costs one thread wake-up, not one per item; a FIFO queue without a size limit
/// even hands its items over in batches, taking the lock once per batch. Items run in the queue's
/// ``QueueOrder``, one at a time, never overlapping.
///
/// Items put before ``Worker/start(name:priority:)``, or after ``Worker/stop(wait:drain:)``, are
/// kept for the next start. A stop drops the items still queued, unless it is asked to `drain`:
/// then they run first.
///
/// ```swift
/// let writer = try QueueWorker<String>(supervisor: supervisor, name: "writer", maxQueue: 1000) { line, _ in
///     file.write(line)
///     return true
/// }
/// try writer.start()
/// writer.put("hello")        // waits while 1000 lines are queued
/// writer.stop(drain: true)   // writes what is queued, then stops
/// ```
public final class QueueWorker<Item: Sendable>: Worker {
    /// The order in which items are taken.
    public let order: QueueOrder

    /// The most items the queue holds; ``put(_:priority:)`` waits for room beyond it. `nil`: no limit.
    public let maxQueue: Int?

    private let executor: Executor

    /// A synchronous executor, run on a pool thread, or an async one, run in a Swift task per item.
    private enum Executor: Sendable {
        case sync(@Sendable (Item, QueueWorker<Item>) throws -> Bool)
        case async(@Sendable (Item, QueueWorker<Item>) async throws -> Void)
    }
    /// FIFO without a limit: items are handed over in batches. Otherwise one at a time, so that an
    /// urgent or newer item is next as soon as it arrives, and a full queue gains room per item.
    private let usesBatches: Bool

    // The items are kept as `any Sendable`: the queue's own code then makes no call into generic code, which
    // looks up type metadata at run time, a cost per item when items run one at a time (on an aloop). Each item
    // is cast back to `Item` when it runs.
    // protected by `core`
    @exclusivity(unchecked) private var items: WorkerItemQueue<any Sendable>
    // protected by `core`: the items left at a draining stop, run before the stop finishes
    @exclusivity(unchecked) private var leftovers: WorkerItemQueue<any Sendable>
    // protected by `core`
    @exclusivity(unchecked) private var blockedPutters = 0
    // protected by `core`: the number of `items`, kept apart so that the hot check "anything queued?" makes no
    // call into generic code (each such call looks up type metadata at run time, a cost per item on an aloop)
    @exclusivity(unchecked) private var itemCount = 0

    // owned by the slot: the items taken by the running task
    @exclusivity(unchecked) private var batch = Deque<any Sendable>()
    // protected by `core`: Swift tasks suspended in the async `put`, waiting for room, oldest first
    @exclusivity(unchecked) private var suspendedPutters = Deque<SuspendedPutter>()

    // owned by the slot
    @exclusivity(unchecked) private var single: (any Sendable)?
    // owned by the slot: a suspended putter to resume for the room that the taken item made
    @exclusivity(unchecked) private var putterToResume: SuspendedPutter?
    // owned by the slot: a putter waits for the room that the taken item made
    @exclusivity(unchecked) private var wakePutter = false

    /// Items of the running batch not started yet (written by the slot's task, read by anyone).
    private let batchRemaining = Atomic<Int>(0)
    /// A stop without drain asks the running batch to drop the rest of its items.
    private let dropBatch = Atomic<Bool>(false)
    /// Numbers the calls of the async `put` that may suspend.
    private let putterIDs = Atomic<UInt64>(0)

    /// Creates a queue worker; items can be put at once, and run once it is started.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor whose pool runs the executions.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the draining task. Default: ``TaskPriority/normal``.
    ///   - order: The order of the items. Default: ``QueueOrder/fifo``.
    ///   - maxQueue: The most items queued; `nil` (the default) for no limit.
    ///   - hooks: Functions called around the executions.
    ///   - executor: Runs one item; it returns `false` to stop the worker.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` if `maxQueue` is less than
    ///   1, or ``WorkerError/Code/nameInUse`` if `name` is taken.
    public convenience init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        order: QueueOrder = .fifo,
        maxQueue: Int? = nil,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (Item, QueueWorker<Item>) throws -> Bool
    ) throws {
        try self.init(
            supervisor: supervisor, name: name, priority: priority, order: order, maxQueue: maxQueue, hooks: hooks,
            executor: Executor.sync(executor))
    }

    /// Creates a queue worker whose executor is `async`; items can be put at once, and run once it is started.
    ///
    /// Each item runs in a Swift task of its own, on the concurrency runtime, so no pool thread is held while it
    /// is suspended; items still run one at a time, in the queue's order. To stop from inside, call
    /// ``Worker/stop(wait:drain:)``.
    ///
    /// ```swift
    /// let uploads = try QueueWorker<URL>(supervisor: supervisor, name: "uploads", maxQueue: 100) { file, _ in
    ///     try await upload(file)  // suspends: no thread waits
    /// }
    /// try uploads.start()
    /// try await uploads.put(file)  // suspends while 100 files are queued
    /// ```
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor that runs the worker.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the worker's pool tasks. Default: ``TaskPriority/normal``.
    ///   - order: The order of the items. Default: ``QueueOrder/fifo``.
    ///   - maxQueue: The most items queued; `nil` (the default) for no limit.
    ///   - hooks: Functions called around the executions.
    ///   - executor: Runs one item. An error it throws goes to ``Hooks/onError`` (or the log); a
    ///     `CancellationError` thrown after a stop cancelled it is not an error.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` if `maxQueue` is less than
    ///   1, or ``WorkerError/Code/nameInUse`` if `name` is taken.
    /// - Important: A stop without drain cancels the running item's Swift task (and drops the items queued); a
    ///   stop with drain lets it and the items queued run. ``Worker/stop(wait:drain:)`` waits for them.
    public convenience init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        order: QueueOrder = .fifo,
        maxQueue: Int? = nil,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (Item, QueueWorker<Item>) async throws -> Void
    ) throws {
        try self.init(
            supervisor: supervisor, name: name, priority: priority, order: order, maxQueue: maxQueue, hooks: hooks,
            executor: Executor.async(executor))
    }

    private init(
        supervisor: TaskSupervisor,
        name: String?,
        priority: TaskPriority,
        order: QueueOrder,
        maxQueue: Int?,
        hooks: Hooks,
        executor: Executor
    ) throws {
        if let maxQueue, maxQueue < 1 {
            throw WorkerError(
                .invalidArgument,
                "queue worker \(name.map { "\"\($0)\"" } ?? "(unnamed)"): maxQueue must be at least 1, got \(maxQueue)"
            )
        }
        self.order = order
        self.maxQueue = maxQueue
        self.executor = executor
        // An async executor runs one item per execution: each item is a Swift task of its own.
        if case .sync = executor {
            self.usesBatches = order == .fifo && maxQueue == nil
        } else {
            self.usesBatches = false
        }
        self.items = WorkerItemQueue(order: order)
        self.leftovers = WorkerItemQueue(order: order)
        try super.init(kind: .queue, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    // MARK: - Putting

    /// Puts an item into the queue, from any thread; blocks the calling thread while the queue is full.
    ///
    /// With ``maxQueue``, the call blocks (on a condition variable) until an item is taken or the
    /// queue is dropped by a stop. This is the form for synchronous code; from Swift concurrency use
    /// ``put(_:priority:)-async``, which suspends instead of holding a thread of the cooperative pool. Called from inside the worker (its executor or hooks), it never
    /// waits: the item is added even to a full queue, since waiting there could never end.
    ///
    /// - Parameters:
    ///   - item: The item.
    ///   - priority: The item's priority in a ``QueueOrder/priority`` queue (lower runs first);
    ///     ignored by the other orders. Default: `0`.
    /// - Important: On a stopped worker whose queue is full, the call waits until the worker is
    ///   started again; use ``tryPut(_:priority:)`` where that could be for ever.
    public func put(_ item: Item, priority: Int = 0) {
        _ = self.put(item, priority: priority, blocking: true)
    }

    /// Puts an item into the queue, suspending the calling task (holding no thread) while the queue is full.
    ///
    /// With ``maxQueue``, the call suspends until an item is taken (each taken item resumes the putter that has
    /// waited longest) or the queue is dropped by a stop, then tries again. Called from inside the worker's async
    /// executor it never waits: the item is added even to a full queue, since waiting there could never end.
    ///
    /// ```swift
    /// for try await line in lines {
    ///     try await writer.put(line)  // suspends while the queue is full
    /// }
    /// ```
    ///
    /// - Parameters:
    ///   - item: The item.
    ///   - priority: The item's priority in a ``QueueOrder/priority`` queue (lower runs first);
    ///     ignored by the other orders. Default: `0`.
    /// - Throws: `CancellationError` if the calling task is cancelled before the item is added (at once, or
    ///   while it waits for room); the item is then not added.
    /// - Important: On a stopped worker whose queue is full, the call waits until the worker is
    ///   started again (or the task is cancelled).
    public func put(_ item: Item, priority: Int = 0) async throws {
        let inside = self.isInOwnAsyncExecution
        let core = self.core
        while true {
            let id = self.putterIDs.wrappingAdd(1, ordering: .relaxed).newValue
            let wake = await withTaskCancellationHandler {
                await withCheckedContinuation { (continuation: CheckedContinuation<PutWake, Never>) in
                    var effects = WorkerStateMachine.Effects()
                    core.lock()
                    if Task.isCancelled {
                        core.unlock()
                        continuation.resume(returning: .cancelled)
                        return
                    }
                    if let maxQueue = self.maxQueue, self.items.count >= maxQueue, !inside,
                        !core.lockedValue.isCurrentThread
                    {
                        self.suspendedPutters.append(SuspendedPutter(id: id, continuation: continuation))
                        core.unlock()
                        return
                    }
                    self.items.append(item, priority: priority)
                    self.itemCount += 1
                    self.wakeLocked(&effects)
                    core.unlock()
                    self.perform(effects)
                    continuation.resume(returning: .added)
                }
            } onCancel: {
                core.lock()
                let index = self.suspendedPutters.firstIndex { $0.id == id }
                let putter = index.map { self.suspendedPutters.remove(at: $0) }
                core.unlock()
                putter?.continuation.resume(returning: .cancelled)
            }
            switch wake {
            case .added:
                return
            case .cancelled:
                throw CancellationError()
            case .retry:
                continue
            }
        }
    }

    /// Puts an item into the queue if there is room, from any thread; never waits.
    ///
    /// - Parameters:
    ///   - item: The item.
    ///   - priority: The item's priority in a ``QueueOrder/priority`` queue. Default: `0`.
    /// - Returns: `false` if the queue is full (the item was not added).
    @discardableResult
    public func tryPut(_ item: Item, priority: Int = 0) -> Bool {
        self.put(item, priority: priority, blocking: false)
    }

    /// Puts an item into the queue even when it is full, from any thread; never waits (an aloop's thread must
    /// not block on a queue whose worker may need that thread to make room).
    ///
    /// - Parameters:
    ///   - item: The item.
    ///   - priority: The item's priority in a ``QueueOrder/priority`` queue. Default: `0`.
    package func putWithoutWaiting(_ item: Item, priority: Int = 0) {
        _ = self.put(item, priority: priority, blocking: false, force: true)
    }

    private func put(_ item: Item, priority: Int, blocking: Bool, force: Bool = false) -> Bool {
        var effects = WorkerStateMachine.Effects()
        let core = self.core
        core.lock()
        if let maxQueue = self.maxQueue, self.items.count >= maxQueue, !force, !core.lockedValue.isCurrentThread,
            !self.isInOwnAsyncExecution
        {
            guard blocking else {
                core.unlock()
                return false
            }
            self.blockedPutters += 1
            repeat {
                core.wait()
            } while self.items.count >= maxQueue && !core.lockedValue.isCurrentThread
            self.blockedPutters -= 1
        }
        self.items.append(item, priority: priority)
        self.itemCount += 1
        self.wakeLocked(&effects)
        core.unlock()
        if effects.submit != nil {
            self.perform(effects)
        }
        return true
    }

    // MARK: - Kind hooks

    override var queueDepthLocked: Int {
        self.items.count + self.leftovers.count + self.batchRemaining.load(ordering: .relaxed)
    }

    override func wakeAllPutters() {
        self.core.broadcast()
        self.core.lock()
        let putters = self.suspendedPutters
        self.suspendedPutters.removeAll()
        self.core.unlock()
        for putter in putters {
            putter.continuation.resume(returning: .retry)
        }
    }

    override var kindHasDrainWork: Bool {
        !self.leftovers.isEmpty
    }

    override func kindDidStart(now: Double, effects: inout WorkerStateMachine.Effects) {
        // No task of the previous start is left, so the slot's flag can be reset here.
        self.dropBatch.store(false, ordering: .relaxed)
        if !self.items.isEmpty {
            self.wakeLocked(&effects)
        }
    }

    override func kindNextStep(now: Double, draining: Bool) -> Step {
        if draining {
            guard let item = self.leftovers.popNext() else {
                return .idle(deadline: nil)
            }
            self.single = item
            return .execute
        }
        // sampled once per wake-up (a batch), not per put
        self.metrics.queueDepthSampled(self.itemCount)
        guard self.itemCount > 0 else {
            return .idle(deadline: nil)
        }
        // On an aloop, one item per execution: each may suspend, and the aloop's other jobs get their turn.
        if self.usesBatches && self.aloopBinding.withLock({ $0.bound == nil }) {
            self.items.takeAll(into: &self.batch)
            self.itemCount = 0
            self.batchRemaining.store(self.batch.count, ordering: .relaxed)
            return .execute
        }
        guard let item = self.items.popNext() else {
            return .idle(deadline: nil)
        }
        self.itemCount -= 1
        self.single = item
        self.wakePutter = self.blockedPutters > 0
        self.putterToResume = self.suspendedPutters.popFirst()
        return .execute
    }

    override func kindExecute() -> Bool {
        if self.wakePutter {
            self.wakePutter = false
            self.core.signal()
        }
        if let putter = self.putterToResume {
            self.putterToResume = nil
            putter.continuation.resume(returning: .retry)
        }
        guard case .sync(let executor) = self.executor else {
            guard case .async(let executor) = self.executor, let item = self.single else {
                preconditionFailure("\(self): an async queue worker runs one item per execution")
            }
            self.single = nil
            return self.executeAsync { try await executor(item as! Item, self) }
        }
        if let item = self.single {
            self.single = nil
            return self.invoke { try executor(item as! Item, self) }
        }
        while let item = self.batch.popFirst() {
            if self.dropBatch.load(ordering: .relaxed) {
                self.batch.removeAll(keepingCapacity: true)
                self.batchRemaining.store(0, ordering: .relaxed)
                return true
            }
            self.batchRemaining.store(self.batch.count, ordering: .relaxed)
            if !self.invoke({ try executor(item as! Item, self) }) {
                // The executor stopped the worker: the rest of the batch is left at the stop, so dropped.
                self.batch.removeAll(keepingCapacity: true)
                self.batchRemaining.store(0, ordering: .relaxed)
                return false
            }
        }
        return true
    }

    override func kindStopRequested(drain: Bool, wasDraining: Bool) {
        if drain {
            // The items left run first; items put from now on stay for the next start.
            swap(&self.items, &self.leftovers)
            self.itemCount = self.items.count
            return
        }
        self.dropBatch.store(true, ordering: .relaxed)
        self.leftovers.removeAll()
        if !wasDraining {
            self.items.removeAll()
            self.itemCount = 0
        }
    }
}

// Outside `QueueWorker`: a type nested in a generic class is generic itself, and unspecialized code (the Lua layer's
// `QueueWorker<LuaQueueItem>`, in another module) looks its metadata up at run time at every use, such as the
// check for a putter to resume after each item.

/// A Swift task suspended in the async `put` until the queue has room.
private struct SuspendedPutter {
    let id: UInt64
    let continuation: CheckedContinuation<PutWake, Never>
}

/// Why a suspended `put` resumes.
private enum PutWake {
    /// The item was added.
    case added
    /// Room may have been made: try again.
    case retry
    /// The putting task was cancelled.
    case cancelled
}
/// `QueueWorker` is safe to share between threads for the reasons given on `Worker`'s conformance:
/// the queues and the count of blocked putters are protected by `core`; the batch, the single item
/// and `wakePutter` are owned by the slot's task (handed from task to task under `core`); the batch
/// counters are `Atomic`; and the items themselves are `Sendable`.
extension QueueWorker: @unchecked Sendable {}
