import Synchronization

/// The source of task ids: process-unique and increasing from 1.
private let nextTaskID = Atomic<Int>(1)

/// One task of a ``TaskSupervisor``: its identity, status, times and outcome.
///
/// ``TaskSupervisor/submit(priority:delay:name:_:)`` returns a task. Its status moves
/// `delayed` → `queued` → `started` → `completed` / `failed`, or to `canceled` before it starts.
///
/// ```swift
/// let task = supervisor.submit(name: "sum") { _ in (1...10).reduce(0, +) }
/// let sum: Int = try await task.value()
/// print(task.status, task.timeStarted! - task.timeQueued!)
/// ```
///
/// Reading ``status`` and the times is lock-free; the result, the error and the observers are under a
/// small per-task `Mutex`.
public final class SupervisorTask: Sendable, CustomStringConvertible {
    /// The task's id: unique in the process, increasing from 1 in submission order.
    public let id: Int

    /// The task's priority.
    public let priority: TaskPriority

    /// The task's name, if it was given one.
    public let name: String?

    /// The supervisor the task belongs to, for ``cancel()``.
    let supervisor: TaskSupervisor?

    /// The metrics that the task's start and end update.
    let metrics: TaskMetrics?

    private let statusCode: Atomic<UInt8>
    // Times are `Double` bit patterns; `unsetTime` stands for "not yet".
    private let queuedAt: Atomic<UInt64>
    private let startedAt: Atomic<UInt64>
    private let completedAt: Atomic<UInt64>
    /// Start-latency reports already made (``LatencyLevel`` bits), so that each fires once.
    let latencyReported = Atomic<UInt8>(0)
    private let outcome = Mutex(Outcome())

    private static let unsetTime = UInt64.max

    /// What a finished task produced, and who waits for it.
    struct Outcome: Sendable {
        var isFinished = false
        /// The supervisor no longer counts the task (``release(_:)``): a waiter may return at once. A
        /// waiter that comes between the end of the task and this waits for it, so that a woken waiter
        /// never sees the task still counted.
        var isReleased = false
        var result: (any Sendable)?
        var error: (any Error)?
        var observers: [Observer] = []
        /// Code waited for the task when it finished (see ``isAwaited``), for the handlers that run then.
        var wasAwaited = false
    }

    /// Someone to notify when the task finishes.
    enum Observer: Sendable {
        /// A handler; `awaiting` when it stands for code that waits for the result (see ``isAwaited``).
        case handler(@Sendable (SupervisorTask) -> Void, awaiting: Bool)
        case continuation(CheckedContinuation<Void, Never>)
        case waiter(Waiter)
    }

    init(
        priority: TaskPriority, name: String?, supervisor: TaskSupervisor?, status: TaskStatus, queuedAt: Double?,
        metrics: TaskMetrics? = nil
    ) {
        self.id = nextTaskID.wrappingAdd(1, ordering: .relaxed).oldValue
        self.priority = priority
        self.name = name
        self.supervisor = supervisor
        self.metrics = metrics
        metrics?.taskSubmitted()
        self.statusCode = Atomic(status.code)
        self.queuedAt = Atomic(queuedAt.map(\.bitPattern) ?? Self.unsetTime)
        self.startedAt = Atomic(Self.unsetTime)
        self.completedAt = Atomic(Self.unsetTime)
    }

    // MARK: - Public state

    /// The current status.
    public var status: TaskStatus {
        TaskStatus(code: self.statusCode.load(ordering: .acquiring))
    }

    /// When the task entered the queue (``Monotonic/now()``), or `nil` while it is delayed.
    public var timeQueued: Double? {
        Self.time(self.queuedAt)
    }

    /// When a pool thread started the task (``Monotonic/now()``), or `nil` before.
    public var timeStarted: Double? {
        Self.time(self.startedAt)
    }

    /// When the task finished (``Monotonic/now()``), or `nil` before.
    public var timeCompleted: Double? {
        Self.time(self.completedAt)
    }

    /// The value the body returned, once the task is completed.
    public var result: (any Sendable)? {
        self.outcome.withLock { $0.result }
    }

    /// The error the body threw (or a ``TaskError`` for a cancelled or refused task), once finished.
    public var error: (any Error)? {
        self.outcome.withLock { $0.error }
    }

    /// Whether the task is `completed`, `failed` or `canceled`.
    public var isFinished: Bool {
        self.status.isFinal
    }

    /// `task N (name)`, or `task N` without a name.
    public var description: String {
        if let name = self.name {
            return "task \(self.id) (\(name))"
        }
        return "task \(self.id)"
    }

    // MARK: - Waiting

    /// Blocks the calling thread until the task finishes, or until `timeout` has passed.
    ///
    /// - Parameter timeout: The longest wait.
    /// - Returns: `true` if the task finished, `false` on timeout.
    /// - Important: Do not call it from a pool thread for a task that needs a free thread of the same
    ///   supervisor to start, or from Swift concurrency's cooperative threads; use ``wait()`` there.
    @discardableResult
    public func wait(timeout: Duration) -> Bool {
        self.wait(timeout: timeout.inSeconds)
    }

    /// Blocks the calling thread until the task finishes, or until `timeout` seconds have passed.
    ///
    /// - Parameter timeout: The longest wait in seconds; `nil` waits for ever.
    /// - Returns: `true` if the task finished, `false` on timeout.
    /// - Important: Do not call it from a pool thread for a task that needs a free thread of the same
    ///   supervisor to start, or from Swift concurrency's cooperative threads; use ``wait()`` there.
    @discardableResult
    public func wait(timeout: Double?) -> Bool {
        let deadline = timeout.map { Monotonic.now() + max(0, $0) }
        let waiter: Waiter? = self.outcome.withLock { outcome in
            if outcome.isReleased {
                return nil
            }
            let waiter = Waiter()
            outcome.observers.append(.waiter(waiter))
            return waiter
        }
        guard let waiter else {
            return true
        }
        if waiter.wait(until: deadline) {
            return true
        }
        // Timed out: forget the waiter so that repeated timed waits do not pile up.
        self.outcome.withLock { outcome in
            outcome.observers.removeAll { observer in
                if case .waiter(let registered) = observer {
                    return registered === waiter
                }
                return false
            }
        }
        return false
    }

    /// Suspends until the task finishes, without blocking a thread.
    public func wait() async {
        if self.outcome.withLock({ $0.isReleased }) {
            return
        }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let finished = self.outcome.withLock { outcome in
                if outcome.isReleased {
                    return true
                }
                outcome.observers.append(.continuation(continuation))
                return false
            }
            if finished {
                continuation.resume()
            }
        }
    }

    /// Waits for the task and returns its result as a `T`.
    ///
    /// A body that returned `nil` gives `nil` when `T` is an `Optional`.
    ///
    /// - Parameter type: The expected type of the result.
    /// - Returns: The result.
    /// - Throws: The body's error if the task failed; ``TaskError`` with ``TaskError/Code/canceled`` if
    ///   it was cancelled, or ``TaskError/Code/typeMismatch`` if the result is not a `T`.
    public func value<T: Sendable>(as type: T.Type = T.self) async throws -> T {
        await self.wait()
        return try self.finishedValue(as: type)
    }

    /// The result of a finished task as a `T` (see ``value(as:)``).
    func finishedValue<T: Sendable>(as type: T.Type) throws -> T {
        let (result, error) = self.outcome.withLock { ($0.result, $0.error) }
        switch self.status {
        case .completed:
            if let value = result as? T {
                return value
            }
            throw TaskError(
                .typeMismatch,
                "\(self) returned \(result.map { "\(Swift.type(of: $0))" } ?? "nil"), not \(T.self)"
            )
        case .failed:
            throw error ?? TaskError(.canceled, "\(self) failed")
        case .canceled:
            throw error ?? TaskError(.canceled, "\(self) was canceled")
        case .queued, .delayed, .started:
            throw TaskError(.timedOut, "\(self) has not finished")
        }
    }

    // MARK: - Control

    /// Cancels the task if it has not started.
    ///
    /// A queued or delayed task becomes `canceled` (its ``onFinish(_:)`` handlers run, on the calling
    /// thread); a started or finished task is not affected.
    ///
    /// - Returns: `true` if the task was cancelled by this call.
    @discardableResult
    public func cancel() -> Bool {
        guard let supervisor = self.supervisor else {
            return false
        }
        return supervisor.cancel(self)
    }

    /// Runs `body` once, when the task finishes.
    ///
    /// If the task has finished, `body` runs at once on the calling thread. Otherwise it runs on the
    /// thread that finishes the task: for a task that ran, that is its pool thread, and the supervisor
    /// counts the task as done only after every handler returned; so work submitted from a handler
    /// keeps the supervisor from being idle (``TaskSupervisor/waitUntilIdle()``).
    ///
    /// - Parameter body: The handler; it gets the finished task.
    public func onFinish(_ body: @escaping @Sendable (SupervisorTask) -> Void) {
        self.onFinish(awaiting: false, body)
    }

    /// ``onFinish(_:)`` for a handler that stands for code waiting for the result (async Lua code in
    /// `wait_completed`): while it is registered, the task ``isAwaited``.
    package func onFinish(awaiting: Bool, _ body: @escaping @Sendable (SupervisorTask) -> Void) {
        let finished = self.outcome.withLock { outcome in
            if outcome.isFinished {
                return true
            }
            outcome.observers.append(.handler(body, awaiting: awaiting))
            return false
        }
        if finished {
            body(self)
        }
    }

    /// Whether code waits for the task now (or did when it finished, for its ``onFinish(_:)`` handlers): a
    /// blocked ``wait(timeout:)``, a suspended ``wait()`` or ``value(as:)``, or a handler that stands for a
    /// waiter. Its failure then reaches code that handles it, so the host logs it at debug level rather than as
    /// an error nobody saw.
    package var isAwaited: Bool {
        self.outcome.withLock { $0.wasAwaited || Self.awaits($0.observers) }
    }

    private static func awaits(_ observers: [Observer]) -> Bool {
        observers.contains { observer in
            switch observer {
            case .handler(_, let awaiting): return awaiting
            case .continuation, .waiter: return true
            }
        }
    }

    // MARK: - Internal transitions

    /// Moves the status from `expected` to `desired` if it is still `expected`.
    @inline(__always)
    func transition(from expected: TaskStatus, to desired: TaskStatus) -> Bool {
        self.statusCode.compareExchange(
            expected: expected.code,
            desired: desired.code,
            ordering: .acquiringAndReleasing
        ).exchanged
    }

    /// Whether the task is still waiting in a queue (not cancelled).
    @inline(__always)
    var isQueued: Bool {
        self.statusCode.load(ordering: .relaxed) == TaskStatus.queued.code
    }

    /// The queue time as a number (`.infinity` if unset), for the latency checks.
    @inline(__always)
    var queuedTime: Double {
        let bits = self.queuedAt.load(ordering: .relaxed)
        return bits == Self.unsetTime ? .infinity : Double(bitPattern: bits)
    }

    /// Marks a latency level as reported; returns `true` only the first time.
    func claimLatencyReport(_ level: LatencyLevel) -> Bool {
        self.latencyReported.bitwiseOr(level.rawValue, ordering: .relaxed).oldValue & level.rawValue == 0
    }

    func setTimeQueued(_ time: Double) {
        self.queuedAt.store(time.bitPattern, ordering: .releasing)
    }

    func setTimeStarted(_ time: Double) {
        self.startedAt.store(time.bitPattern, ordering: .releasing)
        if let metrics = self.metrics {
            let queued = self.queuedAt.load(ordering: .acquiring)
            metrics.taskStarted(queuedAt: queued == Self.unsetTime ? nil : Double(bitPattern: queued), at: time)
        }
    }

    /// Records the outcome, sets the final status, then notifies the observers (outside the lock).
    func finish(status: TaskStatus, result: (any Sendable)?, error: (any Error)?, at time: Double) {
        self.release(self.finishRunningHandlers(status: status, result: result, error: error, at: time))
    }

    /// Records the outcome and sets the final status, runs the ``onFinish(_:)`` handlers, and returns the waiters
    /// still to be woken.
    ///
    /// A pool thread wakes them only after the supervisor has stopped counting the task as running, so that a
    /// caller of `wait` that then asks ``TaskSupervisor/task(id:)`` or ``TaskSupervisor/info()`` sees the task
    /// gone, while handlers still run before the supervisor can become idle.
    func finishRunningHandlers(status: TaskStatus, result: (any Sendable)?, error: (any Error)?, at time: Double)
        -> [Observer]
    {
        let observers = self.outcome.withLock { outcome -> [Observer] in
            outcome.isFinished = true
            outcome.result = result
            outcome.error = error
            self.completedAt.store(time.bitPattern, ordering: .releasing)
            self.statusCode.store(status.code, ordering: .releasing)
            let observers = outcome.observers
            outcome.wasAwaited = Self.awaits(observers)
            outcome.observers = []
            return observers
        }
        if let metrics = self.metrics {
            let started = self.startedAt.load(ordering: .acquiring)
            metrics.taskFinished(
                status, startedAt: started == Self.unsetTime ? nil : Double(bitPattern: started), at: time)
        }
        var waiters: [Observer] = []
        for observer in observers {
            if case .handler(let body, _) = observer {
                body(self)
            } else {
                waiters.append(observer)
            }
        }
        return waiters
    }

    /// The supervisor no longer counts the finished task: wakes the waiters returned by
    /// ``finishRunningHandlers(status:result:error:at:)`` and those that came since.
    func release(_ observers: [Observer]) {
        let late = self.outcome.withLock { outcome -> [Observer] in
            outcome.isReleased = true
            let late = outcome.observers
            outcome.observers = []
            return late
        }
        Self.wake(observers)
        Self.wake(late)
    }

    /// Wakes waiters.
    private static func wake(_ observers: [Observer]) {
        for observer in observers {
            switch observer {
            case .handler(let body, _):
                preconditionFailure("handler \(String(describing: body)) left to wake")
            case .continuation(let continuation):
                continuation.resume()
            case .waiter(let waiter):
                waiter.signal()
            }
        }
    }

    private static func time(_ storage: borrowing Atomic<UInt64>) -> Double? {
        let bits = storage.load(ordering: .acquiring)
        return bits == Self.unsetTime ? nil : Double(bitPattern: bits)
    }
}
