import DequeModule
import Glibc

/// The state of a ``TaskSupervisor`` and its thread pool, and the events that change it.
///
/// Every `mutating` event only changes state and appends what must happen next to an ``Effects``
/// value; the supervisor performs those effects (signal or spawn threads, schedule timers, finish
/// cancelled tasks, call handlers, resume waiters) after releasing the lock.
///
/// Thread accounting, all under the lock:
/// - `threads` counts live pool threads, including `spawning` ones that have not taken the lock yet;
/// - `idleThreads` counts threads blocked on the condition variable;
/// - `leader` is the one idle thread that serves the supervisor's timers instead (it waits in
///   `TimerQueue.serve(until:)` for the earliest deadline, then runs the due timers and the tasks they
///   submit itself); it is not counted in `idleThreads`, and a submission that finds no idle thread
///   interrupts it rather than create a thread;
/// - `wakeupsPending` counts signals sent to idle threads (and interrupts of the leader) that no
///   thread has consumed yet, so that a burst of submissions wakes one idle thread per task and never
///   signals a thread twice;
/// - `running` counts tasks that have started and not yet been counted as done.
///
/// Wake-ups are capped at the CPUs: an idle thread is signalled for a ready task only while fewer
/// threads than ``awakeLimit`` (the CPUs but one) are awake (running a task, between tasks, or signalled and on their way).
/// More awake threads than CPUs make a burst slower, not faster: they take turns on the CPUs and on
/// the lock. A thread that is awake may be blocked in its task (a sleep, a wait) rather than using a
/// CPU, so a ready task held back by the cap arms the wake timer: ``wakeDelay`` later it wakes threads
/// for every task still ready, whatever the cap. A task thus waits at most about that long for a
/// thread because others are busy, and never for a task to end.
///
/// Admission is decided under the lock, against `running`, in two places: ``dispatch(_:)`` admits
/// the most urgent waiting tasks for which an idle thread can be woken (or a thread created), moves
/// them to `ready` and counts them as running at once, so the decision does not depend on which
/// thread wakes first; a thread that finishes a task takes a `ready` task, or else admits the most
/// urgent waiting one itself, without sleeping.
struct SupervisorStateMachine: Sendable {
    enum Lifecycle: Sendable {
        /// Created; tasks may be submitted and wait for ``start(_:)``.
        case initial
        /// Started.
        case running
        /// Stop requested; tasks left in the queue still run, new ones are refused.
        case stopping
        /// Stopped and drained: nothing is queued, delayed or running.
        case stopped
    }

    /// What woke a pool thread's loop.
    enum ThreadEvent {
        /// The thread has just started.
        case spawned
        /// The thread finished running this task (its handlers have run).
        case finished(SupervisorTask)
        /// The thread returned from its condition wait; `timedOut` if its idle timeout passed.
        case woke(timedOut: Bool)
        /// The thread performed effects and looks again.
        case recheck
    }

    /// What a pool thread does next.
    enum ThreadStep {
        case run(TaskQueue.Entry)
        /// Wait on the condition variable, for at most this many seconds (`nil`: no limit).
        case wait(timeout: Double?)
        /// Serve the timers (`TimerQueue.serve(until:)`) for at most this many seconds, then call
        /// ``leaderReturned(timersAvailable:)``.
        case lead(timeout: Double?)
        case exit
    }

    /// The pool thread that serves the timers, if any.
    enum Leader {
        case none
        /// It waits for the earliest timer.
        case waiting
        /// It was interrupted to take a task (counted in `wakeupsPending`).
        case interrupted
    }

    /// A delayed task whose timer must be scheduled.
    struct DelayTimer {
        let id: TimerID
        let deadline: Double
        let entry: TaskQueue.Entry
    }

    /// A start-latency report to log and hand to a handler.
    struct LatencyReport {
        let task: SupervisorTask
        let level: LatencyLevel
        let latency: Double
        let started: Bool
        let handler: (@Sendable (SupervisorTask) -> Void)?
    }

    /// Side effects to perform after the lock is released.
    struct Effects {
        var signals = 0
        var broadcast = false
        var latencyTimer: (id: TimerID, deadline: Double)?
        /// Arm the wake timer (``SupervisorStateMachine/wakeDelay`` from now).
        var wakeTimer: TimerID?
        var shutdownTimers = false
        /// Make the leader return from serving the timers (`TimerQueue.interruptServer()`).
        var interruptLeader = false
        /// The lists, which most steps leave empty: kept apart so that such a step makes and drops one empty
        /// optional, not seven arrays (every submission and every task's end makes an `Effects`).
        private var lists: Lists?

        private struct Lists {
            var spawnNumbers: [Int] = []
            var delayTimers: [DelayTimer] = []
            var cancelTimers: [TimerID] = []
            var canceled: [SupervisorTask] = []
            var reports: [LatencyReport] = []
            var waiters: [Waiter] = []
            var continuations: [CheckedContinuation<Void, Never>] = []

            var isEmpty: Bool {
                self.spawnNumbers.isEmpty && self.delayTimers.isEmpty && self.cancelTimers.isEmpty
                    && self.canceled.isEmpty && self.reports.isEmpty && self.waiters.isEmpty
                    && self.continuations.isEmpty
            }
        }

        var spawnNumbers: [Int] {
            get { self.lists?.spawnNumbers ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.spawnNumbers
            }
        }
        var delayTimers: [DelayTimer] {
            get { self.lists?.delayTimers ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.delayTimers
            }
        }
        var cancelTimers: [TimerID] {
            get { self.lists?.cancelTimers ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.cancelTimers
            }
        }
        var canceled: [SupervisorTask] {
            get { self.lists?.canceled ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.canceled
            }
        }
        var reports: [LatencyReport] {
            get { self.lists?.reports ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.reports
            }
        }
        var waiters: [Waiter] {
            get { self.lists?.waiters ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.waiters
            }
        }
        var continuations: [CheckedContinuation<Void, Never>] {
            get { self.lists?.continuations ?? [] }
            _modify {
                if self.lists == nil { self.lists = Lists() }
                yield &self.lists!.continuations
            }
        }

        var isEmpty: Bool {
            self.signals == 0 && !self.broadcast && self.latencyTimer == nil && self.wakeTimer == nil
                && !self.shutdownTimers
                && !self.interruptLeader && self.lists?.isEmpty != false
        }
    }

    private(set) var lifecycle: Lifecycle = .initial
    private(set) var configuration: TaskSupervisor.Configuration
    private var maxThreads: Int
    private(set) var warningHandler: (@Sendable (SupervisorTask) -> Void)?
    private(set) var criticalHandler: (@Sendable (SupervisorTask) -> Void)?

    var queue = TaskQueue()
    /// Admitted tasks (counted in `running`, status `started`) waiting for the thread woken or created
    /// for them; any thread that looks for work takes these first.
    private var ready = Deque<TaskQueue.Entry>()
    /// Tasks that are delayed, queued or running, by id.
    private(set) var registry: [TaskKey: SupervisorTask] = [:]
    /// The ids of process-pool tasks (in `registry` too) that have not finished; their queue is the pool's.
    private(set) var processTaskIDs: Set<Int> = []
    /// Delayed tasks' timers, by task id.
    private var delayed: [Int: TimerID] = [:]

    private(set) var running = 0
    private(set) var threads = 0
    private(set) var idleThreads = 0
    private(set) var leader = Leader.none
    /// The timers can be served by pool threads (until their queue reports that it was shut down).
    private var timersServed = true
    private var wakeupsPending = 0
    /// The time of the last submission (a ``Monotonic/now()`` time).
    private var lastSubmissionAt = -Double.infinity
    private var spawning = 0
    /// Cancelled tasks whose handlers run outside the lock; they keep the supervisor busy meanwhile.
    private var finishing = 0
    private(set) var activity = 0
    private var nextThreadNumber = 1
    /// The one armed start-latency timer, if any.
    var latencyTimer: TimerID?
    /// The armed wake timer, if any (see the type's notes on wake-ups).
    private var wakeTimer: TimerID?
    /// The cap on awake threads for wake-ups (``defaultAwakeLimit``; tests set their own).
    var awakeLimit = Self.defaultAwakeLimit

    private var idleWaiters: [Waiter] = []
    private var idleContinuations: [CheckedContinuation<Void, Never>] = []
    private var drainWaiters: [Waiter] = []
    private var stopRequestWaiters: [Waiter] = []
    private var stopRequestContinuations: [CheckedContinuation<Void, Never>] = []
    private(set) var stopFinished = false
    private var stopFinishedContinuations: [CheckedContinuation<Void, Never>] = []

    init(configuration: TaskSupervisor.Configuration) {
        self.configuration = configuration
        self.maxThreads = configuration.effectiveMaxSize ?? Int.max
    }

    // MARK: - Derived state

    var isDispatching: Bool {
        self.lifecycle == .running || self.lifecycle == .stopping
    }

    var isStopRequested: Bool {
        self.lifecycle == .stopping || self.lifecycle == .stopped
    }

    /// Nothing is delayed, queued, running or being cancelled.
    var isDrained: Bool {
        self.running == 0 && self.queue.isEmpty && self.delayed.isEmpty && self.finishing == 0
            && self.processTaskIDs.isEmpty
    }

    var isIdle: Bool {
        self.isDrained && self.activity == 0
    }

    var delayedCount: Int {
        self.delayed.count
    }

    var warningThreshold: Double? {
        let value = self.configuration.timeoutWarning
        return value.isFinite && value >= 0 ? value : nil
    }

    var criticalThreshold: Double? {
        let value = self.configuration.timeoutCritical
        return value.isFinite && value >= 0 ? value : nil
    }

    // MARK: - Pool threads

    /// A pool thread reports what happened and learns what to do next.
    mutating func threadStep(_ event: ThreadEvent, effects: inout Effects) -> ThreadStep {
        var timedOut = false
        switch event {
        case .spawned:
            self.spawning -= 1
        case .finished(let task):
            self.running -= 1
            self.registry.removeValue(forKey: TaskKey(task.id))
            if self.running == 0 {
                self.checkQuiescence(&effects)
            }
        case .woke(let didTimeOut):
            timedOut = didTimeOut
            self.idleThreads -= 1
            if self.wakeupsPending > 0 {
                self.wakeupsPending -= 1
            }
        case .recheck:
            break
        }

        if let entry = self.ready.popFirst() {
            // Others are ready too: wake up to two more threads, so that a burst fans out quickly
            // while the submitter paid for one wake-up only.
            self.wakeForReady(&effects, limit: 2)
            return .run(entry)
        }
        if self.isDispatching {
            let overLimit = self.threads > self.maxThreads
            let running = self.running
            let configuration = self.configuration
            let entry = self.queue.removeFirst { priorityClass in
                (!overLimit || priorityClass == .critical)
                    && running < configuration.runningLimit(for: priorityClass)
            }
            if let entry {
                let started = entry.task.transition(from: .queued, to: .started)
                assert(started, "a task in the queue was not queued")
                self.running += 1
                return .run(entry)
            }
        }

        if self.isStopRequested || self.threads > self.maxThreads
            || (timedOut && self.threads > self.configuration.minSize)
        {
            self.threads -= 1
            self.dispatch(&effects)
            return .exit
        }
        let timeout = self.threads > self.configuration.minSize ? self.configuration.idleThreadTimeout : nil
        if self.leader == .none && self.timersServed {
            self.leader = .waiting
            return .lead(timeout: timeout)
        }
        self.idleThreads += 1
        return .wait(timeout: timeout)
    }

    /// The leader came back from serving the timers: it now counts as an idle thread that was woken,
    /// so that the tasks its timers submit wait for it in `ready` (no other thread is signalled for
    /// them), and it goes on with `.woke`. `timersAvailable` is `false` if the timer queue was shut
    /// down: then no thread leads again.
    mutating func leaderReturned(timersAvailable: Bool) {
        if self.leader == .waiting {
            self.wakeupsPending += 1
        }
        self.leader = .none
        self.idleThreads += 1
        if !timersAvailable {
            self.timersServed = false
        }
    }

    /// Interrupts the waiting leader (it takes a ready task, or looks again).
    private mutating func interruptLeader(_ effects: inout Effects) {
        guard self.leader == .waiting else {
            return
        }
        self.leader = .interrupted
        self.wakeupsPending += 1
        effects.interruptLeader = true
    }

    /// Admits the most urgent waiting tasks for which a thread is available: an idle or starting
    /// thread not yet assigned a `ready` task, or a new thread within the limit (a critical task gets a
    /// new thread even beyond it).
    ///
    /// Wake-ups are batched: a submission signals an idle thread only when no signal is already on its
    /// way, unless it comes more than ``burstGap`` after the submission before it (`now` is its time;
    /// `nil` for other callers). Tasks admitted meanwhile wait in `ready` for the woken thread, which
    /// wakes more threads if more than it can take are ready (see ``wakeForReady(_:limit:)``). So a
    /// burst of submissions costs the submitter one `futex` wake, not one per task; and a submission
    /// on its own (the tick of an interval worker, fired by the thread that serves the timers a while
    /// after the one before) does not wait for a thread that is still waking up for an earlier task,
    /// to run that task first and only then wake another one: it wakes its own.
    mutating func dispatch(_ effects: inout Effects, now: Double? = nil) {
        guard self.isDispatching else {
            return
        }
        let configuration = self.configuration
        while !self.queue.isEmpty {
            let running = self.running
            let leaderFree = self.leader == .waiting ? 1 : 0
            let unassigned = self.idleThreads + leaderFree + self.spawning - self.ready.count
            let threadRoom = self.maxThreads - self.threads
            var spawn = false
            let entry = self.queue.removeFirst { priorityClass in
                guard running < configuration.runningLimit(for: priorityClass) else {
                    return false
                }
                if unassigned > 0 {
                    return true
                }
                spawn = threadRoom > 0 || priorityClass == .critical
                return spawn
            }
            guard let entry else {
                break
            }
            let started = entry.task.transition(from: .queued, to: .started)
            assert(started, "a task in the queue was not queued")
            self.running += 1
            self.ready.append(entry)
            if spawn {
                self.addThread(&effects)
            }
        }
        var alone = false
        if let now {
            alone = now - self.lastSubmissionAt > Self.burstGap
            self.lastSubmissionAt = max(self.lastSubmissionAt, now)
        }
        self.wakeForReady(&effects, limit: self.wakeupsPending == 0 || alone ? 1 : 0)
    }

    /// Submissions closer together than this (seconds) are a burst. A loop submits a task every few
    /// µs; a thread needs ~25 µs to wake up on the benchmarks' machine when its CPU was busy a moment
    /// ago, and ~100 µs when that CPU had gone idle.
    static let burstGap = 0.00005

    /// The CPUs that this process may run on: the cap on awake pool threads for wake-ups.
    static let cpuCount: Int = {
        let online = Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))
        return max(1, online)
    }()

    /// The cap on awake pool threads for wake-ups: the CPUs but one, left to the thread that submits (a loop
    /// that submits tasks keeps a CPU busy itself); at least one.
    static let defaultAwakeLimit = max(1, cpuCount - 1)

    /// How long a ready task held back by the cap on wake-ups waits before the wake timer wakes threads for it
    /// (seconds): long against a trivial task (~2 µs), short against a wake-up on a busy machine (~100 µs) and
    /// against anything a user would notice.
    static let wakeDelay = 0.0005

    /// Signals up to `limit` idle threads when more tasks are `ready` than threads are on their way, while fewer
    /// threads than the CPUs are awake (all of them when `uncapped`); when no idle thread is left, interrupts the
    /// leader; when the cap held a wake-up back, arms the wake timer.
    private mutating func wakeForReady(_ effects: inout Effects, limit: Int, uncapped: Bool = false) {
        var signals = 0
        // Awake: running a task or between tasks (spawning ones included), or signalled and not yet woken.
        let awake = self.threads - self.idleThreads - (self.leader == .none ? 0 : 1) + self.wakeupsPending
        var room = uncapped || !self.timersServed ? Int.max : self.awakeLimit - awake
        while signals < limit && room > 0 && self.ready.count > self.wakeupsPending + self.spawning
            && self.idleThreads > self.wakeupsPending
        {
            self.wakeupsPending += 1
            signals += 1
            room -= 1
        }
        effects.signals += signals
        if signals < limit && self.ready.count > self.wakeupsPending + self.spawning {
            if room > 0 {
                self.interruptLeader(&effects)
            } else if self.wakeTimer == nil {
                let id = TimerID.next()
                self.wakeTimer = id
                effects.wakeTimer = id
            }
        }
    }

    /// The wake timer fired: threads for every task still ready, whatever the cap (its awake threads may be
    /// blocked in their tasks).
    mutating func wakeTimerFired(_ id: TimerID, effects: inout Effects) {
        guard self.wakeTimer == id else {
            return
        }
        self.wakeTimer = nil
        guard self.isDispatching else {
            return
        }
        self.wakeForReady(&effects, limit: Int.max, uncapped: true)
    }

    private mutating func addThread(_ effects: inout Effects) {
        self.threads += 1
        self.spawning += 1
        effects.spawnNumbers.append(self.nextThreadNumber)
        self.nextThreadNumber += 1
    }

    /// A thread could not be created.
    mutating func spawnFailed(_ effects: inout Effects) {
        self.threads -= 1
        self.spawning -= 1
        // The task admitted for that thread goes back to the queue, to wait for another one.
        if self.ready.count > self.wakeupsPending + self.spawning, let entry = self.ready.popLast() {
            if entry.task.transition(from: .started, to: .queued) {
                self.running -= 1
                self.queue.append(entry)
            }
        }
        self.checkQuiescence(&effects)
    }

    // MARK: - Tasks

    /// Accepts a task, or refuses it (returns `false`) after a stop.
    mutating func submit(
        _ entry: TaskQueue.Entry, delay: (id: TimerID, deadline: Double)?, now: Double, effects: inout Effects
    ) -> Bool {
        guard !self.isStopRequested else {
            return false
        }
        self.registry[TaskKey(entry.task.id)] = entry.task
        if let delay {
            self.delayed[entry.task.id] = delay.id
            effects.delayTimers.append(DelayTimer(id: delay.id, deadline: delay.deadline, entry: entry))
            return true
        }
        self.queue.append(entry)
        self.dispatch(&effects, now: now)
        if self.latencyTimer == nil {
            self.armLatencyTimer(&effects)
        }
        return true
    }

    /// A delayed task's timer fired: it joins the queue.
    mutating func delayElapsed(_ entry: TaskQueue.Entry, now: Double, effects: inout Effects) {
        guard self.delayed.removeValue(forKey: entry.task.id) != nil,
            entry.task.transition(from: .delayed, to: .queued)
        else {
            return
        }
        entry.task.setTimeQueued(now)
        self.queue.append(entry)
        self.dispatch(&effects)
        if self.latencyTimer == nil {
            self.armLatencyTimer(&effects)
        }
    }

    /// Cancels a queued or delayed task. Returns whether it was cancelled.
    mutating func cancel(_ task: SupervisorTask, effects: inout Effects) -> Bool {
        // A process task waits in the process pool's queue, which cancels it.
        guard !self.processTaskIDs.contains(task.id) else {
            return false
        }
        if task.transition(from: .queued, to: .canceled) {
            self.queue.markCanceled(task)
        } else if task.transition(from: .delayed, to: .canceled) {
            if let timer = self.delayed.removeValue(forKey: task.id) {
                effects.cancelTimers.append(timer)
            }
        } else {
            return false
        }
        self.registry.removeValue(forKey: TaskKey(task.id))
        self.finishing += 1
        effects.canceled.append(task)
        return true
    }

    /// Accepts a process-pool task for the accounting (``registry``, idleness, stop), or refuses it (returns
    /// `false`) after a stop.
    mutating func submitProcessTask(_ task: SupervisorTask) -> Bool {
        guard !self.isStopRequested else {
            return false
        }
        self.registry[TaskKey(task.id)] = task
        self.processTaskIDs.insert(task.id)
        return true
    }

    /// A process-pool task has finished and run its handlers.
    mutating func processTaskFinished(_ task: SupervisorTask, effects: inout Effects) {
        guard self.processTaskIDs.remove(task.id) != nil else {
            return
        }
        self.registry.removeValue(forKey: TaskKey(task.id))
        self.checkQuiescence(&effects)
    }

    /// Cancelled tasks have run their handlers.
    mutating func canceledFinished(_ count: Int, effects: inout Effects) {
        self.finishing -= count
        self.checkQuiescence(&effects)
    }

    /// Tasks that are running now, by id.
    var runningTasks: [SupervisorTask] {
        self.registry.values.filter { $0.status == .started }.sorted { $0.id < $1.id }
    }

    // MARK: - Lifecycle

    /// Starts dispatching. Returns `false` if already started or stopped.
    mutating func start(_ effects: inout Effects) -> Bool {
        guard self.lifecycle == .initial else {
            return false
        }
        self.lifecycle = .running
        self.ensureMinimumThreads(&effects)
        self.dispatch(&effects)
        self.armLatencyTimer(&effects)
        return true
    }

    private mutating func ensureMinimumThreads(_ effects: inout Effects) {
        guard self.isDispatching else {
            return
        }
        while self.threads < min(self.configuration.minSize, self.maxThreads) {
            self.addThread(&effects)
        }
    }

    /// Stops accepting tasks and optionally cancels the waiting ones. Returns `false` if a stop was
    /// requested before.
    mutating func requestStop(cancelTasks: Bool, effects: inout Effects) -> Bool {
        var first = false
        if !self.isStopRequested {
            first = true
            self.lifecycle = .stopping
            effects.broadcast = true
            self.interruptLeader(&effects)
            effects.waiters += self.stopRequestWaiters
            effects.continuations += self.stopRequestContinuations
            self.stopRequestWaiters = []
            self.stopRequestContinuations = []
            // `waitUntilIdle` returns when the supervisor stops.
            effects.waiters += self.idleWaiters
            effects.continuations += self.idleContinuations
            self.idleWaiters = []
            self.idleContinuations = []
        }
        if cancelTasks {
            for entry in self.queue.removeAll() where entry.task.transition(from: .queued, to: .canceled) {
                self.registry.removeValue(forKey: TaskKey(entry.task.id))
                self.finishing += 1
                effects.canceled.append(entry.task)
            }
        }
        // A delayed task has not started: a stop never waits out its delay (`delay = 1e6` would hold it for days).
        for (id, timer) in self.delayed {
            effects.cancelTimers.append(timer)
            if let task = self.registry.removeValue(forKey: TaskKey(id)), task.transition(from: .delayed, to: .canceled)
            {
                self.finishing += 1
                effects.canceled.append(task)
            }
        }
        self.delayed.removeAll()
        self.dispatch(&effects)
        self.checkQuiescence(&effects)
        return first
    }

    /// Registers a thread that waits until the supervisor is drained after a stop.
    /// Returns `false` if it is drained already.
    mutating func addDrainWaiter(_ waiter: Waiter) -> Bool {
        guard self.lifecycle != .stopped else {
            return false
        }
        self.drainWaiters.append(waiter)
        return true
    }

    /// A call to `stop` has finished waiting.
    mutating func markStopFinished(_ effects: inout Effects) {
        guard !self.stopFinished else {
            return
        }
        self.stopFinished = true
        effects.continuations += self.stopFinishedContinuations
        self.stopFinishedContinuations = []
    }

    /// Registers a continuation resumed when a stop has finished. Returns `false` if it has.
    mutating func addStopFinishedContinuation(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard !self.stopFinished else {
            return false
        }
        self.stopFinishedContinuations.append(continuation)
        return true
    }

    /// Registers a thread that waits for a stop request. Returns `false` if one was made.
    mutating func addStopRequestWaiter(_ waiter: Waiter) -> Bool {
        guard !self.isStopRequested else {
            return false
        }
        self.stopRequestWaiters.append(waiter)
        return true
    }

    /// Registers a continuation resumed at a stop request. Returns `false` if one was made.
    mutating func addStopRequestContinuation(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard !self.isStopRequested else {
            return false
        }
        self.stopRequestContinuations.append(continuation)
        return true
    }

    // MARK: - Idleness

    mutating func retainActivity() {
        self.activity += 1
    }

    mutating func releaseActivity(_ effects: inout Effects) {
        precondition(self.activity > 0, "releaseActivity() without a matching retainActivity()")
        self.activity -= 1
        if self.activity == 0 {
            self.checkQuiescence(&effects)
        }
    }

    /// Registers a thread waiting for idleness. Returns `false` if idle or stopped already.
    mutating func addIdleWaiter(_ waiter: Waiter) -> Bool {
        guard !self.isIdle, !self.isStopRequested else {
            return false
        }
        self.idleWaiters.append(waiter)
        return true
    }

    /// Registers a continuation waiting for idleness. Returns `false` if idle or stopped already.
    mutating func addIdleContinuation(_ continuation: CheckedContinuation<Void, Never>) -> Bool {
        guard !self.isIdle, !self.isStopRequested else {
            return false
        }
        self.idleContinuations.append(continuation)
        return true
    }

    /// Wakes idle waiters and completes a stop when the supervisor has nothing left to do.
    private mutating func checkQuiescence(_ effects: inout Effects) {
        guard self.isDrained else {
            return
        }
        if self.activity == 0 && !(self.idleWaiters.isEmpty && self.idleContinuations.isEmpty) {
            effects.waiters += self.idleWaiters
            effects.continuations += self.idleContinuations
            self.idleWaiters = []
            self.idleContinuations = []
        }
        if self.lifecycle == .stopping {
            self.lifecycle = .stopped
            effects.shutdownTimers = true
            effects.broadcast = effects.broadcast || self.idleThreads > 0
            effects.waiters += self.drainWaiters
            self.drainWaiters = []
            self.markStopFinished(&effects)
        }
    }

    // MARK: - Configuration

    /// Changes pool sizes; waiting tasks that may now start are dispatched at once.
    mutating func setThreadPool(
        poolSize: Int?,
        reserveNormal: Int?,
        reserveHigh: Int?,
        minSize: Int?,
        maxSize: Int?,
        effects: inout Effects
    ) {
        if let poolSize { self.configuration.poolSize = max(0, poolSize) }
        if let reserveNormal { self.configuration.reserveNormal = max(0, reserveNormal) }
        if let reserveHigh { self.configuration.reserveHigh = max(0, reserveHigh) }
        if let minSize { self.configuration.minSize = max(0, minSize) }
        if let maxSize { self.configuration.maxSize = max(1, maxSize) }
        self.maxThreads = self.configuration.effectiveMaxSize ?? Int.max
        self.ensureMinimumThreads(&effects)
        self.dispatch(&effects)
        // Idle threads look again: above the new maximum they exit, and their idle timeout may change.
        if self.idleThreads > 0 {
            effects.broadcast = true
        }
        self.interruptLeader(&effects)
    }

    /// Changes the start-latency thresholds and re-arms the latency timer.
    mutating func setTimeouts(warning: Double?, critical: Double?, effects: inout Effects) {
        if let warning { self.configuration.timeoutWarning = warning }
        if let critical { self.configuration.timeoutCritical = critical }
        if let timer = self.latencyTimer {
            effects.cancelTimers.append(timer)
            self.latencyTimer = nil
        }
        self.armLatencyTimer(&effects)
    }

    mutating func setPollDelay(_ delay: Double) {
        self.configuration.pollDelay = delay
    }

    mutating func setTimeoutHandlers(
        warning: (@Sendable (SupervisorTask) -> Void)?,
        critical: (@Sendable (SupervisorTask) -> Void)?
    ) {
        self.warningHandler = warning
        self.criticalHandler = critical
    }
}

/// A task id as the key of the supervisor's registry, hashed by one multiplication instead of SipHash: the ids are
/// the supervisor's own sequence numbers (nothing outside chooses them), and a task is inserted and removed at every
/// run, where SipHash cost more than the rest of the bookkeeping.
struct TaskKey: Hashable {
    let id: Int

    init(_ id: Int) {
        self.id = id
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.id)
    }

    // Dictionary asks for this, not `hash(into:)`; the seed keeps each table's order its own.
    func _rawHashValue(seed: Int) -> Int {
        var x = UInt64(bitPattern: Int64(self.id)) ^ UInt64(bitPattern: Int64(seed))
        x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
        x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
        return Int(bitPattern: UInt(truncatingIfNeeded: x ^ (x >> 31)))
    }
}
