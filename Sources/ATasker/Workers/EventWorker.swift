/// A worker that runs its executor once each time it is triggered (atasker's `BackgroundEventWorker`).
///
/// Triggers that arrive while the worker waits are merged: however many there were, the executor
/// runs once. A trigger that arrives while an execution runs is dropped, unless it is forced: then
/// the executor runs once more after the current execution (atasker 0.7).
///
/// ```swift
/// let flusher = try EventWorker(supervisor: supervisor, name: "flusher") { _ in
///     cache.flush()
///     return true
/// }
/// try flusher.start()
/// flusher.trigger()              // runs it
/// flusher.trigger(force: true)   // runs it again, even if the first run has not ended
/// ```
public final class EventWorker: Worker {
    private let executor: Executor

    /// A synchronous executor, run on a pool thread, or an async one, run in a Swift task.
    private enum Executor: Sendable {
        case sync(@Sendable (EventWorker) throws -> Bool)
        case async(@Sendable (EventWorker) async throws -> Void)
    }
    // protected by `core`
    private var pending = false

    /// Creates an event worker; it does nothing until ``Worker/start(name:priority:)``.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor whose pool runs the executions.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the executions. Default: ``TaskPriority/normal``.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; it returns `false` to stop the worker.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/nameInUse`` if `name` is taken.
    public init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (EventWorker) throws -> Bool
    ) throws {
        self.executor = .sync(executor)
        try super.init(kind: .event, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    /// Creates an event worker whose executor is `async`; it does nothing until ``Worker/start(name:priority:)``.
    ///
    /// Each execution runs in a Swift task of its own, on the concurrency runtime, so no pool thread is held while
    /// it is suspended; triggers are merged or dropped as for a synchronous executor (an execution runs until its
    /// task ends). To stop from inside, call ``Worker/stop(wait:drain:)``.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor that runs the worker.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the worker's pool tasks. Default: ``TaskPriority/normal``.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution. An error it throws goes to ``Hooks/onError`` (or the log); a
    ///     `CancellationError` thrown after a stop cancelled it is not an error.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/nameInUse`` if `name` is taken.
    /// - Important: A stop (without drain) cancels the running execution's Swift task;
    ///   ``Worker/stop(wait:drain:)`` waits for it to end.
    public init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (EventWorker) async throws -> Void
    ) throws {
        self.executor = .async(executor)
        try super.init(kind: .event, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    /// Triggers the worker, from any thread.
    ///
    /// - Parameter force: Whether a trigger that arrives during an execution runs the executor once
    ///   more after it (`true`) or is dropped (`false`, the default).
    /// - Returns: `true` if the trigger will run the executor (or joins a run already due); `false`
    ///   if it was dropped, or if the worker is not running.
    @discardableResult
    public func trigger(force: Bool = false) -> Bool {
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        let accepted: Bool
        if self.core.lockedValue.lifecycle != .running {
            accepted = false
        } else if self.core.lockedValue.isExecuting && !force {
            accepted = false
        } else {
            self.pending = true
            self.wakeLocked(&effects)
            accepted = true
        }
        self.core.unlock()
        self.perform(effects)
        return accepted
    }

    override func kindDidStart(now: Double, effects: inout WorkerStateMachine.Effects) {
        self.pending = false
    }

    override func kindNextStep(now: Double, draining: Bool) -> Step {
        guard !draining, self.pending else {
            return .idle(deadline: nil)
        }
        self.pending = false
        return .execute
    }

    override func kindExecute() -> Bool {
        switch self.executor {
        case .sync(let executor):
            return self.invoke { try executor(self) }
        case .async(let executor):
            return self.executeAsync { try await executor(self) }
        }
    }

    override func kindStopRequested(drain: Bool, wasDraining: Bool) {
        self.pending = false
    }
}

/// `EventWorker` is safe to share between threads for the reasons given on `Worker`'s conformance: its
/// own mutable fields are protected by `core`, and its executor is an immutable `Sendable` closure.
extension EventWorker: @unchecked Sendable {}
