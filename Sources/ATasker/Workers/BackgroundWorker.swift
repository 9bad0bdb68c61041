/// A worker that runs its executor in a loop, on one pool thread, until it is stopped (atasker's
/// `BackgroundWorker`).
///
/// The loop is one long pool task: between two executions it only checks whether a stop was
/// requested. The executor returns `false` to stop the worker.
///
/// ```swift
/// let poller = try BackgroundWorker(supervisor: supervisor, name: "poller") { worker in
///     let message = connection.receive()  // blocks until something arrives
///     handle(message)
///     return true
/// }
/// try poller.start()
/// ```
///
/// - Important: The worker holds a pool thread for as long as it runs, so it counts against the
///   pool's size for its priority.
public final class BackgroundWorker: Worker {
    private let executor: Executor

    /// A synchronous executor, run on a pool thread, or an async one, run in a Swift task.
    private enum Executor: Sendable {
        case sync(@Sendable (BackgroundWorker) throws -> Bool)
        case async(@Sendable (BackgroundWorker) async throws -> Void)
    }

    /// Creates a background worker; it does nothing until ``Worker/start(name:priority:)``.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor whose pool runs the loop.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the loop's pool task. Default: ``TaskPriority/normal``.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; it returns `false` to stop the worker.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/nameInUse`` if `name` is taken.
    public init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (BackgroundWorker) throws -> Bool
    ) throws {
        self.executor = .sync(executor)
        try super.init(kind: .background, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    /// Creates a background worker whose executor is `async`; it does nothing until
    /// ``Worker/start(name:priority:)``.
    ///
    /// Each execution runs in a Swift task of its own, on the concurrency runtime, so no pool thread is held while
    /// it is suspended (an `await` on a network read, `Task.sleep`); executions follow each other as the
    /// synchronous executor's do, never overlapping. To stop from inside, call ``Worker/stop(wait:drain:)``.
    ///
    /// ```swift
    /// let reader = try BackgroundWorker(supervisor: supervisor, name: "reader") { _ in
    ///     let message = try await connection.receive()  // suspends: no thread waits
    ///     handle(message)
    /// }
    /// try reader.start()
    /// reader.stop()  // cancels the Swift task of the running execution, and waits for it to end
    /// ```
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor that runs the worker.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the worker's pool task (``Hooks/onStart`` runs there). Default:
    ///     ``TaskPriority/normal``.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution. An error it throws goes to ``Hooks/onError`` (or the log), as a synchronous
    ///     executor's does; a `CancellationError` thrown after a stop cancelled it is not an error.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/nameInUse`` if `name` is taken.
    /// - Important: A stop (without drain) cancels the running execution's Swift task; the execution should
    ///   return soon after (a cancelled `Task.sleep` throws at once). ``Worker/stop(wait:drain:)`` waits for it.
    public init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (BackgroundWorker) async throws -> Void
    ) throws {
        self.executor = .async(executor)
        try super.init(kind: .background, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    override func kindDidStart(now: Double, effects: inout WorkerStateMachine.Effects) {
        self.wakeLocked(&effects)
    }

    override func kindNextStep(now: Double, draining: Bool) -> Step {
        draining ? .idle(deadline: nil) : .execute
    }

    override func kindExecute() -> Bool {
        switch self.executor {
        case .sync(let executor):
            return self.invoke { try executor(self) }
        case .async(let executor):
            return self.executeAsync { try await executor(self) }
        }
    }
}

/// `BackgroundWorker` is safe to share between threads for the reasons given on `Worker`'s conformance: its
/// own mutable fields are protected by `core`, and its executor is an immutable `Sendable` closure.
extension BackgroundWorker: @unchecked Sendable {}
