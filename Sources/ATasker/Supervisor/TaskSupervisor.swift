public import CoreMetrics
public import Logging
import Synchronization

/// Runs tasks on a pool of threads with priorities and reserves, as atasker's `task_supervisor`.
///
/// Submit closures with ``submit(priority:delay:name:_:)`` (or ``run(priority:delay:name:_:)`` from
/// async code). A task starts when a pool thread is free and the admission rules of its priority
/// allow it (see ``Configuration``); a more urgent waiting task always starts before a less urgent
/// one. Threads are created on demand and exit after ``Configuration/idleThreadTimeout`` of idleness.
///
/// ```swift
/// let supervisor = TaskSupervisor(configuration: .init(poolSize: 4))
/// supervisor.start()
/// let task = supervisor.submit(priority: .high, name: "answer") { _ in 6 * 7 }
/// let answer: Int = try await task.value()
/// supervisor.waitUntilIdle()
/// _ = supervisor.stop(wait: .seconds(5))
/// ```
///
/// The supervisor is also a `Service` (swift-service-lifecycle): ``run()`` starts it and stops it on
/// graceful shutdown.
public final class TaskSupervisor: Sendable {
    /// The logger for start-latency reports and pool problems.
    public let logger: Logger

    /// The supervisor's state, under one pthread mutex whose condition variable the idle pool threads
    /// wait on.
    let state: ConditionLock<SupervisorStateMachine>

    /// Delays and start-latency checks.
    let timers: TimerQueue

    /// The supervisor's workers, by name.
    let workerRegistry = WorkerRegistry()

    /// The supervisor's aloops (see ``createAloop(named:start:isDefault:)``).
    let aloopRegistry = AloopRegistry()

    /// The process pool, once set or first used (see ``setProcessPool(_:)``).
    let processPoolSlot = Mutex<ProcessPool?>(nil)

    /// What cancels running code that a pool thread cannot interrupt by itself (a Lua host registers one).
    let codeCancellers = Mutex<[WeakCodeCanceller]>([])

    /// The swift-metrics instruments of this supervisor's tasks and process pool.
    package let metrics: SupervisorMetrics

    /// Pool threads that could not be created since the last one that could: the first failure is logged as an
    /// error, the next ones (one per thread asked for) only at debug level, so that a pool far above what the
    /// system allows does not flood the log.
    let spawnFailures = Atomic<Int>(0)

    // Start-latency thresholds as `Double` bit patterns (`.infinity` when off), read lock-free by
    // every starting task; the state machine keeps the authoritative values.
    private let warningBits: Atomic<UInt64>
    private let criticalBits: Atomic<UInt64>

    /// Creates a supervisor. Threads are created by ``start()`` and on demand.
    ///
    /// - Parameters:
    ///   - configuration: Pool sizes and timeouts.
    ///   - logger: Where latency warnings and pool problems are logged.
    ///   - metricsFactory: Where the supervisor's swift-metrics instruments report (the README's "Metrics" lists
    ///     them). Default: the factory that `MetricsSystem.bootstrap` installed, or none.
    public init(
        configuration: Configuration = .init(), logger: Logger = Logger(label: "atasker"),
        metricsFactory: any MetricsFactory = MetricsSystem.factory
    ) {
        self.logger = logger
        self.metrics = SupervisorMetrics(factory: metricsFactory)
        self.state = ConditionLock(SupervisorStateMachine(configuration: configuration))
        self.timers = TimerQueue(name: "atasker-timer")
        self.warningBits = Atomic(Self.thresholdBits(configuration.timeoutWarning))
        self.criticalBits = Atomic(Self.thresholdBits(configuration.timeoutCritical))
    }

    /// The current configuration (changed by ``setThreadPool(poolSize:reserveNormal:reserveHigh:minSize:maxSize:)``,
    /// ``setTimeouts(warning:critical:)`` and ``setPollDelay(_:)``).
    public var configuration: Configuration {
        self.state.withLock { $0.configuration }
    }

    /// Whether ``start()`` has been called.
    public var isStarted: Bool {
        self.state.withLock { $0.lifecycle != .initial }
    }

    /// Whether a stop has been requested (``stop(wait:cancelTasks:)`` or a graceful shutdown).
    public var isStopped: Bool {
        self.state.withLock { $0.isStopRequested }
    }

    // MARK: - Lifecycle

    /// Starts the supervisor: tasks submitted before start begin to run, and ``Configuration/minSize``
    /// threads are created. Calling it again does nothing.
    public func start() {
        var effects = SupervisorStateMachine.Effects()
        self.state.withLock { _ = $0.start(&effects) }
        self.perform(effects)
        self.processPoolSlot.withLock { $0 }?.supervisorStarted()
    }

    // MARK: - Submitting

    /// Submits a task.
    ///
    /// The task is `queued` at once, or `delayed` for `delay` seconds first. It runs on a pool thread;
    /// the value `body` returns becomes ``SupervisorTask/result`` (status `completed`), an error it
    /// throws becomes ``SupervisorTask/error`` (status `failed`). Tasks submitted before ``start()``
    /// wait for it. After a stop the task is returned already `failed` with
    /// ``TaskError/Code/supervisorStopped``.
    ///
    /// - Parameters:
    ///   - priority: The task's priority. Default: ``TaskPriority/normal``.
    ///   - delay: Seconds to wait before the task joins the queue; `nil` or `0` for none.
    ///   - name: A name for logs and ``info()``.
    ///   - body: The work; it gets its own task record.
    /// - Returns: The task.
    @discardableResult
    public func submit(
        priority: TaskPriority = .normal,
        delay: Double? = nil,
        name: String? = nil,
        _ body: @escaping @Sendable (SupervisorTask) throws -> (any Sendable)?
    ) -> SupervisorTask {
        let now = Monotonic.now()
        let isDelayed = (delay ?? 0) > 0
        let task = SupervisorTask(
            priority: priority,
            name: name,
            supervisor: self,
            status: isDelayed ? .delayed : .queued,
            queuedAt: isDelayed ? nil : now,
            metrics: self.metrics.tasks(.thread, priority)
        )
        let entry = TaskQueue.Entry(task: task, body: body)
        let timer = isDelayed ? (id: TimerID.next(), deadline: now + (delay ?? 0)) : nil
        var effects = SupervisorStateMachine.Effects()
        self.state.lock()
        let accepted = self.state.lockedValue.submit(entry, delay: timer, now: now, effects: &effects)
        self.state.unlock()
        if !accepted {
            task.finish(
                status: .failed,
                result: nil,
                error: TaskError(.supervisorStopped, "\(task) was submitted after the supervisor stopped"),
                at: now
            )
            return task
        }
        if !effects.isEmpty {
            self.perform(effects)
        }
        return task
    }

    /// Runs `body` as a task and returns its result.
    ///
    /// Cancelling the calling Swift task cancels the supervisor task if it has not started.
    ///
    /// - Parameters:
    ///   - priority: The task's priority.
    ///   - delay: Seconds to wait before the task joins the queue.
    ///   - name: A name for logs.
    ///   - body: The work.
    /// - Returns: What `body` returned.
    /// - Throws: What `body` threw, or ``TaskError`` if the task was cancelled or refused.
    public func run<T: Sendable>(
        priority: TaskPriority = .normal,
        delay: Double? = nil,
        name: String? = nil,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        let task = self.submit(priority: priority, delay: delay, name: name) { _ in try body() }
        await withTaskCancellationHandler {
            await task.wait()
        } onCancel: {
            task.cancel()
        }
        return try task.finishedValue(as: T.self)
    }

    /// The task with this id, if it is delayed, queued or running (atasker's `get_task`).
    ///
    /// - Parameter id: A ``SupervisorTask/id``.
    /// - Returns: The task, or `nil` if it finished or never existed.
    public func task(id: Int) -> SupervisorTask? {
        self.state.withLock { $0.registry[TaskKey(id)] }
    }

    /// Cancels a queued or delayed task (see ``SupervisorTask/cancel()``).
    func cancel(_ task: SupervisorTask) -> Bool {
        if let pool = self.processPoolSlot.withLock({ $0 }), pool.cancel(task) {
            return true
        }
        var effects = SupervisorStateMachine.Effects()
        let canceled = self.state.withLock { $0.cancel(task, effects: &effects) }
        self.perform(effects)
        return canceled
    }

    // MARK: - Configuration

    /// Changes the pool while it runs; `nil` leaves a value unchanged.
    ///
    /// Growing admits waiting tasks at once. Shrinking never interrupts a task: running tasks finish,
    /// and threads above the new maximum exit when they become idle.
    ///
    /// - Parameters:
    ///   - poolSize: The pool size N (`0`: unlimited).
    ///   - reserveNormal: The normal reserve.
    ///   - reserveHigh: The high reserve.
    ///   - minSize: Threads kept ready.
    ///   - maxSize: The thread limit.
    public func setThreadPool(
        poolSize: Int? = nil,
        reserveNormal: Int? = nil,
        reserveHigh: Int? = nil,
        minSize: Int? = nil,
        maxSize: Int? = nil
    ) {
        var effects = SupervisorStateMachine.Effects()
        self.state.withLock {
            $0.setThreadPool(
                poolSize: poolSize,
                reserveNormal: reserveNormal,
                reserveHigh: reserveHigh,
                minSize: minSize,
                maxSize: maxSize,
                effects: &effects
            )
        }
        self.perform(effects)
    }

    /// Changes the start-latency thresholds; `nil` leaves a value unchanged.
    ///
    /// - Parameters:
    ///   - warning: Seconds of start latency that log a warning (`.infinity`: never).
    ///   - critical: Seconds of start latency that log a critical message (`.infinity`: never).
    public func setTimeouts(warning: Double?, critical: Double?) {
        var effects = SupervisorStateMachine.Effects()
        self.state.withLock { state in
            state.setTimeouts(warning: warning, critical: critical, effects: &effects)
            self.warningBits.store(Self.thresholdBits(state.configuration.timeoutWarning), ordering: .relaxed)
            self.criticalBits.store(Self.thresholdBits(state.configuration.timeoutCritical), ordering: .relaxed)
        }
        self.perform(effects)
    }

    /// Sets atasker's polling delay (kept for compatibility; nothing in the supervisor polls).
    ///
    /// - Parameter delay: Seconds.
    public func setPollDelay(_ delay: Double) {
        self.state.withLock { $0.setPollDelay(delay) }
    }

    /// Sets the handlers called when a task's start latency passes ``Configuration/timeoutWarning``
    /// or ``Configuration/timeoutCritical``.
    ///
    /// Each handler is called at most once per task, outside any lock: on the thread that serves the
    /// timers (an idle pool thread, or the timer queue's own thread) for a task still waiting, or on the
    /// pool thread that starts a late task.
    ///
    /// - Parameters:
    ///   - warning: Called with a task late by more than the warning threshold; `nil` for none.
    ///   - critical: Called with a task late by more than the critical threshold; `nil` for none.
    public func setTimeoutHandlers(
        warning: (@Sendable (SupervisorTask) -> Void)?,
        critical: (@Sendable (SupervisorTask) -> Void)?
    ) {
        self.state.withLock { $0.setTimeoutHandlers(warning: warning, critical: critical) }
    }

    // MARK: - Start latency

    /// Checks a starting task's latency against the thresholds (on its pool thread).
    @inline(__always)
    func checkStartLatency(_ task: SupervisorTask, startedAt started: Double) {
        let latency = started - task.queuedTime
        let warning = Double(bitPattern: self.warningBits.load(ordering: .relaxed))
        let critical = Double(bitPattern: self.criticalBits.load(ordering: .relaxed))
        guard latency > warning || latency > critical else {
            return
        }
        let (warningHandler, criticalHandler) = self.state.withLock { ($0.warningHandler, $0.criticalHandler) }
        if latency > warning && task.claimLatencyReport(.warning) {
            self.report(
                .init(task: task, level: .warning, latency: latency, started: true, handler: warningHandler)
            )
        }
        if latency > critical && task.claimLatencyReport(.critical) {
            self.report(
                .init(task: task, level: .critical, latency: latency, started: true, handler: criticalHandler)
            )
        }
    }

    func latencyTimerFired(_ id: TimerID) {
        var effects = SupervisorStateMachine.Effects()
        let now = Monotonic.now()
        self.state.withLock { $0.latencyTimerFired(id, now: now, effects: &effects) }
        self.perform(effects)
    }

    func report(_ report: SupervisorStateMachine.LatencyReport) {
        let when = report.started ? "started in" : "not started after"
        let message: Logger.Message =
            "\(report.task) \(when) \(Self.format(report.latency)) seconds; increase the pool size or decrease the number of workers"
        switch report.level {
        case .warning:
            self.logger.warning(message)
        case .critical:
            self.logger.critical(message)
        }
        report.handler?(report.task)
    }

    /// Formats seconds with three decimals (`1.234`) without Foundation.
    static func format(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds < 1e15 else { return "\(seconds)" }
        let milliseconds = Int((max(0, seconds) * 1000).rounded())
        let fraction = milliseconds % 1000
        let padding = fraction < 10 ? "00" : (fraction < 100 ? "0" : "")
        return "\(milliseconds / 1000).\(padding)\(fraction)"
    }

    private static func thresholdBits(_ value: Double) -> UInt64 {
        (value.isFinite && value >= 0 ? value : .infinity).bitPattern
    }
}
