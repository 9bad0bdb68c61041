import Synchronization

/// A named, long-lived job of a ``TaskSupervisor`` that runs an executor again and again, as
/// atasker's workers do.
///
/// `Worker` is the common base of the four kinds; create one of them:
/// - ``BackgroundWorker`` runs its executor in a loop;
/// - ``IntervalWorker`` runs it on a schedule (an interval, or a delay between executions);
/// - ``QueueWorker`` runs it for each item put into its queue;
/// - ``EventWorker`` runs it when triggered.
///
/// ```swift
/// let worker = try IntervalWorker(supervisor: supervisor, name: "heartbeat", interval: 1) { _ in
///     print("tick")
///     return true  // false would stop the worker
/// }
/// try worker.start()
/// // ...
/// worker.stop()
/// ```
///
/// Every worker follows the same rules:
/// - **Names are unique** in a supervisor; without a name the worker gets `worker-N`.
/// - **Executions never overlap**, and each one happens-after the one before, even when they run on
///   different pool threads. Each execution runs in a pool task of the supervisor, submitted with the
///   worker's ``priority`` (so the pool's reserves apply).
/// - The executor returns `true` to go on and `false` to stop the worker. An error it throws is
///   counted, then given to ``Hooks/onError`` or, without one, logged with the worker's name; the
///   worker goes on.
/// - A running worker retains the supervisor's activity (``TaskSupervisor/retainActivity()``), so
///   ``TaskSupervisor/waitUntilIdle()`` waits for it; and it keeps itself alive until it stops.
/// - ``stop(wait:drain:)`` lets a running execution finish; called from inside the worker (its
///   executor, ``Hooks/onError`` or ``Hooks/onStop``) it never waits for itself. Stopping a stopped
///   worker, and starting a running one, do nothing.
/// - Stopping the supervisor stops its workers.
public class Worker: CustomStringConvertible {
    /// Which kind of worker this is.
    public enum Kind: String, Sendable, Hashable {
        /// A ``BackgroundWorker``.
        case background
        /// An ``IntervalWorker``.
        case interval
        /// A ``QueueWorker``.
        case queue
        /// An ``EventWorker``.
        case event
    }

    /// Where a worker is in its life.
    public enum State: String, Sendable, Hashable {
        /// Never started, or stopped: nothing runs or is scheduled.
        case stopped
        /// Started: executions run when the worker's kind says so.
        case running
        /// A stop was requested; the running execution (and, with `drain`, the items left) finishes.
        case stopping
    }

    /// Functions a worker calls around its executions (the Lua layer opens and closes the worker's
    /// Lua state in them).
    public struct Hooks: Sendable {
        /// Called on the pool thread before the first execution of each start.
        ///
        /// If it throws, the error is reported as an executor error would be and the worker stops
        /// without running its executor; ``onStop`` is not called for that start.
        public var onStart: (@Sendable (Worker) throws -> Void)?

        /// Called once after the last execution of a start has ended, for each start whose
        /// ``onStart`` returned normally (a worker stopped before its first execution calls neither).
        ///
        /// It runs on the pool thread of the last execution, or on the thread that stops the worker,
        /// and never concurrently with an execution. ``Worker/stop(wait:drain:)`` returns after it.
        public var onStop: (@Sendable (Worker) -> Void)?

        /// Called with an error that the executor (or ``onStart``) threw, on the execution's thread.
        /// Without it, the error is logged through the supervisor's logger with the worker's name.
        public var onError: (@Sendable (Worker, any Error) -> Void)?

        /// Creates hooks; each is optional.
        ///
        /// - Parameters:
        ///   - onStart: Called before the first execution of each start.
        ///   - onStop: Called once after the last execution of each start.
        ///   - onError: Called with each error the executor throws.
        public init(
            onStart: (@Sendable (Worker) throws -> Void)? = nil,
            onStop: (@Sendable (Worker) -> Void)? = nil,
            onError: (@Sendable (Worker, any Error) -> Void)? = nil
        ) {
            self.onStart = onStart
            self.onStop = onStop
            self.onError = onError
        }
    }

    /// A snapshot of a worker, as listed in ``TaskSupervisor/Info/workers``.
    public struct Info: Sendable {
        /// The worker's kind.
        public var kind: Kind
        /// The worker's name.
        public var name: String
        /// Where the worker is in its life.
        public var state: State
        /// The priority of its executions.
        public var priority: TaskPriority
        /// Executions that have ended (for a queue worker: items run).
        public var executions: Int
        /// Executions that threw an error.
        public var errors: Int
        /// Ticks of an interval worker skipped because an execution overran them.
        public var skipped: Int
        /// Items of a queue worker waiting to be run (`0` for other kinds).
        public var queueDepth: Int
    }

    /// The supervisor whose pool runs the worker's executions.
    public let supervisor: TaskSupervisor

    /// The worker's kind.
    public let kind: Kind

    /// The worker's hooks.
    let hooks: Hooks

    /// The worker's registration number in its supervisor.
    let registrationID: Int

    /// The lifecycle (``WorkerStateMachine``), under a pthread mutex whose condition variable
    /// threads blocked in a full queue worker's `put` wait on. Kinds keep their own scheduling state
    /// in stored properties protected by the same mutex.
    let core: ConditionLock<WorkerStateMachine>

    // Counters are written only by the task that holds the worker's slot (executions never overlap),
    // and read lock-free by anyone.
    let executionCount = Atomic<Int>(0)
    let errorCount = Atomic<Int>(0)
    /// Skipped ticks (written by an interval worker under `core`).
    let skippedCount = Atomic<Int>(0)

    /// The aloop of a worker whose executions run there (see ``bind(to:)``).
    let aloopBinding = Mutex(AloopBinding())

    /// The running execution suspended itself: it waits on the worker's aloop, and ends later through a
    /// ``WorkerResumption``.
    // owned by the slot
    @exclusivity(unchecked) var executionSuspended = false

    /// An execution was taken before the slot's task gave the aloop's other jobs their turn: it runs first when
    /// the task goes on.
    // owned by the slot
    @exclusivity(unchecked) var stepTaken = false

    /// The Swift task of the running async execution (``executeAsync(_:)``), cancelled by a stop.
    // protected by `core`
    var asyncExecution: AsyncExecution?

    /// Starts the Swift task of an async execution once the slot's task has let go of the slot.
    // owned by the slot
    @exclusivity(unchecked) var pendingLaunch: (@Sendable () -> Void)?

    /// The worker's swift-metrics instruments, under the name it was made with.
    let metrics: WorkerMetrics

    init(kind: Kind, supervisor: TaskSupervisor, name: String?, priority: TaskPriority, hooks: Hooks) throws {
        let (id, chosen) = try supervisor.workerRegistry.reserve(name)
        self.supervisor = supervisor
        self.kind = kind
        self.hooks = hooks
        self.registrationID = id
        self.core = ConditionLock(WorkerStateMachine(name: chosen, priority: priority))
        self.metrics = WorkerMetrics(worker: chosen, factory: supervisor.metrics.factory)
        supervisor.workerRegistry.attach(self, id: id, name: chosen)
    }

    deinit {
        // A running worker references itself, so only a stopped one can get here. The registry frees
        // the name by itself (its reference is weak): taking the registry's lock here could deadlock,
        // since the last reference may be dropped by a weak load made under that lock.
        self.core.withLock { machine in
            assert(machine.lifecycle == .stopped, "worker \(machine.name) released while running")
        }
    }

    // MARK: - Identity and state

    /// The worker's name, unique in its supervisor.
    public var name: String {
        self.core.withLock { $0.name }
    }

    /// The priority of the worker's executions.
    public var priority: TaskPriority {
        self.core.withLock { $0.priority }
    }

    /// Where the worker is in its life.
    public var state: State {
        self.core.withLock { machine in
            switch machine.lifecycle {
            case .stopped: .stopped
            case .running: .running
            case .stopping: .stopping
            }
        }
    }

    /// Whether the worker is started and no stop was requested (atasker's `is_active`).
    public var isActive: Bool {
        self.state == .running
    }

    /// Whether the worker is started and has not finished stopping (running or stopping).
    public var isStarted: Bool {
        self.state != .stopped
    }

    /// Whether the worker is stopped (or was never started): nothing of it runs.
    public var isStopped: Bool {
        self.state == .stopped
    }

    /// The number of executions that have ended (for a queue worker, the items run).
    public var executions: Int {
        self.executionCount.load(ordering: .relaxed)
    }

    /// The number of executions that threw an error.
    public var errors: Int {
        self.errorCount.load(ordering: .relaxed)
    }

    /// The ticks skipped because an execution overran them (interval workers; `0` for the others).
    public var skippedTicks: Int {
        self.skippedCount.load(ordering: .relaxed)
    }

    /// The number of items waiting to be run (queue workers; `0` for the others).
    public var queueDepth: Int {
        self.core.lock()
        defer { self.core.unlock() }
        return self.queueDepthLocked
    }

    /// Returns a snapshot of the worker.
    public func info() -> Info {
        self.core.lock()
        let machine = self.core.lockedValue
        let depth = self.queueDepthLocked
        self.core.unlock()
        let state: State
        switch machine.lifecycle {
        case .stopped: state = .stopped
        case .running: state = .running
        case .stopping: state = .stopping
        }
        return Info(
            kind: self.kind,
            name: machine.name,
            state: state,
            priority: machine.priority,
            executions: self.executions,
            errors: self.errors,
            skipped: self.skippedTicks,
            queueDepth: depth
        )
    }

    /// `<kind> worker "<name>"`.
    public var description: String {
        "\(self.kind.rawValue) worker \"\(self.name)\""
    }

    // MARK: - Lifecycle

    /// Starts the worker, optionally under a new name or priority (atasker's `_name`, `_priority`).
    ///
    /// Starting a running worker does nothing (and ignores the overrides). Starting a worker that is
    /// stopping makes it start again as soon as its stop has finished. The new name and priority stay
    /// for later starts.
    ///
    /// - Parameters:
    ///   - name: A new name; `nil` keeps the current one.
    ///   - priority: A new priority; `nil` keeps the current one.
    /// - Returns: `true` if the worker was stopped or stopping and now starts; `false` if it was
    ///   running already.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/nameInUse`` if `name` belongs to another
    ///   worker, or ``WorkerError/Code/supervisorStopped`` if the supervisor was stopped.
    @discardableResult
    public func start(name: String? = nil, priority: TaskPriority? = nil) throws -> Bool {
        try self.start(name: name, priority: priority, configure: nil)
    }

    /// Stops the worker.
    ///
    /// No execution starts after this call (except the items drained with `drain`). The running
    /// execution, if any, finishes; then ``Hooks/onStop`` runs and the worker releases the
    /// supervisor's activity. A queue worker drops the items still queued, unless `drain` is `true`:
    /// then it runs them first. Items put after this call are kept for the next start.
    ///
    /// Called from inside the worker (its executor or hooks) it only requests the stop, which
    /// happens when the execution returns.
    ///
    /// - Parameters:
    ///   - wait: How long to wait for the stop to finish. Default: ``StopWait/forever``.
    ///   - drain: Whether a queue worker runs the items left before it stops. Default: `false`.
    /// - Returns: `true` if the worker is stopped when the call returns.
    @discardableResult
    public func stop(wait: StopWait = .forever, drain: Bool = false) -> Bool {
        let deadline = wait.deadline(from: Monotonic.now())
        var effects = WorkerStateMachine.Effects()
        var waiter: Waiter?
        self.core.lock()
        self.requestStopLocked(drain: drain, effects: &effects)
        var mayWait = true
        if case .none = wait {
            mayWait = false
        }
        // A worker on an aloop is never waited for from that aloop's thread: its executions need the thread.
        if mayWait && !effects.finalize && !self.core.lockedValue.isCurrentThread && !self.isOnOwnAloopThread
            && !self.isInOwnAsyncExecution
        {
            let candidate = Waiter()
            if self.core.lockedValue.addStopWaiter(candidate) {
                waiter = candidate
            }
        }
        self.core.unlock()
        self.perform(effects)
        if let waiter {
            _ = waiter.wait(until: deadline)
        }
        return self.isStopped
    }

    /// Stops the worker (waiting for ever, unless called from inside it), then starts it again.
    ///
    /// - Parameters:
    ///   - name: A new name; `nil` keeps the current one.
    ///   - priority: A new priority; `nil` keeps the current one.
    /// - Throws: What ``start(name:priority:)`` throws.
    public func restart(name: String? = nil, priority: TaskPriority? = nil) throws {
        self.stop()
        try self.start(name: name, priority: priority)
    }

    // MARK: - Kind hooks (overridden by each kind; all but `kindExecute` run with `core` locked)

    /// What the worker's task does next.
    enum Step {
        /// Run one execution (``kindExecute()``).
        case execute
        /// Nothing to run now: give the slot up, and arm a timer for `deadline` if given.
        case idle(deadline: Double?)
    }

    /// The worker has started (or restarted): schedule the first execution, by claiming the slot or
    /// arming a timer. Runs with `core` locked.
    func kindDidStart(now: Double, effects: inout WorkerStateMachine.Effects) {
        preconditionFailure("kindDidStart must be overridden")
    }

    /// Whether an execution is due now; if so, it is taken (its item popped, its tick consumed).
    /// `draining` is set while a stop with `drain` runs the items left. Runs with `core` locked.
    func kindNextStep(now: Double, draining: Bool) -> Step {
        preconditionFailure("kindNextStep must be overridden")
    }

    /// Runs the execution taken by ``kindNextStep(now:draining:)``, through ``invoke(_:)``. Runs
    /// without the lock. Returns `false` to stop the worker.
    func kindExecute() -> Bool {
        preconditionFailure("kindExecute must be overridden")
    }

    /// An execution has ended at `now`. Runs with `core` locked.
    func kindExecutionEnded(now: Double) {}

    /// When the execution after the one that is due now will be due, if the kind knows it before that
    /// one runs (an interval worker's next tick). Runs with `core` locked.
    var kindDeadlineAfterDue: Double? {
        nil
    }

    /// A stop was requested: drop the work left, or set it aside to run first when `drain` is set.
    /// `wasDraining` tells that a draining stop has become a dropping one (then only the work set
    /// aside is dropped: what arrived since the first request is kept for the next start). Runs with
    /// `core` locked.
    func kindStopRequested(drain: Bool, wasDraining: Bool) {}

    /// Whether a draining stop still has items to run. Runs with `core` locked.
    var kindHasDrainWork: Bool {
        false
    }

    /// Wakes every caller waiting for room in a queue worker's `put` (a stop dropped or set aside the items).
    /// Runs with `core` unlocked.
    func wakeAllPutters() {
        self.core.broadcast()
    }

    /// Items waiting. Runs with `core` locked.
    var queueDepthLocked: Int {
        0
    }
}

/// `Worker` and its subclasses are safe to share between threads because:
/// 1. every mutable field of the lifecycle is in `core`'s value, read and written only with its
///    mutex held;
/// 2. the scheduling fields that kinds add as stored `var`s are each marked `// protected by core`
///    and touched only with that mutex held, or `// owned by the slot` and touched only by the
///    one task that holds the worker's slot, which is handed from task to task under the mutex;
/// 3. counters are `Atomic`, and everything else (`supervisor`, `kind`, `hooks`, executors) is an
///    immutable `let` of a `Sendable` type.
extension Worker: @unchecked Sendable {}
