import Logging
import Synchronization

extension TaskSupervisor {
    /// The loop of one pool thread.
    ///
    /// One lock acquisition covers "count the finished task as done and take the next one", so a
    /// thread with queued work goes from task to task without sleeping and without a wake-up per
    /// task. The lock is never held while a task body, a handler or a waiter runs.
    func poolThreadMain() {
        let lock = self.state
        var event = SupervisorStateMachine.ThreadEvent.spawned
        // The task that this thread finished last, and its waiters: released (the waiters woken) once the
        // supervisor no longer counts it.
        var finished: (task: SupervisorTask, waiters: [SupervisorTask.Observer])?
        lock.lock()
        while true {
            var effects = SupervisorStateMachine.Effects()
            let step = lock.lockedValue.threadStep(event, effects: &effects)
            switch step {
            case .run(let entry):
                lock.unlock()
                if !effects.isEmpty {
                    self.perform(effects)
                }
                finished.map { $0.task.release($0.waiters) }
                finished = (entry.task, self.execute(entry))
                event = .finished(entry.task)
                lock.lock()
            case .wait(let timeout):
                if let last = finished, last.waiters.isEmpty {
                    // Nobody waited for it: mark it released here, without letting go of the lock (a
                    // waiter that came meanwhile is woken by it, after the supervisor's count).
                    last.task.release([])
                    finished = nil
                }
                if !effects.isEmpty || finished != nil {
                    // We are already counted as idle, and a submitter may have signalled us while the
                    // lock was released: look again as if woken, so that no wake-up is lost.
                    lock.unlock()
                    self.perform(effects)
                    finished.map { $0.task.release($0.waiters) }
                    finished = nil
                    lock.lock()
                    event = .woke(timedOut: false)
                    continue
                }
                if let timeout {
                    let woke = lock.wait(until: Monotonic.now() + timeout)
                    event = .woke(timedOut: !woke)
                } else {
                    lock.wait()
                    event = .woke(timedOut: false)
                }
            case .lead(let timeout):
                // This thread serves the timers: it sleeps until the earliest deadline, runs the due
                // timers, and then (as a woken idle thread) the tasks they submitted, on this thread.
                lock.unlock()
                self.perform(effects)
                finished.map { $0.task.release($0.waiters) }
                finished = nil
                var served = self.timers.serve(until: timeout.map { Monotonic.now() + $0 })
                // With timers close together this thread stays the server: it fires them, and the tasks
                // they submit go to other threads.
                while case .fired(let due, staying: true) = served {
                    for fire in due {
                        fire()
                    }
                    served = self.timers.serve(until: timeout.map { Monotonic.now() + $0 })
                }
                lock.lock()
                var available = true
                var timedOut = false
                switch served {
                case .fired: break
                case .interrupted: break
                case .idleTimeout: timedOut = true
                case .unavailable: available = false
                }
                lock.lockedValue.leaderReturned(timersAvailable: available)
                if case .fired(let due, _) = served {
                    lock.unlock()
                    for fire in due {
                        fire()
                    }
                    lock.lock()
                }
                event = .woke(timedOut: timedOut)
            case .exit:
                lock.unlock()
                self.perform(effects)
                finished.map { $0.task.release($0.waiters) }
                return
            }
        }
    }

    /// Runs one task's body and finishes the task (its handlers run here, on the pool thread).
    @inline(__always)
    private func execute(_ entry: TaskQueue.Entry) -> [SupervisorTask.Observer] {
        let task = entry.task
        let started = Monotonic.now()
        task.setTimeStarted(started)
        self.checkStartLatency(task, startedAt: started)
        let result: (any Sendable)?
        let error: (any Error)?
        do {
            result = try entry.body(task)
            error = nil
        } catch let thrown {
            result = nil
            error = thrown
        }
        return task.finishRunningHandlers(
            status: error == nil ? .completed : .failed, result: result, error: error, at: Monotonic.now())
    }

    /// A delayed task's timer fired (on the thread that serves the timers).
    func delayElapsed(_ entry: TaskQueue.Entry) {
        var effects = SupervisorStateMachine.Effects()
        let now = Monotonic.now()
        self.state.withLock { $0.delayElapsed(entry, now: now, effects: &effects) }
        self.perform(effects)
    }

    /// Performs the side effects of a state change, with the lock released.
    func perform(_ effects: SupervisorStateMachine.Effects) {
        for _ in 0..<effects.signals {
            self.state.signal()
        }
        if effects.broadcast {
            self.state.broadcast()
        }
        for number in effects.spawnNumbers {
            // Pool threads keep time too: the one that serves the timers sleeps until the next deadline.
            let started = PoolThread.spawn(name: "atasker-pool-\(number)", keepsTime: true) { [self] in
                self.poolThreadMain()
            }
            if started {
                self.spawnFailures.store(0, ordering: .relaxed)
            } else {
                let failures = self.spawnFailures.wrappingAdd(1, ordering: .relaxed).newValue
                let text =
                    "cannot create pool thread atasker-pool-\(number): the system refuses more threads; lower "
                    + "the pool's min_size / max_size (the task waits for a thread that exists)"
                if failures == 1 {
                    self.logger.error("\(text)")
                } else {
                    self.logger.debug("\(text) (failure \(failures) in a row)")
                }
                var more = SupervisorStateMachine.Effects()
                self.state.withLock { $0.spawnFailed(&more) }
                self.perform(more)
            }
        }
        for timer in effects.cancelTimers {
            self.timers.cancel(timer)
        }
        for delay in effects.delayTimers {
            let entry = delay.entry
            self.timers.schedule(delay.id, at: delay.deadline) { [self] in
                self.delayElapsed(entry)
            }
        }
        if let id = effects.wakeTimer {
            self.timers.schedule(id, at: Monotonic.now() + SupervisorStateMachine.wakeDelay) { [self] in
                var more = SupervisorStateMachine.Effects()
                self.state.withLock { $0.wakeTimerFired(id, effects: &more) }
                self.perform(more)
            }
        }
        if let (id, deadline) = effects.latencyTimer {
            self.timers.schedule(id, at: deadline) { [self] in
                self.latencyTimerFired(id)
            }
        }
        if !effects.canceled.isEmpty {
            let now = Monotonic.now()
            for task in effects.canceled {
                task.finish(
                    status: .canceled, result: nil, error: TaskError(.canceled, "\(task) was canceled"), at: now)
            }
            var more = SupervisorStateMachine.Effects()
            self.state.withLock { $0.canceledFinished(effects.canceled.count, effects: &more) }
            self.perform(more)
        }
        for report in effects.reports {
            self.report(report)
        }
        for waiter in effects.waiters {
            waiter.signal()
        }
        for continuation in effects.continuations {
            continuation.resume()
        }
        if effects.interruptLeader {
            self.timers.interruptServer()
        }
        if effects.shutdownTimers {
            self.timers.shutdown()
        }
    }
}
