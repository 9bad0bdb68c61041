import DequeModule

/// The state of a ``ProcessPool``: its children, its queue, and the decisions that change them.
///
/// Every `mutating` event only changes state and records in ``Effects`` what must happen next (send
/// frames, spawn a child's thread, arm or cancel a timeout, finish tasks, wake a child's thread); the pool
/// performs those after releasing its lock, as the supervisor's own state machine does.
///
/// Admission counts busy children (children with at least one call outstanding): a task of class `c` may
/// start on an idle child, or on a new one, while fewer than `busyLimit(c)` children are busy (critical:
/// always). Children are spawned lazily, for waiting tasks that no idle or starting child can take.
///
/// Pipelining: when a low or normal task cannot start because the busy limit is reached, no child is
/// starting, and more tasks wait than children are busy (a backlog), it may be sent to a busy child behind
/// the calls it runs, up to ``pipelineDepth`` calls, if that child's calls are short (their average, and
/// the current call so far, under ``pipelineThreshold``; a child that has not finished a call yet is not
/// pipelined to). This amortizes the round trip when calls are much shorter than it, and bounds how long a
/// pipelined call can wait behind another (a call that turns out long after it started still holds up the
/// few calls pipelined behind it: the price of the throughput). High and critical tasks are never pipelined: they go
/// to a child with nothing outstanding, and while one waits at the head of the queue, nothing less urgent
/// is sent, so the busy children drain and the first one free takes it.
struct ProcessPoolStateMachine: Sendable {
    /// The most calls outstanding on one child (tests change it).
    ///
    /// Measured with 2 children echoing 32 bytes, 200,000 calls queued (release build, 2 cores): depth 1
    /// gives about 46,000-58,000 calls/s, 4 about 135,000, 8 about 160,000, 16 about 185,000. 8 keeps most of
    /// the gain while few calls wait behind one that turns out long.
    var pipelineDepth = 8
    /// Calls longer than this (seconds) are not pipelined behind (tests change it).
    var pipelineThreshold = 0.002
    /// Whether pipelining waits for a backlog (tests turn it off).
    var pipelineNeedsBacklog = true

    enum Phase: Sendable {
        /// Spawned (or being spawned); not ready yet.
        case starting
        case ready
        /// Asked to stop (retired or pool shutdown); it gets no new calls.
        case stopping
    }

    /// Why the pool killed a child; the failed call's error follows from it.
    enum KillCause: Sendable {
        case timedOut(Double)
        case protocolError(String)
        case connectionClosed
        case stopTimeout
    }

    /// How a child's process ended, as its thread reports it.
    enum Ending: Sendable {
        /// Reaped with this exit.
        case reaped(ProcessSystem.Exit)
        /// It could not be spawned; the message says why.
        case notSpawned(String)
    }

    struct Inflight: Sendable {
        let callID: UInt64
        let entry: ProcessTaskEntry
    }

    struct Child: Sendable {
        let serial: Int
        let generation: Int
        let connection: ProcessChildConnection
        var phase: Phase = .starting
        /// Counted in `startingCount`: a current-generation child that will take a task when ready.
        var holdsStartingSlot = true
        var wasReady = false
        var pid: Int32 = 0
        var pidDescriptor: Int32 = -1
        var inflight: Deque<Inflight> = []
        var sentKeys: Set<UInt64> = []
        var nextCallID: UInt64 = 1
        var tasksRun = 0
        var killCause: KillCause?
        var startupMessage: String?
        /// When the first outstanding call started (was sent to an idle child, or its predecessor answered).
        var headStarted = 0.0
        var headTimer: TimerID?
        /// The running average of call durations (seconds), `nil` until a call has finished.
        var averageCallTime: Double?
        /// The stop deadline once the stop has been requested.
        var stopDeadline: Double?
        /// Whether the child's thread has taken the stop request (and sent the `stop` frame).
        var stopTaken = false
        /// Whether the child's thread is about to reap it: from then on, its pid may stop naming its process
        /// group, so nobody else signals the group.
        var reaping = false
    }

    /// Where the signals that end a child go: its pidfd, and its process group (the child's pid) while the child
    /// is not being reaped.
    struct KillTarget: Sendable {
        let pidDescriptor: Int32
        let group: Int32?
    }

    /// A frame to send to a child.
    enum Outgoing: Sendable {
        case call(id: UInt64, definitions: [ProcessDefinition], payload: [UInt8])
    }

    /// How a task ends.
    enum Outcome: Sendable {
        case reply(ProcessReply)
        case error(any Error)
        case canceled
    }

    struct TimeoutTimer: Sendable {
        let id: TimerID
        let deadline: Double
        let serial: Int
        let callID: UInt64
        let seconds: Double
    }

    /// Side effects to perform after the lock is released.
    struct Effects: Sendable {
        var sends: [(connection: ProcessChildConnection, frames: [Outgoing])] = []
        var spawns: [ProcessChildConnection] = []
        var finished: [(entry: ProcessTaskEntry, outcome: Outcome)] = []
        var timers: [TimeoutTimer] = []
        var cancelTimers: [TimerID] = []
        var wakes: [ProcessChildConnection] = []
        var waiters: [Waiter] = []
        var warnings: [String] = []
        /// Tasks sent to a child, for the supervisor's start-latency checks.
        var started: [(task: SupervisorTask, at: Double)] = []

        mutating func send(_ frame: Outgoing, to connection: ProcessChildConnection) {
            if let index = self.sends.firstIndex(where: { $0.connection === connection }) {
                self.sends[index].frames.append(frame)
            } else {
                self.sends.append((connection, [frame]))
            }
        }
    }

    // The fields below are changed only by the events of this type and of its extensions (in
    // `ProcessPoolStateMachine+Children.swift`), never by the pool directly.
    private(set) var configuration: ProcessPoolConfiguration
    /// Bumped when the children's program, arguments, environment or hello change; older children retire.
    var generation = 0
    /// Live children (starting, ready or stopping), by serial number.
    var children: [Int: Child] = [:]
    /// Ready current-generation children with nothing outstanding, most recently idle last.
    var idle: [Int] = []
    /// Children with at least one call outstanding: what the busy limits count.
    var busyCount = 0
    /// Current-generation children spawned for waiting tasks and not ready yet.
    var startingCount = 0
    var nextSerial = 1
    var queue = ProcessTaskQueue()
    /// The ids of the tasks in `queue` (for ``cancel(_:now:effects:)``).
    var queuedIDs: Set<Int> = []
    /// Calls outstanding on all children.
    var running = 0
    var spawned = 0
    var deaths = 0
    /// When recent start-up failures happened, oldest first (within the failure window).
    var startupFailures = Deque<Double>()
    /// Why the pool is broken, `nil` while it is not.
    var brokenCause: String?
    /// The supervisor has started (or is stopping): tasks may be sent.
    var dispatching: Bool
    /// The supervisor is stopping: the pool shuts down when its last task has finished.
    var supervisorStopping = false
    /// The pool is stopping its children; it takes no task any more.
    var shuttingDown = false
    var shutdownWaiters: [Waiter] = []

    init(configuration: ProcessPoolConfiguration, dispatching: Bool) {
        self.configuration = configuration
        self.dispatching = dispatching
    }

    // MARK: - Tasks

    /// Accepts a task, or returns why it fails at once.
    mutating func submit(_ entry: ProcessTaskEntry, now: Double, effects: inout Effects) -> (any Error)? {
        if self.shuttingDown {
            return ProcessPoolError.stopped
        }
        if let cause = self.brokenCause {
            return ProcessPoolError.broken(cause: cause)
        }
        self.queue.append(entry)
        self.queuedIDs.insert(entry.task.id)
        self.dispatch(now: now, effects: &effects)
        return nil
    }

    /// Cancels a task that waits in this pool's queue. Returns whether it did.
    mutating func cancel(_ task: SupervisorTask, now: Double, effects: inout Effects) -> Bool {
        guard self.queuedIDs.contains(task.id), task.transition(from: .queued, to: .canceled) else {
            return false
        }
        self.queuedIDs.remove(task.id)
        self.queue.markCanceled()
        self.checkAutomaticShutdown(now: now, effects: &effects)
        return true
    }

    // MARK: - Supervisor lifecycle

    mutating func supervisorStarted(now: Double, effects: inout Effects) {
        self.dispatching = true
        self.dispatch(now: now, effects: &effects)
    }

    /// The supervisor stops: with `cancelTasks`, queued tasks are cancelled; the pool shuts down once it has
    /// no task left.
    mutating func supervisorStopping(cancelTasks: Bool, now: Double, effects: inout Effects) {
        self.supervisorStopping = true
        self.dispatching = true
        if cancelTasks {
            for entry in self.queue.removeAll() where entry.task.transition(from: .queued, to: .canceled) {
                self.queuedIDs.remove(entry.task.id)
                effects.finished.append((entry, .canceled))
            }
        }
        self.dispatch(now: now, effects: &effects)
        self.checkAutomaticShutdown(now: now, effects: &effects)
    }

    /// Stops every child: queued tasks fail with ``ProcessPoolError/stopped``, children finish the calls
    /// sent to them, get a `stop` frame, and are killed at `now + stopTimeout`.
    mutating func shutdown(now: Double, effects: inout Effects) {
        guard !self.shuttingDown else {
            return
        }
        self.shuttingDown = true
        self.failQueued(with: ProcessPoolError.stopped, effects: &effects)
        for serial in self.children.keys.sorted() {
            self.requestStop(serial, now: now, effects: &effects)
        }
        self.idle.removeAll()
        self.checkShutdownFinished(&effects)
    }

    /// Registers a thread that waits until the shutdown has finished. Returns `false` if it has.
    mutating func addShutdownWaiter(_ waiter: Waiter) -> Bool {
        guard !(self.shuttingDown && self.children.isEmpty) else {
            return false
        }
        self.shutdownWaiters.append(waiter)
        return true
    }

    mutating func checkAutomaticShutdown(now: Double, effects: inout Effects) {
        if self.supervisorStopping && self.queue.isEmpty && self.running == 0 {
            self.shutdown(now: now, effects: &effects)
        }
    }

    mutating func checkShutdownFinished(_ effects: inout Effects) {
        if self.shuttingDown && self.children.isEmpty {
            effects.waiters += self.shutdownWaiters
            self.shutdownWaiters = []
        }
    }

    // MARK: - Configuration

    /// Applies a new configuration; see ``TaskSupervisor/setProcessPool(_:)``.
    mutating func reconfigure(_ configuration: ProcessPoolConfiguration, now: Double, effects: inout Effects) {
        let replaceChildren = !configuration.spawnsSameChildren(as: self.configuration)
        self.configuration = configuration
        self.brokenCause = nil
        self.startupFailures.removeAll()
        if replaceChildren {
            self.generation += 1
            for serial in self.children.keys.sorted() {
                guard let child = self.children[serial] else {
                    continue
                }
                // Busy children are stopped when they become idle (their generation is old).
                if child.phase == .starting || child.inflight.isEmpty {
                    self.requestStop(serial, now: now, effects: &effects)
                }
            }
            self.idle.removeAll()
        }
        self.dispatch(now: now, effects: &effects)
    }

    /// What a child's thread needs to spawn it, or `nil` if it should not be spawned any more.
    func spawnPlan(_ serial: Int) -> ProcessPoolConfiguration? {
        guard let child = self.children[serial], child.phase == .starting, !self.shuttingDown else {
            return nil
        }
        return self.configuration
    }

    /// The service that answers requests.
    var service: (@Sendable ([UInt8], Bool) -> [UInt8])? {
        self.configuration.service
    }

    // MARK: - Dispatch

    /// Sends waiting tasks to idle children, pipelines short calls, and spawns the children still needed.
    mutating func dispatch(now: Double, effects: inout Effects) {
        guard self.dispatching, !self.shuttingDown, self.brokenCause == nil else {
            return
        }
        while let head = self.queue.first() {
            let priorityClass = head.task.priority.priorityClass
            let limit = self.configuration.busyLimit(for: priorityClass)
            if self.busyCount < limit, let serial = self.idle.popLast() {
                _ = self.queue.removeFirst()
                self.assign(head, to: serial, now: now, effects: &effects)
                continue
            }
            if self.busyCount >= limit, self.startingCount == 0,
                priorityClass == .normal || priorityClass == .low,
                !self.pipelineNeedsBacklog || self.queue.count > self.busyCount,
                let serial = self.pipelineCandidate(now: now)
            {
                _ = self.queue.removeFirst()
                self.assign(head, to: serial, now: now, effects: &effects)
                continue
            }
            break
        }
        guard self.idle.isEmpty, !self.queue.isEmpty else {
            self.trimIdle(now: now, effects: &effects)
            return
        }
        // Spawn for the waiting tasks, most urgent first, that the busy limits admit and that the children
        // already starting will not take.
        var projected = self.busyCount
        var absorbed = 0
        var needed = 0
        let starting = self.startingCount
        let configuration = self.configuration
        self.queue.forEach { entry in
            let priorityClass = entry.task.priority.priorityClass
            guard priorityClass == .critical || projected < configuration.busyLimit(for: priorityClass) else {
                return false
            }
            projected += 1
            if absorbed < starting {
                absorbed += 1
            } else {
                needed += 1
            }
            return true
        }
        for _ in 0..<needed where self.brokenCause == nil {
            self.spawnChild(effects: &effects)
        }
    }

    private mutating func spawnChild(effects: inout Effects) {
        let serial = self.nextSerial
        self.nextSerial += 1
        guard let connection = ProcessChildConnection(serial: serial) else {
            self.recordStartupFailure(
                "cannot create a socket pair for a pool child (out of descriptors?)", effects: &effects)
            return
        }
        self.children[serial] = Child(serial: serial, generation: self.generation, connection: connection)
        self.startingCount += 1
        effects.spawns.append(connection)
    }

    /// The busy child that may take one more pipelined call, the least loaded first.
    private func pipelineCandidate(now: Double) -> Int? {
        var best: Child?
        for child in self.children.values {
            guard child.phase == .ready, child.generation == self.generation, child.killCause == nil,
                !child.inflight.isEmpty, child.inflight.count < self.pipelineDepth,
                let average = child.averageCallTime, average < self.pipelineThreshold,
                now - child.headStarted < self.pipelineThreshold
            else {
                continue
            }
            if let current = best,
                current.inflight.count < child.inflight.count
                    || (current.inflight.count == child.inflight.count && current.serial < child.serial)
            {
                continue
            }
            best = child
        }
        return best?.serial
    }

    private mutating func assign(_ entry: ProcessTaskEntry, to serial: Int, now: Double, effects: inout Effects) {
        guard var child = self.children[serial] else {
            preconditionFailure("assigning to a child that does not exist")
        }
        let started = entry.task.transition(from: .queued, to: .started)
        assert(started, "a task in the process queue was not queued")
        entry.task.setTimeStarted(now)
        effects.started.append((entry.task, now))
        self.queuedIDs.remove(entry.task.id)
        self.running += 1
        let callID = child.nextCallID
        child.nextCallID += 1
        var definitions: [ProcessDefinition] = []
        for definition in entry.call.definitions where child.sentKeys.insert(definition.key).inserted {
            definitions.append(definition)
        }
        child.inflight.append(Inflight(callID: callID, entry: entry))
        if child.inflight.count == 1 {
            self.busyCount += 1
            self.startHead(&child, now: now, effects: &effects)
        }
        self.children[serial] = child
        effects.send(.call(id: callID, definitions: definitions, payload: entry.call.payload), to: child.connection)
    }

    /// The first outstanding call of `child` starts now: arm its timeout.
    func startHead(_ child: inout Child, now: Double, effects: inout Effects) {
        child.headStarted = now
        guard let head = child.inflight.first, let seconds = head.entry.timeout else {
            return
        }
        let id = TimerID.next()
        child.headTimer = id
        effects.timers.append(
            TimeoutTimer(
                id: id, deadline: now + max(0, seconds), serial: child.serial, callID: head.callID, seconds: seconds)
        )
    }

    // MARK: - Info

    func info() -> ProcessPoolInfo {
        let children = self.children.values.sorted { $0.serial < $1.serial }.map { child in
            ProcessPoolInfo.Child(
                pid: child.pid,
                busy: !child.inflight.isEmpty,
                outstandingCalls: child.inflight.count,
                ready: child.wasReady,
                tasksRun: child.tasksRun
            )
        }
        return ProcessPoolInfo(
            poolSize: self.configuration.poolSize,
            reserveNormal: self.configuration.reserveNormal,
            reserveHigh: self.configuration.reserveHigh,
            children: children,
            childrenSpawned: self.spawned,
            childDeaths: self.deaths,
            queuedCount: self.queue.count,
            runningCount: self.running,
            brokenCause: self.brokenCause
        )
    }
}
