import Glibc

/// The lifecycle of one ``Worker``: started or not, which pool task (if any) runs it, and who waits
/// for its stop.
///
/// The worker keeps this struct under its lock. Events only change the state and record what must
/// happen next in ``Effects``; the worker performs the effects (submit a task, arm or cancel a timer,
/// retain the supervisor's activity, run `onStop`, wake waiters) after releasing the lock.
///
/// The *slot* is the heart of the "executions never overlap" rule: a worker has at most one pool
/// task at a time (submitted, running, or finishing the stop), and only that task runs executions.
/// A new task is submitted only when the slot is empty, and the slot is emptied under the lock by the
/// task that held it, so consecutive executions are ordered by the lock (a happens-before edge) even
/// when they run on different pool threads.
struct WorkerStateMachine: Sendable {
    enum Lifecycle: Sendable, Equatable {
        /// Not started, or stopped: nothing runs and nothing is scheduled.
        case stopped
        /// Started: executions run when their kind says so.
        case running
        /// A stop was requested; the slot's task finishes (running the items left if `drain`).
        case stopping(drain: Bool)
    }

    enum Slot: Sendable {
        /// No task: the worker waits for a timer, a trigger or an item.
        case empty
        /// A task was submitted and its body has not started (`task` is known once `submit` returned).
        case submitted(token: Int, task: SupervisorTask?)
        /// A task body runs on `thread`; `nil` while its execution is an async executor's Swift task, which runs
        /// on no thread of its own.
        case running(token: Int, thread: pthread_t?)
        /// `thread` is finishing a stop (running `onStop`).
        case finalizing(thread: pthread_t)

        /// The thread that holds the slot, if any.
        var thread: pthread_t? {
            switch self {
            case .empty, .submitted: nil
            case .running(_, let thread): thread
            case .finalizing(let thread): thread
            }
        }
    }

    /// Where `onStart` is, for the current start.
    enum StartHook: Sendable, Equatable {
        /// Not run yet: the first task of the start runs it before the first execution.
        case pending
        /// Ran and returned: `onStop` is owed.
        case done
        /// Threw: the worker stops, and `onStop` is not called.
        case failed
    }

    /// A task to submit for the worker.
    struct Submission: Sendable {
        let token: Int
        let priority: TaskPriority
        let name: String
    }

    /// What the worker does after releasing its lock.
    struct Effects {
        var submit: Submission?
        var cancelTask: SupervisorTask?
        var cancelTimer: TimerID?
        var armTimer: (id: TimerID, deadline: Double)?
        var retainActivity = false
        /// The calling thread took the slot to finish the stop: it runs `onStop` (if owed) and then
        /// ``WorkerStateMachine/finishStop()``.
        var finalize = false
        /// `onStart` ran and returned in this start, so the finishing stop calls `onStop`.
        var callOnStop = false
        /// Threads blocked in a queue worker's `put` to wake (all of them).
        var wakePutters = false
        /// The running async executor's Swift task to cancel (a stop was requested).
        var cancelExecution: AsyncExecution?
    }

    /// What ``finishStop()`` decided.
    struct Finish {
        var waiters: [Waiter] = []
        var releaseActivity = false
        /// The worker's reference to itself, dropped outside the lock.
        var keepAlive: Worker?
        /// A start arrived during the stop: the worker starts again at once.
        var restarted = false
    }

    private(set) var lifecycle: Lifecycle = .stopped
    private(set) var slot: Slot = .empty
    /// An execution (a call of the executor, or a queue batch) is under way.
    var isExecuting = false
    private(set) var startHook: StartHook = .pending
    /// A ``Worker/start(name:priority:)`` arrived while the worker was stopping.
    private(set) var restartPending = false
    var name: String
    var priority: TaskPriority
    /// The armed timer of an interval worker, if any.
    private(set) var timer: (id: TimerID, deadline: Double)?
    private var nextToken = 1
    private var stopWaiters: [Waiter] = []
    /// A running worker references itself, so that it keeps running when its creator lets it go.
    private var keepAlive: Worker?
    /// Pool tasks submitted so far (for tests of the batching).
    private(set) var tasksSubmitted = 0

    init(name: String, priority: TaskPriority) {
        self.name = name
        self.priority = priority
    }

    // MARK: - Queries

    /// Whether the calling thread is the one that holds the slot (running an execution or `onStop`).
    var isCurrentThread: Bool {
        guard let thread = self.slot.thread else {
            return false
        }
        return pthread_equal(thread, pthread_self()) != 0
    }

    var isStopping: Bool {
        if case .stopping = self.lifecycle {
            return true
        }
        return false
    }

    // MARK: - Starting

    enum StartOutcome {
        /// The worker was stopped and is now running: the kind schedules its first execution.
        case started
        /// It was running already: nothing changes.
        case alreadyRunning
        /// It is stopping: it starts again when the stop has finished.
        case restartPending
    }

    mutating func start(_ worker: Worker, effects: inout Effects) -> StartOutcome {
        switch self.lifecycle {
        case .running:
            return .alreadyRunning
        case .stopping:
            self.restartPending = true
            return .restartPending
        case .stopped:
            self.begin(worker)
            effects.retainActivity = true
            return .started
        }
    }

    private mutating func begin(_ worker: Worker) {
        self.lifecycle = .running
        self.startHook = .pending
        self.restartPending = false
        self.keepAlive = worker
    }

    // MARK: - The slot

    /// Takes the empty slot for a new task if the worker may run (running, or stopping with items to
    /// drain). Kinds call it when work arrives (a trigger, an item, a timer).
    mutating func claimSlot(_ effects: inout Effects) {
        guard case .empty = self.slot, self.lifecycle != .stopped else {
            return
        }
        let token = self.nextToken
        self.nextToken += 1
        self.tasksSubmitted += 1
        self.slot = .submitted(token: token, task: nil)
        effects.submit = Submission(token: token, priority: self.priority, name: self.name)
    }

    /// Records the task submitted for `token`, so that a stop can cancel it before it starts.
    mutating func attach(_ task: SupervisorTask, token: Int) {
        if case .submitted(token, nil) = self.slot {
            self.slot = .submitted(token: token, task: task)
        }
    }

    /// The task body for `token` starts on the calling thread. Returns `false` if the token is stale.
    mutating func beginTask(token: Int) -> Bool {
        guard case .submitted(token, _) = self.slot else {
            return false
        }
        self.slot = .running(token: token, thread: pthread_self())
        return true
    }

    /// The slot's task for `token` goes on on another thread (`nil`: in a suspended Swift task, on no thread).
    mutating func moveSlot(token: Int, to thread: pthread_t?) {
        if case .running(token, _) = self.slot {
            self.slot = .running(token: token, thread: thread)
        }
    }

    /// Whether the task for `token` holds the slot (it runs, or its execution waits on an aloop).
    func holdsSlot(token: Int) -> Bool {
        if case .running(token, _) = self.slot {
            return true
        }
        return false
    }

    /// Whether the task must run `onStart` first; marks it as being run.
    mutating func takeStartHook() -> Bool {
        guard self.startHook == .pending else {
            return false
        }
        // `done` now: if a stop comes while `onStart` runs, `onStop` is owed (unless it throws).
        self.startHook = .done
        return true
    }

    /// `onStart` threw: no executions and no `onStop`; the worker then requests its own stop.
    mutating func startHookFailed() {
        self.startHook = .failed
    }

    /// The running task has no more work and the worker is running: it gives the slot up, arming a
    /// timer for `deadline` if one is given.
    mutating func releaseSlot(deadline: Double?, effects: inout Effects) {
        self.slot = .empty
        self.arm(deadline, effects: &effects)
    }

    /// Arms the worker's timer for `deadline` (keeping one already armed for the same deadline), or
    /// cancels it for `nil`.
    mutating func arm(_ deadline: Double?, effects: inout Effects) {
        if let timer = self.timer, timer.deadline == deadline {
            return
        }
        if let timer = self.timer {
            effects.cancelTimer = timer.id
            self.timer = nil
        }
        if let deadline {
            let timer = (id: TimerID.next(), deadline: deadline)
            self.timer = timer
            effects.armTimer = timer
        }
    }

    /// The worker's timer fired. Returns `false` if it was cancelled or replaced meanwhile.
    mutating func timerFired(_ id: TimerID) -> Bool {
        guard self.timer?.id == id else {
            return false
        }
        self.timer = nil
        return true
    }

    /// The task for `token` finished without running its body (the supervisor refused or cancelled
    /// it). Returns `false` if the token is stale.
    mutating func taskLost(token: Int) -> Bool {
        guard case .submitted(token, _) = self.slot else {
            return false
        }
        self.slot = .empty
        return true
    }

    // MARK: - Stopping

    /// Requests a stop. Kinds react (drop or set aside their items) before ``settleStop(hasDrainWork:effects:)``.
    ///
    /// - Returns: `false` if the worker was stopped already.
    mutating func requestStop(drain: Bool, effects: inout Effects) -> Bool {
        self.restartPending = false
        switch self.lifecycle {
        case .stopped:
            return false
        case .running:
            self.lifecycle = .stopping(drain: drain)
        case .stopping(let draining):
            // A stop without drain overrides an earlier drain; never the other way round.
            self.lifecycle = .stopping(drain: draining && drain)
        }
        effects.wakePutters = true
        self.arm(nil, effects: &effects)
        return true
    }

    /// After a stop request: an idle worker is finished by the calling thread (or gets a task when it
    /// has items to drain); a submitted task that has not started is cancelled.
    mutating func settleStop(hasDrainWork: Bool, effects: inout Effects) {
        guard self.isStopping else {
            return
        }
        switch self.slot {
        case .empty:
            if hasDrainWork {
                self.claimSlot(&effects)
            } else {
                self.beginFinalizing(&effects)
            }
        case .submitted(_, let task):
            if !hasDrainWork, let task {
                effects.cancelTask = task
            }
        case .running, .finalizing:
            break
        }
    }

    /// The calling thread takes the slot to finish the stop.
    mutating func beginFinalizing(_ effects: inout Effects) {
        self.slot = .finalizing(thread: pthread_self())
        self.isExecuting = false
        effects.finalize = true
        effects.callOnStop = self.startHook == .done
    }

    /// Registers a thread waiting for the stop to finish. Returns `false` if the worker is stopped.
    mutating func addStopWaiter(_ waiter: Waiter) -> Bool {
        guard self.lifecycle != .stopped else {
            return false
        }
        self.stopWaiters.append(waiter)
        return true
    }

    /// `onStop` has returned: the worker is stopped, or starts again if a start arrived meanwhile.
    mutating func finishStop() -> Finish {
        var finish = Finish()
        self.slot = .empty
        finish.waiters = self.stopWaiters
        self.stopWaiters = []
        if self.restartPending, let worker = self.keepAlive {
            self.begin(worker)
            finish.restarted = true
        } else {
            self.lifecycle = .stopped
            self.restartPending = false
            finish.releaseActivity = true
            finish.keepAlive = self.keepAlive
            self.keepAlive = nil
        }
        return finish
    }
}
