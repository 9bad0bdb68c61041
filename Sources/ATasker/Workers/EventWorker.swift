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
    private let executor: @Sendable (EventWorker) throws -> Bool
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
        self.executor = executor
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
        self.invoke { try self.executor(self) }
    }

    override func kindStopRequested(drain: Bool, wasDraining: Bool) {
        self.pending = false
    }
}

/// `EventWorker` is safe to share between threads for the reasons given on `Worker`'s conformance: its
/// own mutable fields are protected by `core`, and its executor is an immutable `Sendable` closure.
extension EventWorker: @unchecked Sendable {}
