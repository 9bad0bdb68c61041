import Glibc
import Logging

/// The process pool of one ``TaskSupervisor``: a ``ProcessPoolStateMachine`` under a lock, and the
/// effects of its decisions.
///
/// Lock order: the pool's lock, then children's output locks (taken while the pool's is held, so that
/// frames reach each socket in the order calls were assigned). Nothing takes the pool's lock while it
/// holds an output lock, and the supervisor's lock is never taken while the pool's is held.
final class ProcessPool: Sendable {
    let state: ConditionLock<ProcessPoolStateMachine>
    /// For the supervisor's task accounting; weak, because the supervisor owns the pool.
    private weak let supervisor: TaskSupervisor?
    private let timers: TimerQueue
    private let logger: Logger

    init(configuration: ProcessPoolConfiguration, supervisor: TaskSupervisor, dispatching: Bool) {
        self.state = ConditionLock(ProcessPoolStateMachine(configuration: configuration, dispatching: dispatching))
        self.supervisor = supervisor
        self.timers = supervisor.timers
        self.logger = supervisor.logger
    }

    var configuration: ProcessPoolConfiguration {
        self.state.withLock { $0.configuration }
    }

    func info() -> ProcessPoolInfo {
        self.state.withLock { $0.info() }
    }

    /// Runs `body` on the state under the lock, sends the frames it assigned (output locks taken before the
    /// pool's lock is released), then performs the other effects.
    @discardableResult
    func update<Result>(
        _ body: (inout ProcessPoolStateMachine, Double, inout ProcessPoolStateMachine.Effects) -> Result
    ) -> Result {
        var effects = ProcessPoolStateMachine.Effects()
        self.state.lock()
        let result = body(&self.state.lockedValue, Monotonic.now(), &effects)
        for send in effects.sends {
            send.connection.output.lock()
        }
        self.state.unlock()
        for send in effects.sends {
            send.connection.appendLocked(send.frames)
            send.connection.output.unlock()
        }
        self.perform(effects)
        return result
    }

    // MARK: - Tasks

    func submit(_ entry: ProcessTaskEntry) {
        if let error = self.update({ $0.submit(entry, now: $1, effects: &$2) }) {
            self.finish(entry, .error(error))
        }
    }

    /// Cancels a task waiting in this pool. Returns whether it did.
    func cancel(_ task: SupervisorTask) -> Bool {
        let canceled = self.update { $0.cancel(task, now: $1, effects: &$2) }
        if canceled {
            self.finish(task: task, transform: nil, .canceled)
        }
        return canceled
    }

    func reconfigure(_ configuration: ProcessPoolConfiguration) {
        self.update { $0.reconfigure(configuration, now: $1, effects: &$2) }
    }

    func supervisorStarted() {
        self.update { $0.supervisorStarted(now: $1, effects: &$2) }
    }

    func supervisorStopping(cancelTasks: Bool) {
        self.update { $0.supervisorStopping(cancelTasks: cancelTasks, now: $1, effects: &$2) }
    }

    /// Stops every child (see ``ProcessPoolStateMachine/shutdown(now:effects:)``) and, with `wait`, blocks
    /// until all are reaped.
    func shutdown(wait: Bool) {
        self.update { $0.shutdown(now: $1, effects: &$2) }
        guard wait else {
            return
        }
        let waiter = Waiter()
        let (mustWait, stopTimeout) = self.state.withLock {
            ($0.addShutdownWaiter(waiter), $0.configuration.stopTimeout)
        }
        if mustWait {
            // Children are killed at the stop deadline; reaping a killed child takes moments. The margin only
            // bounds the wait if a child cannot even be killed (stuck in the kernel).
            _ = waiter.wait(until: Monotonic.now() + max(0, stopTimeout) + 10)
        }
    }

    /// Kills every child and its process group now with `SIGKILL` (a stop that cannot wait: the program's second
    /// Ctrl-C, or the stop policy once it has cancelled the code that still runs). Their tasks fail, naming the
    /// stop deadline.
    func killChildren() {
        self.state.withLock { state in
            for target in state.markKillAll() {
                Self.kill(target)
            }
        }
    }

    // MARK: - Events from a child's thread

    func spawnPlan(_ serial: Int) -> ProcessPoolConfiguration? {
        self.state.withLock { $0.spawnPlan(serial) }
    }

    func childSpawned(_ serial: Int, pid: Int32, pidDescriptor: Int32) {
        self.state.withLock { $0.childSpawned(serial, pid: pid, pidDescriptor: pidDescriptor) }
    }

    func childReady(_ serial: Int) -> Bool {
        self.update { $0.childReady(serial, now: $1, effects: &$2) }
    }

    func childStartupFailed(_ serial: Int, message: String) -> Bool {
        self.state.withLock { $0.childStartupFailed(serial, message: message) }
    }

    func replies(_ serial: Int, _ replies: [(callID: UInt64, reply: ProcessReply)]) -> Bool {
        self.update { $0.replies(serial, replies, now: $1, effects: &$2) }
    }

    func takeStopRequest(_ serial: Int) -> Double? {
        self.state.withLock { $0.takeStopRequest(serial) }
    }

    var service: (@Sendable ([UInt8], Bool) -> [UInt8])? {
        self.state.withLock { $0.service }
    }

    /// Kills a child and its process group with `SIGKILL`, recording why (the first reason wins).
    func kill(_ serial: Int, cause: ProcessPoolStateMachine.KillCause) {
        self.state.withLock { state in
            if let target = state.markKill(serial, cause: cause) {
                Self.kill(target)
            }
        }
    }

    /// Sends `SIGKILL` to a child through its pidfd, and to its process group (what the child started:
    /// `os.execute`, `io.popen`), unless the child's thread has begun to reap it. Call it with the pool's lock
    /// held: the pidfd is closed, and the child reaped, only once the child's thread has taken it out of the
    /// state, so neither signal can reach another process. `SIGKILL` ends a stopped process too.
    private static func kill(_ target: ProcessPoolStateMachine.KillTarget) {
        ProcessSystem.sendSignal(SIGKILL, to: target.pidDescriptor)
        if let group = target.group {
            ProcessSystem.signalGroup(SIGKILL, group: group)
        }
    }

    /// The child's thread is about to reap the child: kills what is left of its process group (whatever the
    /// child started), while the child's pid still names that group, and from then on nobody signals the group.
    func endGroup(_ serial: Int) {
        self.state.withLock { state in
            if let group = state.beginReap(serial) {
                ProcessSystem.signalGroup(SIGKILL, group: group)
            }
        }
    }

    /// Records why a child failed without killing it (it has exited already).
    func markCause(_ serial: Int, cause: ProcessPoolStateMachine.KillCause) {
        self.state.withLock { _ = $0.markKill(serial, cause: cause) }
    }

    func childDied(_ serial: Int, ending: ProcessPoolStateMachine.Ending) {
        self.supervisor?.metrics.childExited()
        self.update { $0.childDied(serial, ending: ending, now: $1, effects: &$2) }
    }

    private func timeoutExpired(_ timer: ProcessPoolStateMachine.TimeoutTimer) {
        self.state.withLock { state in
            if let target = state.timeoutExpired(timer.serial, callID: timer.callID, seconds: timer.seconds) {
                Self.kill(target)
            }
        }
    }

    // MARK: - Effects

    private func perform(_ effects: ProcessPoolStateMachine.Effects) {
        for timer in effects.cancelTimers {
            self.timers.cancel(timer)
        }
        for timer in effects.timers {
            self.timers.schedule(timer.id, at: timer.deadline) { [self] in
                self.timeoutExpired(timer)
            }
        }
        for connection in effects.wakes {
            connection.wake()
        }
        for connection in effects.spawns {
            self.supervisor?.metrics.childSpawned()
            let started = PoolThread.spawn(name: "atasker-mp-\(connection.serial)") { [self] in
                connection.run(pool: self)
            }
            if !started {
                close(connection.childSocket)
                connection.markClosed()
                self.childDied(connection.serial, ending: .notSpawned("cannot create a thread for the child"))
                connection.closeDescriptors()
            }
        }
        if let supervisor = self.supervisor {
            for (task, time) in effects.started {
                supervisor.checkStartLatency(task, startedAt: time)
            }
        }
        for warning in effects.warnings {
            self.logger.warning("\(warning)")
        }
        for (entry, outcome) in effects.finished {
            self.finish(entry, outcome)
        }
        for waiter in effects.waiters {
            waiter.signal()
        }
    }

    private func finish(_ entry: ProcessTaskEntry, _ outcome: ProcessPoolStateMachine.Outcome) {
        self.finish(task: entry.task, transform: entry.transform, outcome)
    }

    /// Finishes a task: its result or error, its handlers, the supervisor's accounting, then its waiters.
    private func finish(
        task: SupervisorTask,
        transform: (@Sendable (ProcessReply) throws -> (any Sendable)?)?,
        _ outcome: ProcessPoolStateMachine.Outcome
    ) {
        var status = TaskStatus.completed
        var result: (any Sendable)?
        var error: (any Error)?
        switch outcome {
        case .reply(let reply):
            if let transform {
                do {
                    result = try transform(reply)
                } catch let thrown {
                    error = thrown
                }
            } else {
                switch reply {
                case .success(let bytes):
                    result = bytes
                case .failure(let bytes):
                    error = ProcessPoolError.remoteFailure(bytes)
                }
            }
        case .error(let failure):
            error = failure
        case .canceled:
            status = .canceled
            error = TaskError(.canceled, "\(task) was canceled")
        }
        if status == .completed && error != nil {
            status = .failed
        }
        let observers = task.finishRunningHandlers(status: status, result: result, error: error, at: Monotonic.now())
        self.supervisor?.processTaskFinished(task)
        task.release(observers)
    }
}
