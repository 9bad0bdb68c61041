import Synchronization

/// A worker that runs its executor on a schedule (atasker's `BackgroundIntervalWorker`).
///
/// The schedule is one of:
/// - **`interval`**: executions start at `start + delayBefore + k·interval` (k = 0, 1, 2, …) on the
///   monotonic clock. A late execution does not shift later ones. Ticks that pass while an
///   execution runs are skipped and counted (``Worker/skippedTicks``), never piled up: the next
///   execution starts at the first tick after the overrun execution ended. If the worker starts
///   late (a busy pool), it runs once for the ticks that passed and counts the others as skipped.
/// - **`delay`**: each execution starts `delay + delayBefore` seconds after the previous one ended.
/// - neither: executions follow each other, `delayBefore` apart.
///
/// `delayBefore` also delays the first execution after a start. Waiting uses the supervisor's
/// timers: no pool thread is held between executions, and nothing polls (an idle pool thread sleeps
/// until the next deadline of all timers and runs the tick that comes due itself). The schedule
/// counts from the moment `start` was called.
///
/// ```swift
/// let sampler = try IntervalWorker(supervisor: supervisor, name: "sampler", interval: 0.1) { _ in
///     record(sample())
///     return true
/// }
/// try sampler.start()
/// sampler.trigger()  // one extra sample now; the 100 ms ticks stay where they were
/// ```
public final class IntervalWorker: Worker {
    private let executor: Executor

    /// A synchronous executor, run on a pool thread, or an async one, run in a Swift task.
    private enum Executor: Sendable {
        case sync(@Sendable (IntervalWorker) throws -> Bool)
        case async(@Sendable (IntervalWorker) async throws -> Void)
    }

    // protected by `core`
    private var schedule: Schedule
    /// When the current start's ticks are counted from (interval mode): start + delayBefore.
    private var origin = 0.0
    /// The index of the next tick to run (interval mode).
    private var nextTick = 0
    /// When the next execution is due (delay mode, and the first execution of every mode).
    private var nextDue = 0.0
    /// A ``trigger()`` asked for an execution.
    private var triggered = false

    /// The shortest interval accepted: one microsecond.
    public static let minimumInterval: Double = 1e-6

    /// An interval worker's timing parameters.
    struct Schedule: Sendable {
        var interval: Double?
        var delay: Double?
        var delayBefore: Double

        /// Checks the parameters as given to `init` or `start`.
        static func validated(
            interval: Double?,
            delay: Double?,
            delayBefore: Double?,
            worker: String
        ) throws -> (interval: Double?, delay: Double?, delayBefore: Double?) {
            if interval != nil && delay != nil {
                throw WorkerError(
                    .invalidArgument,
                    "interval worker \(worker): interval and delay cannot be used together; give one of them"
                )
            }
            // Tick numbers are `Int`s counted from the start: an interval below a microsecond would make them
            // overflow (and a machine cannot run that often anyway).
            if let interval, !(interval >= IntervalWorker.minimumInterval && interval.isFinite) {
                throw WorkerError(
                    .invalidArgument,
                    "interval worker \(worker): interval must be a number of seconds >= 0.000001, got \(interval)"
                )
            }
            for (label, value) in [("delay", delay), ("delayBefore", delayBefore)] {
                if let value, !(value >= 0 && value.isFinite) {
                    throw WorkerError(
                        .invalidArgument,
                        "interval worker \(worker): \(label) must be zero or a positive number of seconds, got \(value)"
                    )
                }
            }
            return (interval, delay, delayBefore)
        }
    }

    /// Creates an interval worker; it does nothing until started.
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor whose pool runs the executions.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the executions. Default: ``TaskPriority/normal``.
    ///   - interval: Seconds between the starts of executions (positive); excludes `delay`.
    ///   - delay: Seconds between the end of an execution and the start of the next (zero or more).
    ///   - delayBefore: Seconds to wait before each execution (zero or more). Default: `0`.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution; it returns `false` to stop the worker.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` for a negative value or
    ///   for both `interval` and `delay`; ``WorkerError/Code/nameInUse`` if `name` is taken.
    public init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        interval: Double? = nil,
        delay: Double? = nil,
        delayBefore: Double? = nil,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (IntervalWorker) throws -> Bool
    ) throws {
        let checked = try Schedule.validated(
            interval: interval,
            delay: delay,
            delayBefore: delayBefore,
            worker: name.map { "\"\($0)\"" } ?? "(unnamed)"
        )
        self.executor = .sync(executor)
        self.schedule = Schedule(
            interval: checked.interval, delay: checked.delay, delayBefore: checked.delayBefore ?? 0)
        try super.init(kind: .interval, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    /// Creates an interval worker whose executor is `async`; it does nothing until started.
    ///
    /// Each execution runs in a Swift task of its own, on the concurrency runtime, so no pool thread is held while
    /// it is suspended. The schedule is the synchronous executor's: an execution lasts until its task ends, and
    /// ticks that pass meanwhile are skipped. To stop from inside, call ``Worker/stop(wait:drain:)``.
    ///
    /// ```swift
    /// let poller = try IntervalWorker(supervisor: supervisor, name: "poller", interval: 5) { _ in
    ///     try await refresh()  // suspends: no thread waits
    /// }
    /// try poller.start()
    /// ```
    ///
    /// - Parameters:
    ///   - supervisor: The supervisor that runs the worker.
    ///   - name: A name unique in the supervisor; `nil` for a generated `worker-N`.
    ///   - priority: The priority of the worker's pool tasks. Default: ``TaskPriority/normal``.
    ///   - interval: Seconds between the starts of executions (positive); excludes `delay`.
    ///   - delay: Seconds between the end of an execution and the start of the next (zero or more).
    ///   - delayBefore: Seconds to wait before each execution (zero or more). Default: `0`.
    ///   - hooks: Functions called around the executions.
    ///   - executor: One execution. An error it throws goes to ``Hooks/onError`` (or the log); a
    ///     `CancellationError` thrown after a stop cancelled it is not an error.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` for a negative value or
    ///   for both `interval` and `delay`; ``WorkerError/Code/nameInUse`` if `name` is taken.
    /// - Important: A stop (without drain) cancels the running execution's Swift task;
    ///   ``Worker/stop(wait:drain:)`` waits for it to end.
    public init(
        supervisor: TaskSupervisor,
        name: String? = nil,
        priority: TaskPriority = .normal,
        interval: Double? = nil,
        delay: Double? = nil,
        delayBefore: Double? = nil,
        hooks: Hooks = Hooks(),
        executor: @escaping @Sendable (IntervalWorker) async throws -> Void
    ) throws {
        let checked = try Schedule.validated(
            interval: interval,
            delay: delay,
            delayBefore: delayBefore,
            worker: name.map { "\"\($0)\"" } ?? "(unnamed)"
        )
        self.executor = .async(executor)
        self.schedule = Schedule(
            interval: checked.interval, delay: checked.delay, delayBefore: checked.delayBefore ?? 0)
        try super.init(kind: .interval, supervisor: supervisor, name: name, priority: priority, hooks: hooks)
    }

    /// Seconds between the starts of executions, if the worker runs on an interval.
    public var interval: Double? {
        self.core.lock()
        defer { self.core.unlock() }
        return self.schedule.interval
    }

    /// Seconds between the end of an execution and the start of the next, if the worker runs with a
    /// delay.
    public var delay: Double? {
        self.core.lock()
        defer { self.core.unlock() }
        return self.schedule.delay
    }

    /// Seconds waited before each execution.
    public var delayBefore: Double {
        self.core.lock()
        defer { self.core.unlock() }
        return self.schedule.delayBefore
    }

    /// Starts the worker, optionally with a new schedule, name or priority (atasker's `_interval`,
    /// `_delay`, `_delay_before`, `_name`, `_priority`).
    ///
    /// Giving `interval` switches the worker to interval mode (clearing its delay), and giving
    /// `delay` to delay mode (clearing its interval). The new values stay for later starts. Starting
    /// a running worker does nothing and ignores the overrides.
    ///
    /// - Parameters:
    ///   - interval: A new interval (positive); excludes `delay`.
    ///   - delay: A new delay (zero or more).
    ///   - delayBefore: A new delay before each execution (zero or more).
    ///   - name: A new name.
    ///   - priority: A new priority.
    /// - Returns: `true` if the worker starts; `false` if it was running already.
    /// - Throws: ``WorkerError`` for invalid values, a name in use, or a stopped supervisor.
    @discardableResult
    public func start(
        interval: Double? = nil,
        delay: Double? = nil,
        delayBefore: Double? = nil,
        name: String? = nil,
        priority: TaskPriority? = nil
    ) throws -> Bool {
        try self.start(
            interval: interval, delay: delay, delayBefore: delayBefore, name: name, priority: priority,
            calledAt: nil)
    }

    /// ``start(interval:delay:delayBefore:name:priority:)`` for a caller that did work of its own before
    /// (decoding a script's arguments): the schedule counts from `calledAt`, a ``Monotonic/now()`` taken
    /// when the caller's start began, so that this work does not shift every tick.
    @discardableResult
    package func start(
        interval: Double?,
        delay: Double?,
        delayBefore: Double?,
        name: String?,
        priority: TaskPriority?,
        calledAt: Double?
    ) throws -> Bool {
        let checked = try Schedule.validated(
            interval: interval,
            delay: delay,
            delayBefore: delayBefore,
            worker: "\"\(self.name)\""
        )
        return try self.start(name: name, priority: priority, calledAt: calledAt) {
            if let interval = checked.interval {
                self.schedule.interval = interval
                self.schedule.delay = nil
            }
            if let delay = checked.delay {
                self.schedule.delay = delay
                self.schedule.interval = nil
            }
            if let delayBefore = checked.delayBefore {
                self.schedule.delayBefore = delayBefore
            }
        }
    }

    /// Runs the executor at once, from any thread, without moving the schedule.
    ///
    /// If an execution is running, the executor runs once more right after it; triggers that arrive
    /// before that run starts are merged into it. A triggered execution does not wait `delayBefore`.
    /// In delay mode, the next scheduled execution is counted from the end of the triggered one.
    ///
    /// - Returns: `true` if an execution will run; `false` if the worker is not running.
    @discardableResult
    public func trigger() -> Bool {
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        let accepted = self.core.lockedValue.lifecycle == .running
        if accepted {
            self.triggered = true
            self.wakeLocked(&effects)
        }
        self.core.unlock()
        self.perform(effects)
        return accepted
    }

    // MARK: - Kind hooks

    override func kindDidStart(now: Double, effects: inout WorkerStateMachine.Effects) {
        self.triggered = false
        self.origin = now + self.schedule.delayBefore
        self.nextTick = 0
        self.nextDue = self.origin
        if self.schedule.delayBefore > 0 {
            self.core.lockedValue.arm(self.nextDue, effects: &effects)
        } else {
            self.wakeLocked(&effects)
        }
    }

    override func kindNextStep(now: Double, draining: Bool) -> Step {
        guard !draining else {
            return .idle(deadline: nil)
        }
        let due = self.dueTime
        if self.triggered {
            self.triggered = false
            if now >= due {
                self.consumeDue(now: now)
            }
            return .execute
        }
        if now >= due {
            self.consumeDue(now: now)
            return .execute
        }
        return .idle(deadline: due)
    }

    override func kindExecute() -> Bool {
        switch self.executor {
        case .sync(let executor):
            return self.invoke { try executor(self) }
        case .async(let executor):
            return self.executeAsync { try await executor(self) }
        }
    }

    override func kindExecutionEnded(now: Double) {
        if let interval = self.schedule.interval {
            // Ticks that passed during the execution are skipped: the next one is the first at or
            // after `now`.
            let first = Int(((now - self.origin) / interval).rounded(.up))
            if first > self.nextTick {
                self.skippedCount.wrappingAdd(first - self.nextTick, ordering: .relaxed)
                self.metrics.ticksSkipped(first - self.nextTick)
                self.nextTick = first
            }
        } else {
            self.nextDue = now + (self.schedule.delay ?? 0) + self.schedule.delayBefore
        }
    }

    override var kindDeadlineAfterDue: Double? {
        // Only the interval mode knows it: a delay counts from the end of the execution. The tick that
        // is due now (index `nextTick`, the first one at `origin`) is taken by the coming execution.
        self.schedule.interval.map { self.origin + Double(self.nextTick + 1) * $0 }
    }

    override func kindStopRequested(drain: Bool, wasDraining: Bool) {
        self.triggered = false
    }

    // MARK: - Schedule

    /// When the next scheduled execution is due.
    private var dueTime: Double {
        if let interval = self.schedule.interval, self.nextTick > 0 {
            return self.origin + Double(self.nextTick) * interval
        }
        return self.nextDue
    }

    /// Takes the scheduled execution that is due at `now`. In interval mode, when several ticks have
    /// passed (a late start), it runs once for the last of them and counts the others as skipped.
    private func consumeDue(now: Double) {
        guard let interval = self.schedule.interval else {
            // Delay mode: the next due time is set when this execution ends.
            self.nextDue = .infinity
            return
        }
        let last = max(self.nextTick, Int(((now - self.origin) / interval).rounded(.down)))
        if last > self.nextTick {
            self.skippedCount.wrappingAdd(last - self.nextTick, ordering: .relaxed)
            self.metrics.ticksSkipped(last - self.nextTick)
        }
        self.nextTick = last + 1
    }
}

/// `IntervalWorker` is safe to share between threads for the reasons given on `Worker`'s conformance: its
/// own mutable fields are protected by `core`, and its executor is an immutable `Sendable` closure.
extension IntervalWorker: @unchecked Sendable {}
