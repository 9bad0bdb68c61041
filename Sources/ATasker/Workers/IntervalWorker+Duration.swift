// `Duration` forms of the interval worker's initialisers and `start`; the `Double` forms take seconds. Each form
// has its interval or delay without a default, so that a call giving neither keeps meaning the `Double` form.
extension IntervalWorker {
    /// Creates an interval worker that runs every `interval`; it does nothing until started.
    ///
    /// The same as the initialiser that takes seconds, with the times as `Duration`s (`.milliseconds(100)`).
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor whose pool runs the executions.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the executions. Default: ``TaskPriority/normal``.
    ///   - interval: The time between the starts of executions (at least ``minimumInterval`` seconds).
    ///   - delayBefore: The time to wait before each execution (zero or more). Default: `.zero`.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; it returns `false` to stop the worker.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` for an invalid time, or
    ///   ``WorkerError/Code/nameInUse`` if `name` is taken.
    public convenience init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        interval: Duration,
        delayBefore: Duration = .zero,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (IntervalWorker) throws -> Bool
    ) throws {
        try self.init(
            supervisor: supervisor, name: name, priority: priority, interval: interval.inSeconds, delay: nil,
            delayBefore: delayBefore.inSeconds, hooks: hooks, executor: executor)
    }

    /// Creates an interval worker that waits `delay` after each execution; it does nothing until started.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor whose pool runs the executions.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the executions. Default: ``TaskPriority/normal``.
    ///   - delay: The time between the end of an execution and the start of the next (zero or more).
    ///   - delayBefore: The time to wait before each execution (zero or more). Default: `.zero`.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; it returns `false` to stop the worker.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` for an invalid time, or
    ///   ``WorkerError/Code/nameInUse`` if `name` is taken.
    public convenience init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        delay: Duration,
        delayBefore: Duration = .zero,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (IntervalWorker) throws -> Bool
    ) throws {
        try self.init(
            supervisor: supervisor, name: name, priority: priority, interval: nil, delay: delay.inSeconds,
            delayBefore: delayBefore.inSeconds, hooks: hooks, executor: executor)
    }

    /// Creates an interval worker with an `async` executor that runs every `interval`; it does nothing until
    /// started. Executions run in Swift tasks, as for the `Double` form's async initialiser.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor that runs the worker.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the worker's pool tasks. Default: ``TaskPriority/normal``.
    ///   - interval: The time between the starts of executions (at least ``minimumInterval`` seconds).
    ///   - delayBefore: The time to wait before each execution (zero or more). Default: `.zero`.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; a stop without drain cancels its Swift task.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` for an invalid time, or
    ///   ``WorkerError/Code/nameInUse`` if `name` is taken.
    public convenience init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        interval: Duration,
        delayBefore: Duration = .zero,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (IntervalWorker) async throws -> Void
    ) throws {
        try self.init(
            supervisor: supervisor, name: name, priority: priority, interval: interval.inSeconds, delay: nil,
            delayBefore: delayBefore.inSeconds, hooks: hooks, executor: executor)
    }

    /// Creates an interval worker with an `async` executor that waits `delay` after each execution; it does
    /// nothing until started. Executions run in Swift tasks, as for the `Double` form's async initialiser.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor that runs the worker.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the worker's pool tasks. Default: ``TaskPriority/normal``.
    ///   - delay: The time between the end of an execution and the start of the next (zero or more).
    ///   - delayBefore: The time to wait before each execution (zero or more). Default: `.zero`.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; a stop without drain cancels its Swift task.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` for an invalid time, or
    ///   ``WorkerError/Code/nameInUse`` if `name` is taken.
    public convenience init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        delay: Duration,
        delayBefore: Duration = .zero,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (IntervalWorker) async throws -> Void
    ) throws {
        try self.init(
            supervisor: supervisor, name: name, priority: priority, interval: nil, delay: delay.inSeconds,
            delayBefore: delayBefore.inSeconds, hooks: hooks, executor: executor)
    }
}
