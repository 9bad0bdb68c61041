import Logging
import Synchronization

extension Worker {
    // MARK: - Starting

    /// Starts the worker; `configure` applies a kind's start overrides, with `core` locked, when the
    /// worker is not running. `calledAt` is when the caller's start call began (its schedule counts from
    /// then); `nil` for now.
    func start(
        name: String?, priority: TaskPriority?, calledAt: Double? = nil, configure: (() -> Void)?
    ) throws -> Bool {
        guard !self.supervisor.isStopped else {
            throw WorkerError(
                .supervisorStopped,
                "cannot start \(self): its supervisor was stopped; create a new supervisor"
            )
        }
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        defer {
            self.core.unlock()
            self.perform(effects)
        }
        if self.core.lockedValue.lifecycle != .running {
            if let name {
                let current = self.core.lockedValue.name
                try self.supervisor.workerRegistry.rename(id: self.registrationID, from: current, to: name)
                self.core.lockedValue.name = name
            }
            if let priority {
                self.core.lockedValue.priority = priority
            }
            configure?()
        }
        switch self.core.lockedValue.start(self, effects: &effects) {
        case .started:
            let now = Monotonic.now()
            self.kindDidStart(now: calledAt.map { min($0, now) } ?? now, effects: &effects)
            return true
        case .restartPending:
            return true
        case .alreadyRunning:
            return false
        }
    }

    // MARK: - Waking

    /// Claims the slot if the worker is running and has no task: kinds call it, with `core` locked,
    /// when work arrives.
    func wakeLocked(_ effects: inout WorkerStateMachine.Effects) {
        if self.core.lockedValue.lifecycle == .running {
            self.core.lockedValue.claimSlot(&effects)
        }
    }

    /// The worker's timer fired (on the thread that serves the supervisor's timers): submit a task unless
    /// one is there.
    ///
    /// An interval worker's next tick is armed here, while the timers are being served: armed by the
    /// execution's end, it would wake the timer queue's thread, asleep by then with nothing to wait for,
    /// once more per tick. An execution that ends in time finds its timer armed for the same deadline and
    /// keeps it; one that overran re-arms it.
    func timerFired(_ id: TimerID) {
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        if self.core.lockedValue.timerFired(id) {
            self.wakeLocked(&effects)
            if effects.submit != nil, self.boundAloop == nil, let next = self.kindDeadlineAfterDue {
                self.core.lockedValue.arm(next, effects: &effects)
            }
        }
        self.core.unlock()
        self.perform(effects)
    }

    // MARK: - Stopping

    /// Requests a stop with `core` locked: lets the kind drop or set aside its items, then finishes an
    /// idle worker on the calling thread (through `effects.finalize`).
    func requestStopLocked(drain: Bool, effects: inout WorkerStateMachine.Effects) {
        let before = self.core.lockedValue.lifecycle
        guard self.core.lockedValue.requestStop(drain: drain, effects: &effects) else {
            return
        }
        let after = self.core.lockedValue.lifecycle
        let draining = after == .stopping(drain: true)
        if !draining, let execution = self.asyncExecution {
            // A stop without drain cancels the running async execution (a draining one lets it run).
            effects.cancelExecution = execution
        }
        if before == .running || (before == .stopping(drain: true) && !draining) {
            self.kindStopRequested(drain: draining, wasDraining: before != .running)
        }
        self.core.lockedValue.settleStop(hasDrainWork: draining && self.kindHasDrainWork, effects: &effects)
    }

    /// Runs `onStop` if owed, then marks the worker stopped (or restarts it), releases the activity
    /// and wakes the threads waiting in ``stop(wait:drain:)``. The calling thread holds the slot.
    func finalize(callOnStop: Bool) {
        if callOnStop, let onStop = self.hooks.onStop {
            onStop(self)
        }
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        let finish = self.core.lockedValue.finishStop()
        if finish.restarted {
            self.kindDidStart(now: Monotonic.now(), effects: &effects)
        }
        self.core.unlock()
        if finish.releaseActivity {
            self.leaveAloop()
            self.supervisor.releaseActivity()
        }
        for waiter in finish.waiters {
            waiter.signal()
        }
        self.perform(effects)
        // `finish.keepAlive`, the worker's reference to itself, is released here, after the lock.
        withExtendedLifetime(finish) {}
    }

    // MARK: - The worker's task

    /// Submits the pool task that will hold the worker's slot.
    func submitTask(_ submission: WorkerStateMachine.Submission) {
        if let aloop = self.aloopBinding.withLock({ $0.bound }) {
            self.submitAloopTask(submission, on: aloop)
            return
        }
        let token = submission.token
        let task = self.supervisor.submit(priority: submission.priority, name: submission.name) { [self] _ in
            self.runTask(token: token)
            return nil
        }
        // The body never throws, so a task that did not complete never ran it: the supervisor refused
        // it (stopped) or someone cancelled it before it started.
        task.onFinish { [self] finished in
            if finished.status != .completed {
                self.taskLost(token: token)
            }
        }
        self.core.withLock { $0.attach(task, token: token) }
    }

    /// The task for `token` will never run.
    func taskLost(token: Int) {
        let supervisorStopped = self.supervisor.isStopped
        var effects = WorkerStateMachine.Effects()
        self.core.lock()
        if self.core.lockedValue.taskLost(token: token) {
            if supervisorStopped {
                // Nothing can run any more: stop, dropping what is left.
                self.requestStopLocked(drain: false, effects: &effects)
            }
            switch self.core.lockedValue.lifecycle {
            case .running:
                // Cancelled by someone else: the work is still due, so ask again.
                self.core.lockedValue.claimSlot(&effects)
            case .stopping(let drain):
                self.core.lockedValue.settleStop(hasDrainWork: drain && self.kindHasDrainWork, effects: &effects)
            case .stopped:
                break
            }
        }
        self.core.unlock()
        self.perform(effects)
    }

    /// The body of the worker's pool task: `onStart` if due, then executions while the kind has work,
    /// then either give the slot up (running) or finish the stop (stopping).
    func runTask(token: Int) {
        let core = self.core
        var effects = WorkerStateMachine.Effects()
        core.lock()
        guard core.lockedValue.beginTask(token: token) else {
            core.unlock()
            return
        }
        if core.lockedValue.takeStartHook() {
            core.unlock()
            let started = self.runStartHook()
            core.lock()
            if !started {
                core.lockedValue.startHookFailed()
                self.requestStopLocked(drain: false, effects: &effects)
            }
        }
        self.driveSlot(token: token, effects: &effects, aloop: self.aloopBinding.withLock { $0.bound })
    }

    /// The loop of the slot's task, entered with `core` locked: executions while the kind has work, then either
    /// give the slot up (running) or finish the stop (stopping). Returns with `core` unlocked and the effects
    /// performed.
    ///
    /// On an aloop the task returns after each execution and goes on in a job of its own, so that the other jobs
    /// of the aloop get their turn; and an execution that suspends itself keeps the slot until
    /// ``resumeExecution(token:_:)`` ends it.
    func driveSlot(token: Int, effects: inout WorkerStateMachine.Effects, aloop: Aloop?) {
        let core = self.core
        var step: Step
        if self.stepTaken {
            self.stepTaken = false
            step = .execute
        } else {
            step = self.nextStepLocked()
        }
        while true {
            switch step {
            case .execute:
                core.lockedValue.isExecuting = true
                core.unlock()
                let goOn = self.kindExecute()
                if self.executionSuspended {
                    self.perform(effects)
                    self.launchPendingExecution()
                    return
                }
                core.lock()
                self.endExecutionLocked(goOn: goOn, effects: &effects)
                step = self.nextStepLocked()
                if let aloop, case .execute = step {
                    // The next execution is taken: it runs in a job of its own, after the aloop's other jobs.
                    self.stepTaken = true
                    core.unlock()
                    self.perform(effects)
                    self.yieldSlot(token: token, on: aloop)
                    return
                }
            case .idle(let deadline):
                if core.lockedValue.lifecycle == .running {
                    core.lockedValue.releaseSlot(deadline: deadline, effects: &effects)
                } else {
                    core.lockedValue.beginFinalizing(&effects)
                }
                core.unlock()
                self.perform(effects)
                return
            }
        }
    }

    /// What the slot's task does next, with `core` locked (an execution is taken, if due).
    func nextStepLocked() -> Step {
        // Only an interval worker reads the clock in its kind hooks: the others are spared a call per step.
        let now = self.kind == .interval ? Monotonic.now() : 0
        switch self.core.lockedValue.lifecycle {
        case .running:
            return self.kindNextStep(now: now, draining: false)
        case .stopping(let drain):
            return drain ? self.kindNextStep(now: now, draining: true) : .idle(deadline: nil)
        case .stopped:
            preconditionFailure("\(self.core.lockedValue.name): a task runs while the worker is stopped")
        }
    }

    /// Runs ``Hooks/onStart``; returns `false` if it threw (the error is reported).
    private func runStartHook() -> Bool {
        guard let onStart = self.hooks.onStart else {
            return true
        }
        do {
            try onStart(self)
            return true
        } catch {
            self.report(error, during: "onStart")
            return false
        }
    }

    // MARK: - Executions

    /// Runs one execution of the executor: counts it, and reports an error it throws (the worker
    /// goes on). Returns the executor's answer: `false` stops the worker.
    @inline(__always)
    func invoke(_ body: () throws -> Bool) -> Bool {
        let goOn: Bool
        do {
            goOn = try body()
        } catch {
            self.report(error, during: nil)
            goOn = true
        }
        if self.executionSuspended {
            return true  // counted when it ends
        }
        // Only the slot's task writes the counter, so a plain load and store is enough.
        self.executionCount.store(self.executionCount.load(ordering: .relaxed) + 1, ordering: .relaxed)
        self.metrics.executionEnded()
        return goOn
    }

    /// `count` executions ran in one call of a batch executor: counted as ``invoke(_:)`` counts each, with the
    /// errors of those that failed reported in order.
    func countExecutions(_ count: Int, errors: [any Error]) {
        for error in errors {
            self.report(error, during: nil)
        }
        self.executionCount.store(self.executionCount.load(ordering: .relaxed) + count, ordering: .relaxed)
        for _ in 0..<count {
            self.metrics.executionEnded()
        }
    }

    /// An execution has ended, with `core` locked: the kind's bookkeeping, and a stop if the executor said so.
    func endExecutionLocked(goOn: Bool, effects: inout WorkerStateMachine.Effects) {
        self.core.lockedValue.isExecuting = false
        self.kindExecutionEnded(now: self.kind == .interval ? Monotonic.now() : 0)
        if !goOn {
            self.requestStopLocked(drain: false, effects: &effects)
        }
    }

    /// Counts an error and hands it to `onError`, or logs it.
    func report(_ error: any Error, during phase: String?) {
        self.errorCount.wrappingAdd(1, ordering: .relaxed)
        self.metrics.executionFailed()
        if let onError = self.hooks.onError {
            onError(self, error)
            return
        }
        let place = phase.map { " in \($0)" } ?? ""
        self.supervisor.logger.error("\(self)\(place): \(error)")
    }

    // MARK: - Effects

    /// Performs what a state change decided, with `core` released.
    func perform(_ effects: WorkerStateMachine.Effects) {
        if effects.retainActivity {
            self.supervisor.retainActivity()
            self.joinAloop()
        }
        if let id = effects.cancelTimer {
            self.cancelTimer(id)
        }
        if let timer = effects.armTimer {
            self.armTimer(timer.id, at: timer.deadline)
        }
        if effects.wakePutters {
            self.wakeAllPutters()
        }
        if let execution = effects.cancelExecution {
            execution.cancel()
        }
        if let task = effects.cancelTask {
            // A successful cancel finishes the task here, and its handler finishes the stop.
            task.cancel()
        }
        if let submission = effects.submit {
            self.submitTask(submission)
        }
        if effects.finalize {
            self.finalize(callOnStop: effects.callOnStop)
        }
    }
}
