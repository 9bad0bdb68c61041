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
    private let executor: @Sendable (BackgroundWorker) throws -> Bool

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
        self.executor = executor
        try super.init(kind: .background, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    override func kindDidStart(now: Double, effects: inout WorkerStateMachine.Effects) {
        self.wakeLocked(&effects)
    }

    override func kindNextStep(now: Double, draining: Bool) -> Step {
        draining ? .idle(deadline: nil) : .execute
    }

    override func kindExecute() -> Bool {
        self.invoke { try self.executor(self) }
    }
}

/// `BackgroundWorker` is safe to share between threads for the reasons given on `Worker`'s conformance: its
/// own mutable fields are protected by `core`, and its executor is an immutable `Sendable` closure.
extension BackgroundWorker: @unchecked Sendable {}
