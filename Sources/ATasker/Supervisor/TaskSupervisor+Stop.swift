import Glibc
import Synchronization

extension TaskSupervisor {
    /// Stops the supervisor, blocking the calling thread while it waits.
    ///
    /// The supervisor's workers are stopped first, without waiting (see ``stopWorkers(wait:drain:)``):
    /// their running executions finish as the other running tasks do. Its aloops are stopped too (see
    /// ``Aloop/stop(wait:cancelTasks:)``), and waited for within `wait` after the pool's work.
    ///
    /// From this call on, a submitted task is returned already `failed` with
    /// ``TaskError/Code/supervisorStopped``. Delayed tasks are cancelled (a stop never waits out a
    /// delay); with `cancelTasks`, queued tasks are too, otherwise they still run. Running tasks are
    /// never interrupted. The call then waits, up to `wait`, until nothing is queued, delayed or
    /// running. Pool threads exit when the queue is empty; the timers stop when all work has.
    ///
    /// Process tasks (``submitProcess(_:priority:timeout:name:transform:)``) are handled the same way.
    /// After the wait, the process pool's children are asked to stop, are killed with `SIGKILL` after
    /// ``ProcessPoolConfiguration/stopTimeout``, and are all reaped before the call returns (with
    /// ``StopWait/none``, this happens in the background once the last process task has finished).
    ///
    /// - Parameters:
    ///   - wait: How long to wait for the work left. Default: ``StopWait/forever``.
    ///   - cancelTasks: Whether to cancel queued tasks too. Default: `false`.
    /// - Returns: The tasks still running when the wait ended (empty when all finished), in id order,
    ///   so that the caller can name them.
    /// - Important: Do not call it with a wait from a pool thread: it would wait for its own task.
    @discardableResult
    public func stop(wait: StopWait = .forever, cancelTasks: Bool = false) -> [SupervisorTask] {
        self.stopBlocking(wait: wait, cancelTasks: cancelTasks)
    }

    /// The blocking stop, under a name that async code can call unambiguously.
    func stopBlocking(wait: StopWait, cancelTasks: Bool) -> [SupervisorTask] {
        let deadline = wait.deadline(from: Monotonic.now())
        self.stopWorkers(wait: .none)
        // Aloops are asked now and waited for after the pool: their work may wait for pool tasks. Their work
        // under way is running work (it finishes, and is cancelled at the deadline), not a queued task.
        self.stopAloops(until: nil, cancelTasks: false, waiting: false)
        var effects = SupervisorStateMachine.Effects()
        let waiter = Waiter()
        let mustWait = self.state.withLock { state -> Bool in
            _ = state.requestStop(cancelTasks: cancelTasks, effects: &effects)
            if case .none = wait {
                return false
            }
            return state.addDrainWaiter(waiter)
        }
        self.perform(effects)
        // Process tasks stop as thread tasks do: queued ones are cancelled or still run, running ones finish.
        let processPool = self.processPoolSlot.withLock { $0 }
        processPool?.supervisorStopping(cancelTasks: cancelTasks)
        if mustWait {
            _ = waiter.wait(until: deadline)
        }
        if case .none = wait {
        } else {
            self.stopAloops(until: deadline, cancelTasks: false, waiting: true)
        }
        var finished = SupervisorStateMachine.Effects()
        let running = self.state.withLock { state -> [SupervisorTask] in
            if case .none = wait {
            } else {
                state.markStopFinished(&finished)
            }
            return state.runningTasks
        }
        self.perform(finished)
        if case .none = wait {
            // The pool stops its children by itself once its last task has finished.
        } else {
            // Then the children: asked to stop, killed after the pool's stop timeout, all reaped.
            processPool?.shutdown(wait: true)
        }
        return running
    }

    /// Stops the supervisor without blocking a thread of Swift concurrency.
    ///
    /// The blocking part of ``stop(wait:cancelTasks:)`` runs on a thread of its own.
    ///
    /// - Parameters:
    ///   - wait: How long to wait for the work left.
    ///   - cancelTasks: Whether to cancel tasks that have not started.
    /// - Returns: The tasks still running when the wait ended.
    @discardableResult
    public func stop(wait: StopWait = .forever, cancelTasks: Bool = false) async -> [SupervisorTask] {
        if case .none = wait {
            return self.stopBlocking(wait: .none, cancelTasks: cancelTasks)
        }
        return await withCheckedContinuation { (continuation: CheckedContinuation<[SupervisorTask], Never>) in
            let started = PoolThread.spawn(name: "atasker-stop") { [self] in
                continuation.resume(returning: self.stopBlocking(wait: wait, cancelTasks: cancelTasks))
            }
            if !started {
                // No thread available: stop without waiting rather than block the caller's thread.
                continuation.resume(returning: self.stopBlocking(wait: .none, cancelTasks: cancelTasks))
            }
        }
    }

    /// Blocks the calling thread until a stop is requested (atasker's `block`).
    public func block() {
        let waiter = Waiter()
        if self.state.withLock({ $0.addStopRequestWaiter(waiter) }) {
            _ = waiter.wait(until: nil)
        }
    }

    /// Suspends until a stop is requested.
    func waitForStopRequest() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if !self.state.withLock({ $0.addStopRequestContinuation(continuation) }) {
                continuation.resume()
            }
        }
    }

    /// Suspends until a stop has finished: the work drained, or a waiting `stop` call returned.
    func waitForStopFinished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if !self.state.withLock({ $0.addStopFinishedContinuation(continuation) }) {
                continuation.resume()
            }
        }
    }
}
