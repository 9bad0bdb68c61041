import DequeModule
import Glibc
import Logging
import Synchronization

/// An async loop ("aloop", as atasker calls it): one thread that runs short jobs and timers, one at a time.
///
/// An aloop is how atasker-lua runs async work without holding a thread per job: async Lua workers and
/// `aloop:background_task` coroutines are resumed by it, and between two resumptions they wait for nothing but
/// their timer or the event that resumes them. Its thread sleeps on a condition variable (on the monotonic
/// clock) until its earliest timer, or until a job arrives; nothing polls.
///
/// Create aloops through the supervisor (``TaskSupervisor/createAloop(named:start:isDefault:)``), which stops
/// them when it stops. From Swift, an aloop runs closures:
///
/// ```swift
/// let loop = try supervisor.createAloop(named: "io")
/// loop.schedule { print("soon, on the aloop's thread") }
/// let timer = loop.schedule(after: 0.5) { print("half a second later") }
/// let answer = try await loop.run { 6 * 7 }          // runs on the aloop, awaited from Swift concurrency
/// let task = loop.backgroundTask(name: "sum") { (1...10).reduce(0, +) }
/// let sum: Int = try await task.value()
/// loop.stop()
/// ```
///
/// - Important: Jobs run on the aloop's one thread, one after another. A job that blocks (a sleep, a lock, a
///   blocking read) holds every other job of the aloop back; run such work on the supervisor's pool instead.
public final class Aloop: Sendable, CustomStringConvertible {
    /// The aloop's name, unique in its supervisor.
    public let name: String

    /// The supervisor that made the aloop (its tasks keep it from being idle), while it exists.
    public var supervisor: TaskSupervisor? {
        self.owner.value
    }

    /// The supervisor's logger, for the aloop's own messages.
    let logger: Logger

    // The supervisor keeps its aloops; a weak reference back avoids a cycle.
    private let owner: WeakSupervisor

    private let core: ConditionLock<State>

    /// One thing to run on the aloop's thread: `run`, or `lost` if the aloop ends before running it.
    struct Job: Sendable {
        let run: @Sendable () -> Void
        let lost: (@Sendable () -> Void)?
    }

    enum Lifecycle: Sendable, Equatable {
        /// Not started, or stopped: the aloop takes no jobs.
        case stopped
        /// Running: it takes jobs, tasks and workers.
        case running
        /// A stop was requested: it runs its jobs until the work registered on it has ended, and takes no new
        /// workers or tasks.
        case stopping
    }

    struct State: Sendable {
        var lifecycle = Lifecycle.stopped
        var threadAlive = false
        var thread: pthread_t?
        var jobs = Deque<Job>()
        var timers = TimerHeap<Job>()
        /// The deadline the thread sleeps until (`.infinity` for an untimed wait), `nil` while it runs.
        var sleepingUntil: Double?
        /// Work that keeps a stopping aloop alive (see ``AloopWork``).
        var works: [ObjectIdentifier: any AloopWork] = [:]
        /// Tasks made by ``makeTask(name:)`` and not finished yet, queued or running.
        var openTasks = 0
        /// A cancel of all work was asked during this stop: work registered from now on is cancelled at once.
        var cancelRequested = false
        var stopWaiters: [Waiter] = []
        /// Jobs run so far (for info and tests).
        var jobsRun = 0
        /// Cancels the job that runs now, from another thread (see ``setInterrupter(_:)``).
        var interrupter: (@Sendable () -> Void)?
    }

    /// Creates a stopped aloop (see ``TaskSupervisor/createAloop(named:start:isDefault:)``).
    init(name: String, supervisor: TaskSupervisor) {
        self.name = name
        self.owner = WeakSupervisor(supervisor)
        self.logger = supervisor.logger
        self.core = ConditionLock(State())
    }

    /// `aloop "<name>"`.
    public var description: String {
        "aloop \"\(self.name)\""
    }

    // MARK: - State

    /// Whether the aloop runs and takes new work (started, and no stop requested).
    public var isActive: Bool {
        self.core.withLock { $0.lifecycle == .running }
    }

    /// Whether the aloop is stopped: its thread has ended (or never started).
    public var isStopped: Bool {
        self.core.withLock { $0.lifecycle == .stopped }
    }

    /// Whether the calling thread is this aloop's thread.
    public var isCurrent: Bool {
        Aloop.current === self
    }

    /// The aloop whose thread is the calling thread, if any.
    public static var current: Aloop? {
        guard let pointer = pthread_getspecific(currentKey) else {
            return nil
        }
        return Unmanaged<Aloop>.fromOpaque(pointer).takeUnretainedValue()
    }

    /// Work on the aloop now: its tasks that have not finished (from their submission on, so a task queued a
    /// moment ago counts), its workers that run, and their async executions that wait.
    public var pendingWork: Int {
        self.core.withLock { state in
            state.openTasks + state.works.values.count { !$0.isAloopTask }
        }
    }

    /// Jobs the aloop has run since it was created.
    public var jobsRun: Int {
        self.core.withLock { $0.jobsRun }
    }

    // MARK: - Lifecycle

    /// Starts the aloop's thread. Starting a running aloop does nothing; starting a stopping one makes it run
    /// on (it takes new work again).
    ///
    /// - Throws: ``AloopError`` with ``AloopError/Code/supervisorStopped`` after the supervisor stopped.
    public func start() throws {
        guard self.supervisor?.isStopped == false else {
            throw AloopError(.supervisorStopped, "cannot start \(self): its supervisor was stopped")
        }
        let spawn = self.core.withLock { state -> Bool in
            switch state.lifecycle {
            case .running:
                return false
            case .stopping:
                state.lifecycle = .running
                state.cancelRequested = false
                return false
            case .stopped:
                state.lifecycle = .running
                state.cancelRequested = false
                state.threadAlive = true
                return true
            }
        }
        guard spawn else {
            return
        }
        let started = PoolThread.spawn(name: "aloop-\(self.name)") { [self] in
            self.threadMain()
        }
        if !started {
            self.core.withLock { state in
                state.lifecycle = .stopped
                state.threadAlive = false
            }
            throw AloopError(.notRunning, "cannot start \(self): no thread could be created")
        }
    }

    /// Stops the aloop.
    ///
    /// From this call on the aloop takes no new workers or tasks. Its workers are asked to stop (without
    /// waiting), and the aloop keeps running until the work registered on it has ended: the running executions
    /// of its workers and its tasks finish, as atasker lets the tasks of a stopping aloop finish. With
    /// `cancelTasks`, or when `wait` ends before that, the work left is cancelled (an async execution fails with
    /// a cancel error where it waits). Then the thread ends; timers that have not fired never will.
    ///
    /// - Parameters:
    ///   - wait: How long to wait for the thread to end. Called on the aloop's own thread, it never waits.
    ///   - cancelTasks: Whether to cancel the work left at once instead of letting it finish.
    /// - Returns: Whether the aloop is stopped when the call returns.
    @discardableResult
    public func stop(wait: StopWait = .forever, cancelTasks: Bool = false) -> Bool {
        let deadline = wait.deadline(from: Monotonic.now())
        let onThread = self.isCurrent
        var waiter: Waiter?
        let (works, wake) = self.core.withLock { state -> ([any AloopWork], Bool) in
            guard state.lifecycle != .stopped else {
                return ([], false)
            }
            state.lifecycle = .stopping
            if cancelTasks {
                state.cancelRequested = true
            }
            if !onThread, wait != .none {
                let candidate = Waiter()
                state.stopWaiters.append(candidate)
                waiter = candidate
            }
            return (Array(state.works.values), state.sleepingUntil != nil)
        }
        if wake {
            self.core.signal()
        }
        for work in works {
            work.aloopStopping()
        }
        if cancelTasks {
            for work in works {
                work.aloopCancel()
            }
        }
        guard let waiter else {
            return self.isStopped
        }
        if waiter.wait(until: deadline) {
            return true
        }
        let left = self.pendingWork
        self.logger.warning(
            "\(self): wait timeout, cancelling its remaining work (\(left) left) as it stops")
        self.cancelWork()
        // A short grace, for the cancelled work to get back to the aloop and end.
        _ = waiter.wait(until: Monotonic.now() + Self.cancelGrace)
        return self.isStopped
    }

    /// How long a stop waits, after its deadline has cancelled the work left, for that work to end.
    static let cancelGrace = 0.5

    // MARK: - Jobs and timers

    /// Runs `body` soon on the aloop's thread, after the jobs already waiting.
    ///
    /// - Parameter body: The job. It must be short (see the type's note).
    /// - Returns: `false` if the aloop is stopped (the job never runs).
    @discardableResult
    public func schedule(_ body: @escaping @Sendable () -> Void) -> Bool {
        self.enqueue(run: body, lost: nil)
    }

    /// Runs `body` on the aloop's thread after a number of seconds.
    ///
    /// - Parameters:
    ///   - seconds: The delay from now, in seconds.
    ///   - body: The job.
    /// - Returns: The timer, for ``cancel(_:)``; `nil` if the aloop is stopped.
    @discardableResult
    public func schedule(after seconds: Double, _ body: @escaping @Sendable () -> Void) -> TimerID? {
        self.schedule(at: Monotonic.now() + max(0, seconds), body)
    }

    /// Runs `body` on the aloop's thread after `delay`.
    ///
    /// - Parameters:
    ///   - delay: The delay from now (`.milliseconds(500)`).
    ///   - body: The job.
    /// - Returns: The timer, for ``cancel(_:)``; `nil` if the aloop is stopped.
    @discardableResult
    public func schedule(after delay: Duration, _ body: @escaping @Sendable () -> Void) -> TimerID? {
        self.schedule(after: delay.inSeconds, body)
    }

    /// Runs `body` on the aloop's thread at a deadline of ``Monotonic/now()``.
    ///
    /// Timers with equal deadlines run in the order they were scheduled; a deadline in the past runs at once.
    ///
    /// - Parameters:
    ///   - deadline: The monotonic time, in seconds.
    ///   - body: The job.
    /// - Returns: The timer, for ``cancel(_:)``; `nil` if the aloop is stopped.
    @discardableResult
    public func schedule(at deadline: Double, _ body: @escaping @Sendable () -> Void) -> TimerID? {
        let id = TimerID.next()
        return self.schedule(id, at: deadline, run: body, lost: nil) ? id : nil
    }

    /// Cancels a timer of this aloop.
    ///
    /// - Parameter id: What ``schedule(after:_:)`` or ``schedule(at:_:)`` returned.
    /// - Returns: `true` if the timer had not run (it now never will).
    @discardableResult
    public func cancel(_ id: TimerID) -> Bool {
        self.core.withLock { state in
            state.timers.cancel(id.rawValue) != nil
        }
    }

    /// Runs `body` on the aloop's thread and returns its result, suspending the calling Swift task meanwhile.
    ///
    /// - Parameter body: The work; it runs as one job.
    /// - Returns: What `body` returned.
    /// - Throws: What `body` threw, or ``AloopError`` with ``AloopError/Code/notRunning`` if the aloop is
    ///   stopped.
    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let scheduled = self.enqueue(
                run: { continuation.resume(with: Result { try body() }) },
                lost: { continuation.resume(throwing: self.notRunningError()) })
            if !scheduled {
                continuation.resume(throwing: self.notRunningError())
            }
        }
    }

    /// Runs `body` as a task of the aloop: it returns at once with a task that is `started`, and completes
    /// (or fails) when `body` has run on the aloop's thread.
    ///
    /// The task keeps the supervisor from being idle until it finishes, and can be waited for as any other
    /// (``SupervisorTask/wait(timeout:)``, ``SupervisorTask/value(as:)``).
    ///
    /// - Parameters:
    ///   - name: A name for logs.
    ///   - body: The work.
    /// - Returns: The task; `failed` at once with ``AloopError`` if the aloop is not running.
    @discardableResult
    public func backgroundTask(
        name: String? = nil, _ body: @escaping @Sendable () throws -> (any Sendable)?
    ) -> SupervisorTask {
        guard let task = self.makeTask(name: name) else {
            return self.failedTask(name: name)
        }
        let scheduled = self.enqueue(
            run: { [self] in
                do {
                    self.finishTask(task, result: try body(), error: nil)
                } catch {
                    self.finishTask(task, result: nil, error: error)
                }
            },
            lost: { [self] in self.finishTask(task, result: nil, error: self.notRunningError()) })
        if !scheduled {
            self.finishTask(task, result: nil, error: self.notRunningError())
        }
        return task
    }

    // MARK: - Package API: jobs with a fallback, work, tasks

    /// Runs `run` soon on the aloop's thread; if the aloop ends before that, `lost` runs instead (on the thread
    /// that ends it). Returns `false`, running neither, when the aloop is stopped.
    @discardableResult
    package func enqueue(run: @escaping @Sendable () -> Void, lost: (@Sendable () -> Void)?) -> Bool {
        let core = self.core
        core.lock()
        guard core.lockedValue.lifecycle != .stopped else {
            core.unlock()
            return false
        }
        core.lockedValue.jobs.append(Job(run: run, lost: lost))
        let wake = core.lockedValue.sleepingUntil != nil
        core.unlock()
        if wake {
            core.signal()
        }
        return true
    }

    /// Schedules a timer under an id taken with `TimerID.next()` (so that a caller can record it under its own
    /// lock first). Returns `false` when the aloop is stopped.
    @discardableResult
    package func schedule(
        _ id: TimerID, at deadline: Double, run: @escaping @Sendable () -> Void, lost: (@Sendable () -> Void)?
    ) -> Bool {
        let core = self.core
        core.lock()
        guard core.lockedValue.lifecycle != .stopped else {
            core.unlock()
            return false
        }
        core.lockedValue.timers.insert(id.rawValue, at: deadline, Job(run: run, lost: lost))
        let wake = core.lockedValue.sleepingUntil.map { deadline < $0 } ?? false
        core.unlock()
        if wake {
            core.signal()
        }
        return true
    }

    /// What registering a work found.
    package enum Registration: Sendable {
        /// Registered.
        case registered
        /// The aloop is stopping: registered only if asked to be, and then its stop was asked at once.
        case stopping
        /// The aloop is stopped: not registered.
        case stopped
    }

    /// Registers `work`, which keeps the aloop from finishing a stop until it is unregistered.
    ///
    /// - Parameters:
    ///   - work: A worker that runs on the aloop, or an async execution or task that waits on it.
    ///   - whileStopping: Whether a stopping aloop takes it (an execution already under way) or refuses it (a
    ///     worker that would start).
    package func register(_ work: any AloopWork, whileStopping: Bool) -> Registration {
        let (result, cancel) = self.core.withLock { state -> (Registration, Bool) in
            switch state.lifecycle {
            case .stopped:
                return (.stopped, false)
            case .stopping where !whileStopping:
                return (.stopping, false)
            case .running, .stopping:
                state.works[ObjectIdentifier(work)] = work
                return (state.lifecycle == .running ? .registered : .stopping, state.cancelRequested)
            }
        }
        if cancel {
            work.aloopCancel()
        }
        return result
    }

    /// Ends what ``register(_:whileStopping:)`` began.
    package func unregister(_ work: any AloopWork) {
        let wake = self.core.withLock { state -> Bool in
            guard state.works.removeValue(forKey: ObjectIdentifier(work)) != nil else {
                return false
            }
            return state.works.isEmpty && state.lifecycle == .stopping && state.sleepingUntil != nil
        }
        if wake {
            self.core.signal()
        }
    }

    /// Asks every work registered now to cancel (``AloopWork/aloopCancel()``), from any thread: async executions
    /// and tasks that wait fail with a cancel error.
    package func cancelWork() {
        let (works, interrupter) = self.core.withLock { (Array($0.works.values), $0.interrupter) }
        for work in works {
            work.aloopCancel()
        }
        interrupter?()
    }

    /// Sets what cancels the job that runs now, from another thread, when the aloop cancels its work (at its stop
    /// deadline, or through ``cancelWork()``): the Lua layer cancels a coroutine that does not yield.
    package func setInterrupter(_ interrupter: @escaping @Sendable () -> Void) {
        self.core.withLock { $0.interrupter = interrupter }
    }

    /// A task of this aloop, `started` now, that keeps the supervisor from being idle until ``finishTask(_:result:error:)``;
    /// `nil` when the aloop takes no new work (stopping or stopped).
    package func makeTask(name: String?) -> SupervisorTask? {
        guard self.isActive else {
            return nil
        }
        let now = Monotonic.now()
        let task = SupervisorTask(
            priority: .normal, name: name, supervisor: nil, status: .started, queuedAt: now,
            metrics: self.supervisor?.metrics.tasks(.aloop, .normal))
        task.setTimeStarted(now)
        self.core.withLock { $0.openTasks += 1 }
        self.supervisor?.retainActivity()
        return task
    }

    /// Finishes a task made by ``makeTask(name:)``: `completed` with `result`, or `failed` with `error`.
    package func finishTask(_ task: SupervisorTask, result: (any Sendable)?, error: (any Error)?) {
        guard !task.isFinished else {
            return
        }
        // Before the finish wakes the task's waiters, so that one of them reads `pending` without this task.
        self.core.withLock { $0.openTasks -= 1 }
        task.finish(status: error == nil ? .completed : .failed, result: result, error: error, at: Monotonic.now())
        self.supervisor?.releaseActivity()
    }

    /// A task that failed at once because the aloop takes no new work.
    package func failedTask(name: String?) -> SupervisorTask {
        let now = Monotonic.now()
        let task = SupervisorTask(
            priority: .normal, name: name, supervisor: nil, status: .queued, queuedAt: now,
            metrics: self.supervisor?.metrics.tasks(.aloop, .normal))
        task.finish(status: .failed, result: nil, error: self.notRunningError(), at: now)
        return task
    }

    func notRunningError() -> AloopError {
        AloopError(.notRunning, "\(self) is not running: start it, or use a running aloop")
    }

    // MARK: - The thread

    private func threadMain() {
        pthread_setspecific(currentKey, Unmanaged.passUnretained(self).toOpaque())
        defer { pthread_setspecific(currentKey, nil) }
        let core = self.core
        var batch = Deque<Job>()
        core.lock()
        core.lockedValue.thread = pthread_self()
        while true {
            if core.lockedValue.timers.count > 0 {
                core.lockedValue.jobs.append(contentsOf: core.lockedValue.timers.takeDue(now: Monotonic.now()))
            }
            if !core.lockedValue.jobs.isEmpty {
                // Take the whole queue: jobs scheduled while these run wait for the next round, after the timers
                // that are due by then.
                swap(&batch, &core.lockedValue.jobs)
                core.lockedValue.jobsRun += batch.count
                core.unlock()
                while let job = batch.popFirst() {
                    job.run()
                }
                core.lock()
                continue
            }
            if core.lockedValue.lifecycle == .stopping && core.lockedValue.works.isEmpty {
                break
            }
            if let earliest = core.lockedValue.timers.earliest() {
                core.lockedValue.sleepingUntil = earliest
                _ = core.wait(until: earliest)
            } else {
                core.lockedValue.sleepingUntil = .infinity
                core.wait()
            }
            core.lockedValue.sleepingUntil = nil
        }
        let lost = core.lockedValue.timers.removeAll() + Array(core.lockedValue.jobs)
        core.lockedValue.jobs.removeAll()
        core.lockedValue.lifecycle = .stopped
        core.lockedValue.threadAlive = false
        core.lockedValue.thread = nil
        core.lockedValue.cancelRequested = false
        let waiters = core.lockedValue.stopWaiters
        core.lockedValue.stopWaiters = []
        core.unlock()
        for job in lost {
            job.lost?()
        }
        for waiter in waiters {
            waiter.signal()
        }
        self.logger.debug("\(self) stopped")
    }
}

/// Work that lives on an aloop until it ends: a worker that runs there, an async execution or task that waits
/// there. A stopping aloop runs until every registered work has unregistered itself.
package protocol AloopWork: AnyObject, Sendable {
    /// The aloop is stopping: a worker stops (without waiting); an execution goes on. Called from any thread.
    func aloopStopping()
    /// The aloop cancels its work: an execution that waits fails with a cancel error. Called from any thread.
    func aloopCancel()
    /// Whether this work is the waiting execution of a task that ``Aloop/makeTask(name:)`` made, which
    /// ``Aloop/pendingWork`` counts as a task already.
    var isAloopTask: Bool { get }
}

extension AloopWork {
    /// Not a task's execution.
    package var isAloopTask: Bool { false }
}

/// A weak reference to a supervisor, set once.
private final class WeakSupervisor: Sendable {
    // written once, in `init`; `weak` so that the supervisor's aloops do not keep it alive
    nonisolated(unsafe) weak var value: TaskSupervisor?

    init(_ value: TaskSupervisor) {
        self.value = value
    }
}

/// The thread-local key of ``Aloop/current``: an unretained pointer, set by the aloop's thread while it runs.
private let currentKey: pthread_key_t = {
    var key = pthread_key_t()
    let status = pthread_key_create(&key, nil)
    precondition(status == 0, "pthread_key_create failed")
    return key
}()
