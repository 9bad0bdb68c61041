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

    private(set) var configuration: ProcessPoolConfiguration
    private var generation = 0
    private(set) var children: [Int: Child] = [:]
    /// Ready current-generation children with nothing outstanding, most recently idle last.
    private var idle: [Int] = []
    private var busyCount = 0
    private var startingCount = 0
    private var nextSerial = 1
    private var queue = ProcessTaskQueue()
    private var queuedIDs: Set<Int> = []
    private var running = 0
    private var spawned = 0
    private var deaths = 0
    private var startupFailures = Deque<Double>()
    private(set) var brokenCause: String?
    /// The supervisor has started (or is stopping): tasks may be sent.
    private var dispatching: Bool
    private var supervisorStopping = false
    private(set) var shuttingDown = false
    private var shutdownWaiters: [Waiter] = []

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

    private mutating func checkAutomaticShutdown(now: Double, effects: inout Effects) {
        if self.supervisorStopping && self.queue.isEmpty && self.running == 0 {
            self.shutdown(now: now, effects: &effects)
        }
    }

    private mutating func checkShutdownFinished(_ effects: inout Effects) {
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
    private func startHead(_ child: inout Child, now: Double, effects: inout Effects) {
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

    // MARK: - Events from a child's thread

    /// The child's process exists.
    mutating func childSpawned(_ serial: Int, pid: Int32, pidDescriptor: Int32) {
        self.spawned += 1
        self.children[serial]?.pid = pid
        self.children[serial]?.pidDescriptor = pidDescriptor
    }

    /// The child reported ready. Returns `false` if it was ready already (a protocol error).
    mutating func childReady(_ serial: Int, now: Double, effects: inout Effects) -> Bool {
        guard var child = self.children[serial], !child.wasReady else {
            return false
        }
        child.wasReady = true
        self.releaseStartingSlot(&child)
        if child.phase == .starting {
            child.phase = .ready
        }
        self.children[serial] = child
        if child.phase == .ready {
            self.becameIdle(serial, now: now, effects: &effects)
        }
        self.dispatch(now: now, effects: &effects)
        return true
    }

    /// The child reported a start-up failure (it exits next).
    mutating func childStartupFailed(_ serial: Int, message: String) -> Bool {
        guard self.children[serial]?.wasReady == false else {
            return false
        }
        self.children[serial]?.startupMessage = message
        return true
    }

    /// Replies arrived, in order. Returns `false` if one does not answer the first outstanding call (a
    /// protocol error); the ones before it are handled.
    mutating func replies(
        _ serial: Int,
        _ replies: [(callID: UInt64, reply: ProcessReply)],
        now: Double,
        effects: inout Effects
    ) -> Bool {
        guard var child = self.children[serial] else {
            return true
        }
        let wasBusy = !child.inflight.isEmpty
        var valid = true
        for (callID, reply) in replies {
            guard let head = child.inflight.first, head.callID == callID, child.killCause == nil else {
                valid = false
                break
            }
            child.inflight.removeFirst()
            self.running -= 1
            child.tasksRun += 1
            let duration = now - child.headStarted
            child.averageCallTime = child.averageCallTime.map { $0 + (duration - $0) / 8 } ?? duration
            if let timer = child.headTimer {
                effects.cancelTimers.append(timer)
                child.headTimer = nil
            }
            effects.finished.append((head.entry, .reply(reply)))
            if !child.inflight.isEmpty {
                self.startHead(&child, now: now, effects: &effects)
            }
        }
        self.children[serial] = child
        if wasBusy && child.inflight.isEmpty {
            self.busyCount -= 1
            // A child that broke the protocol is killed by the caller instead.
            if valid {
                self.becameIdle(serial, now: now, effects: &effects)
            }
        }
        self.dispatch(now: now, effects: &effects)
        self.checkAutomaticShutdown(now: now, effects: &effects)
        return valid
    }

    /// A ready child has nothing outstanding: keep it for the next task, or stop it if it is of an old
    /// generation or the pool is shutting down. (``dispatch(now:effects:)`` then stops idle children beyond
    /// the warm limit, once it has given them what waits.)
    private mutating func becameIdle(_ serial: Int, now: Double, effects: inout Effects) {
        guard let child = self.children[serial], child.phase == .ready else {
            return
        }
        if child.generation != self.generation || self.shuttingDown {
            self.requestStop(serial, now: now, effects: &effects)
        } else {
            self.idle.append(serial)
        }
    }

    /// Stops the longest-idle children while more children are warm (idle or busy) than the pool keeps:
    /// extra children started for critical tasks, or after the pool shrank.
    private mutating func trimIdle(now: Double, effects: inout Effects) {
        while let serial = self.idle.first, self.idle.count + self.busyCount > self.configuration.warmLimit {
            self.requestStop(serial, now: now, effects: &effects)
        }
    }

    /// Asks a child to stop: its thread sends the `stop` frame and kills it at the deadline.
    private mutating func requestStop(_ serial: Int, now: Double, effects: inout Effects) {
        guard var child = self.children[serial], child.phase != .stopping else {
            return
        }
        self.releaseStartingSlot(&child)
        child.phase = .stopping
        child.stopDeadline = now + max(0, self.configuration.stopTimeout)
        self.children[serial] = child
        self.idle.removeAll { $0 == serial }
        effects.wakes.append(child.connection)
    }

    private mutating func releaseStartingSlot(_ child: inout Child) {
        if child.holdsStartingSlot {
            child.holdsStartingSlot = false
            self.startingCount -= 1
        }
    }

    /// The child's thread takes a stop request: the deadline, once, if the child must stop.
    mutating func takeStopRequest(_ serial: Int) -> Double? {
        guard var child = self.children[serial], child.phase == .stopping, !child.stopTaken,
            let deadline = child.stopDeadline
        else {
            return nil
        }
        child.stopTaken = true
        self.children[serial] = child
        return deadline
    }

    /// Records why the pool kills a child (the first reason wins) and returns its pidfd to signal, or `nil`
    /// if the child is gone or already being killed.
    mutating func markKill(_ serial: Int, cause: KillCause) -> Int32? {
        guard var child = self.children[serial], child.killCause == nil, child.pidDescriptor >= 0 else {
            return nil
        }
        child.killCause = cause
        self.children[serial] = child
        return child.pidDescriptor
    }

    /// A call's timeout expired: returns the pidfd to kill if that call is still the one running.
    mutating func timeoutExpired(_ serial: Int, callID: UInt64, seconds: Double) -> Int32? {
        guard let child = self.children[serial], child.inflight.first?.callID == callID else {
            return nil
        }
        return self.markKill(serial, cause: .timedOut(seconds))
    }

    /// The child's process ended (or never started): fail the call it was running, put the calls pipelined
    /// behind it back at the front of the queue, count start-up failures, and dispatch again.
    mutating func childDied(_ serial: Int, ending: Ending, now: Double, effects: inout Effects) {
        guard var child = self.children.removeValue(forKey: serial) else {
            return
        }
        self.releaseStartingSlot(&child)
        self.idle.removeAll { $0 == serial }
        if let timer = child.headTimer {
            effects.cancelTimers.append(timer)
        }
        let pid = child.pid
        let stopRequested = child.phase == .stopping
        let spawned: Bool
        if case .notSpawned = ending {
            spawned = false
        } else {
            spawned = true
        }
        // A child that we asked to stop and that had nothing outstanding did not die: it was stopped.
        if spawned && !(stopRequested && child.inflight.isEmpty) {
            self.deaths += 1
        }
        if !child.wasReady && !stopRequested {
            self.recordStartupFailure(self.startupCause(child, ending: ending), effects: &effects)
        }
        if !child.inflight.isEmpty {
            self.busyCount -= 1
            let head = child.inflight.removeFirst()
            self.running -= 1
            let error = Self.error(for: child, ending: ending)
            effects.finished.append((head.entry, .error(error)))
            effects.warnings.append("\(head.entry.task) failed: \(error)")
            // The calls pipelined behind it never started.
            for inflight in child.inflight.reversed() {
                self.running -= 1
                if self.shuttingDown {
                    effects.finished.append((inflight.entry, .error(ProcessPoolError.stopped)))
                } else if let cause = self.brokenCause {
                    effects.finished.append((inflight.entry, .error(ProcessPoolError.broken(cause: cause))))
                } else if inflight.entry.task.transition(from: .started, to: .queued) {
                    self.queue.prepend(inflight.entry)
                    self.queuedIDs.insert(inflight.entry.task.id)
                }
            }
        } else if !stopRequested && child.wasReady {
            effects.warnings.append(
                "idle pool child \(pid) \(Self.endingText(ending)); a new child replaces it when needed")
        }
        self.dispatch(now: now, effects: &effects)
        self.checkAutomaticShutdown(now: now, effects: &effects)
        self.checkShutdownFinished(&effects)
    }

    private static func error(for child: Child, ending: Ending) -> any Error {
        let pid = child.pid
        switch child.killCause {
        case .timedOut(let seconds):
            return ProcessPoolError.timedOut(pid: pid, seconds: seconds)
        case .protocolError(let detail):
            return ProcessPoolError.protocolError(pid: pid, detail: detail)
        case .connectionClosed:
            return ProcessPoolError.connectionClosed(pid: pid)
        case .stopTimeout, nil:
            switch ending {
            case .reaped(.exited(let status)):
                return ProcessPoolError.childExited(pid: pid, status: status)
            case .reaped(.signaled(let signal)):
                return ProcessPoolError.childKilled(pid: pid, signal: signal)
            case .notSpawned:
                return ProcessPoolError.stopped
            }
        }
    }

    private static func endingText(_ ending: Ending) -> String {
        switch ending {
        case .reaped(.exited(let status)):
            return "exited with status \(status)"
        case .reaped(.signaled(let signal)):
            return "was killed by \(ProcessPoolError.signalName(signal))"
        case .notSpawned(let message):
            return "could not be started: \(message)"
        }
    }

    private func startupCause(_ child: Child, ending: Ending) -> String {
        if let message = child.startupMessage {
            return "pool child \(child.pid) failed to start: \(message)"
        }
        if case .protocolError(let detail) = child.killCause {
            return "pool child \(child.pid) broke the protocol during start-up: \(detail)"
        }
        if case .notSpawned(let message) = ending {
            return "cannot start \(self.configuration.executable): \(message)"
        }
        return "pool child \(child.pid) (\(self.configuration.executable)) \(Self.endingText(ending)) during start-up"
    }

    /// Counts a start-up failure; too many within the window break the pool.
    private mutating func recordStartupFailure(_ cause: String, effects: inout Effects) {
        let now = Monotonic.now()
        while let oldest = self.startupFailures.first, oldest < now - self.configuration.startupFailureWindow {
            self.startupFailures.removeFirst()
        }
        self.startupFailures.append(now)
        effects.warnings.append(cause)
        guard self.brokenCause == nil, self.startupFailures.count >= max(1, self.configuration.startupFailureLimit)
        else {
            return
        }
        self.brokenCause = cause
        effects.warnings.append(
            "the process pool is broken after \(self.startupFailures.count) start-up failures within \(ProcessPoolError.format(self.configuration.startupFailureWindow)) seconds; queued tasks fail"
        )
        self.failQueued(with: ProcessPoolError.broken(cause: cause), effects: &effects)
    }

    private mutating func failQueued(with error: any Error, effects: inout Effects) {
        for entry in self.queue.removeAll() {
            self.queuedIDs.remove(entry.task.id)
            effects.finished.append((entry, .error(error)))
        }
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
