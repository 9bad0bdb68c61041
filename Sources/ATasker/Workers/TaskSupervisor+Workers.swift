extension TaskSupervisor {
    /// The supervisor's workers that are still referenced (by their creator, or by themselves while
    /// they run), in creation order.
    public var workers: [Worker] {
        self.workerRegistry.workers
    }

    /// The worker with this name, if it is still referenced.
    ///
    /// - Parameter name: A worker's ``Worker/name``.
    /// - Returns: The worker, or `nil`.
    public func worker(named name: String) -> Worker? {
        self.workerRegistry.worker(named: name)
    }

    /// Stops every worker of the supervisor (atasker's `stop_schedulers`).
    ///
    /// The workers are asked to stop first, all at once, and then waited for, so the running
    /// executions finish in parallel. ``stop(wait:cancelTasks:)`` calls this without waiting.
    ///
    /// - Parameters:
    ///   - wait: How long to wait for all of them. Default: ``StopWait/forever``.
    ///   - drain: Whether queue workers run the items left first. Default: `false`.
    /// - Returns: `true` if every worker is stopped when the call returns.
    @discardableResult
    public func stopWorkers(wait: StopWait = .forever, drain: Bool = false) -> Bool {
        let workers = self.workerRegistry.workers
        for worker in workers {
            worker.stop(wait: .none, drain: drain)
        }
        let deadline = wait.deadline(from: Monotonic.now())
        var allStopped = true
        for worker in workers {
            let left: StopWait
            if let deadline {
                left = .seconds(max(0, deadline - Monotonic.now()))
            } else {
                left = .forever
            }
            if case .none = wait {
                allStopped = allStopped && worker.isStopped
            } else {
                allStopped = worker.stop(wait: left, drain: drain) && allStopped
            }
        }
        return allStopped
    }
}
