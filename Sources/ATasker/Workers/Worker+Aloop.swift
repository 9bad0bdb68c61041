import Logging
import Synchronization

// Workers whose executions run on an `Aloop` (the async workers of the Lua layer).
//
// Such a worker keeps every rule of ``Worker`` (one slot, executions that never overlap, the same lifecycle),
// but its slot's task is a job of the aloop instead of a pool task, its timers are the aloop's, and an
// execution may suspend itself (``suspendExecution()``): the slot stays taken while the execution waits on the
// aloop, and the aloop's other jobs run meanwhile; the execution ends later through its ``WorkerResumption``.
// After each execution the slot's task goes on in a new job, so that a worker that always has work (a plain
// worker, a busy queue) takes turns with the rest of the aloop.

/// Which aloop a worker runs on.
struct AloopBinding: Sendable {
    /// The aloop that runs the executions; `nil` for the pool.
    var bound: Aloop?
    /// The aloop the running worker registered with at its start (``AloopWork``), left when it stops.
    var registered: Aloop?
}

extension Worker {
    /// The aloop that runs this worker's executions, or `nil` when they run on the supervisor's pool.
    package var boundAloop: Aloop? {
        self.aloopBinding.withLock { $0.bound }
    }

    /// Makes the worker's executions run on `aloop` (or on the pool, for `nil`) from its next start.
    ///
    /// - Parameter aloop: The aloop, or `nil`.
    /// - Throws: ``WorkerError`` with ``WorkerError/Code/invalidArgument`` unless the worker is stopped.
    package func bind(to aloop: Aloop?) throws {
        try self.core.withLock { machine in
            guard machine.lifecycle == .stopped else {
                throw WorkerError(
                    .invalidArgument,
                    "\(self.kind.rawValue) worker \"\(machine.name)\": its aloop can change only while it is stopped")
            }
            self.aloopBinding.withLock { $0.bound = aloop }
        }
    }

    /// Whether the calling thread is the thread of the aloop this worker runs on.
    var isOnOwnAloopThread: Bool {
        guard let current = Aloop.current else {
            return false
        }
        return self.aloopBinding.withLock { $0.bound === current }
    }

    // MARK: - Suspending an execution

    /// Suspends the running execution: called by the executor, on the aloop's thread, before it returns, when
    /// the execution goes on later (an async executor that waits). The worker counts and ends the execution
    /// when the returned resumption is finished; until then the slot stays taken and no other execution starts.
    ///
    /// - Returns: The handle that ends the execution, on the aloop's thread.
    package func suspendExecution() -> WorkerResumption {
        let token = self.core.withLock { machine -> Int in
            guard case .running(let token, _) = machine.slot else {
                preconditionFailure("suspendExecution() outside an execution of \(self)")
            }
            return token
        }
        self.executionSuspended = true
        return WorkerResumption(worker: self, token: token)
    }

    /// Ends a suspended execution (see ``WorkerResumption``), on the aloop's thread.
    func resumeExecution(token: Int, _ outcome: Result<Bool, any Error>) {
        precondition(self.executionSuspended, "\(self): no execution is suspended")
        self.executionSuspended = false
        let goOn: Bool
        switch outcome {
        case .success(let value):
            goOn = value
        case .failure(let error):
            self.report(error, during: nil)
            goOn = true
        }
        self.executionCount.store(self.executionCount.load(ordering: .relaxed) + 1, ordering: .relaxed)
        self.metrics.executionEnded()
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        guard self.core.lockedValue.holdsSlot(token: token) else {
            preconditionFailure("\(self): a suspended execution lost its slot")
        }
        self.endExecutionLocked(goOn: goOn, effects: &effects)
        self.driveSlot(token: token, effects: &effects, aloop: self.boundAloop)
    }

    // MARK: - The slot's task on the aloop

    /// Submits the slot's task as a job of `aloop`. When the aloop is stopped the task is lost, and the worker
    /// stops: nothing could run its executions.
    func submitAloopTask(_ submission: WorkerStateMachine.Submission, on aloop: Aloop) {
        let token = submission.token
        // A worker registered with its aloop keeps it running: its jobs are never lost, and need no fallback.
        let registered = self.aloopBinding.withLock { $0.registered != nil }
        var lost: (@Sendable () -> Void)? = nil
        if !registered {
            lost = { [self] in self.aloopTaskLost(token: token) }
        }
        let accepted = aloop.enqueue(run: { [self] in self.runTask(token: token) }, lost: lost)
        if !accepted {
            self.aloopTaskLost(token: token)
        }
    }

    /// Goes on with the slot's task in a new job of the aloop, after the jobs waiting there.
    func yieldSlot(token: Int, on aloop: Aloop) {
        let accepted = aloop.enqueue(
            run: { [self] in self.continueTask(token: token) },
            lost: { [self] in self.aloopSlotLost(token: token) })
        if !accepted {
            self.aloopSlotLost(token: token)
        }
    }

    /// The job that goes on with the slot's task.
    private func continueTask(token: Int) {
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        guard self.core.lockedValue.holdsSlot(token: token) else {
            self.core.unlock()
            return
        }
        self.driveSlot(token: token, effects: &effects, aloop: self.boundAloop)
    }

    /// The slot's task was never run: the aloop ended. The worker stops, dropping what is left.
    private func aloopTaskLost(token: Int) {
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        if self.core.lockedValue.taskLost(token: token) {
            self.requestStopLocked(drain: false, effects: &effects)
            self.core.lockedValue.settleStop(hasDrainWork: false, effects: &effects)
        }
        self.core.unlock()
        self.perform(effects)
    }

    /// The job that would have gone on with a taken slot was never run (the aloop ended under the worker, which
    /// the worker's registration prevents): the slot's task finishes here, stopping the worker.
    private func aloopSlotLost(token: Int) {
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        guard self.core.lockedValue.holdsSlot(token: token) else {
            self.core.unlock()
            return
        }
        self.requestStopLocked(drain: false, effects: &effects)
        self.core.lockedValue.beginFinalizing(&effects)
        self.core.unlock()
        self.perform(effects)
    }

    // MARK: - Timers and registration

    /// Arms the worker's timer: on its aloop, or on the supervisor's timers.
    func armTimer(_ id: TimerID, at deadline: Double) {
        if let aloop = self.boundAloop {
            aloop.schedule(id, at: deadline, run: { [self] in self.timerFired(id) }, lost: nil)
        } else {
            self.supervisor.timers.schedule(id, at: deadline) { [self] in
                self.timerFired(id)
            }
        }
    }

    /// Cancels the worker's timer.
    func cancelTimer(_ id: TimerID) {
        if let aloop = self.boundAloop {
            aloop.cancel(id)
        } else {
            self.supervisor.timers.cancel(id)
        }
    }

    /// A worker that starts on an aloop registers with it, so that the aloop does not end under it; on an aloop
    /// that is stopping or stopped it stops at once, with an error in the log.
    func joinAloop() {
        guard let aloop = self.boundAloop else {
            return
        }
        switch aloop.register(self, whileStopping: false) {
        case .registered:
            self.aloopBinding.withLock { $0.registered = aloop }
        case .stopping, .stopped:
            self.supervisor.logger.error("\(self) cannot start: \(aloop) is not running; it stops")
            self.stop(wait: .none)
        }
    }

    /// A stopped worker leaves the aloop it registered with.
    func leaveAloop() {
        let registered = self.aloopBinding.withLock { binding -> Aloop? in
            defer { binding.registered = nil }
            return binding.registered
        }
        registered?.unregister(self)
    }
}

/// A worker on an aloop is work of that aloop while it runs: a stopping aloop stops it.
extension Worker: AloopWork {
    package func aloopStopping() {
        self.stop(wait: .none)
    }

    package func aloopCancel() {
        // Its suspended execution, if any, registered itself and is cancelled on its own.
    }
}

/// Ends an execution that suspended itself (``Worker/suspendExecution()``). Call exactly one of its methods,
/// once, on the worker's aloop thread.
package final class WorkerResumption: Sendable {
    private let worker: Worker
    private let token: Int

    init(worker: Worker, token: Int) {
        self.worker = worker
        self.token = token
    }

    /// The execution returned: `goOn` is the executor's answer (`false` stops the worker).
    package func finish(goOn: Bool) {
        self.worker.resumeExecution(token: self.token, .success(goOn))
    }

    /// The execution failed with `error`, which is counted and reported as an executor's error is.
    package func fail(_ error: any Error) {
        self.worker.resumeExecution(token: self.token, .failure(error))
    }
}
