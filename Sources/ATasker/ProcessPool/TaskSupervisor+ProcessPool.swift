import Synchronization

extension TaskSupervisor {
    /// Sets (or changes) the process pool.
    ///
    /// Children start lazily, when a task needs one, and are kept warm while idle. Calling it again applies
    /// the sizes at once; if ``ProcessPoolConfiguration/executable``, ``ProcessPoolConfiguration/arguments``,
    /// ``ProcessPoolConfiguration/environment`` or ``ProcessPoolConfiguration/hello`` changed, the old
    /// children get no new tasks and are stopped when idle. It also clears a broken state (see
    /// ``ProcessPoolError/broken(cause:)``).
    ///
    /// - Parameter configuration: The pool's settings.
    public func setProcessPool(_ configuration: ProcessPoolConfiguration) {
        var created = false
        let pool = self.processPoolSlot.withLock { slot -> ProcessPool in
            if let pool = slot {
                return pool
            }
            created = true
            let pool = self.makeProcessPool(configuration)
            slot = pool
            return pool
        }
        if !created {
            pool.reconfigure(configuration)
        }
    }

    /// The process pool's configuration, or `nil` if ``setProcessPool(_:)`` was never called (and no
    /// process task was submitted).
    public var processPoolConfiguration: ProcessPoolConfiguration? {
        self.processPoolSlot.withLock { $0 }?.configuration
    }

    /// Runs `call` in a pool child, as a task.
    ///
    /// The task is `queued` until a child takes it and `started` when the call is sent. Its result is
    /// `transform(reply)`; if `transform` throws, the task fails with that error. Without a transform, a
    /// ``ProcessReply/success(_:)`` gives its bytes (`[UInt8]`) and a ``ProcessReply/failure(_:)`` fails the
    /// task with ``ProcessPoolError/remoteFailure(_:)``. A child that dies fails only the task it was
    /// running, with a ``ProcessPoolError`` that names the cause; the tasks queued or pipelined behind it are
    /// not lost.
    ///
    /// If no pool was set, the default ``ProcessPoolConfiguration/init(poolSize:reserveNormal:reserveHigh:)``
    /// is set first: children of the running program, as many as processors (plus the reserves).
    ///
    /// ```swift
    /// let task = supervisor.submitProcess(ProcessCall(payload: Array("ping".utf8)), timeout: 5)
    /// let reply: [UInt8] = try await task.value()
    /// ```
    ///
    /// - Parameters:
    ///   - call: The definitions and payload to send.
    ///   - priority: The task's priority (the pool's reserves apply). Default: ``TaskPriority/normal``.
    ///   - timeout: Seconds from the start of the call in the child; on expiry the child is killed with
    ///     `SIGKILL` (also when it is stopped by `SIGSTOP`) and the task fails with
    ///     ``ProcessPoolError/timedOut(pid:seconds:)``. `nil`: no limit.
    ///   - name: A name for logs and ``info()``.
    ///   - transform: Turns the reply into the task's result, on the parent thread that serves the child.
    /// - Returns: The task. After a stop it is returned already `failed` with ``ProcessPoolError/stopped``;
    ///   while the pool is broken, with ``ProcessPoolError/broken(cause:)``.
    @discardableResult
    public func submitProcess(
        _ call: ProcessCall,
        priority: TaskPriority = .normal,
        timeout: Double? = nil,
        name: String? = nil,
        transform: (@Sendable (ProcessReply) throws -> (any Sendable)?)? = nil
    ) -> SupervisorTask {
        let now = Monotonic.now()
        let task = SupervisorTask(
            priority: priority, name: name, supervisor: self, status: .queued, queuedAt: now,
            metrics: self.metrics.tasks(.process, priority))
        guard call.size <= ProcessCall.maximumSize else {
            let error = ProcessPoolError.callTooLarge(bytes: call.size, limit: ProcessCall.maximumSize)
            task.finish(status: .failed, result: nil, error: error, at: now)
            return task
        }
        guard self.state.withLock({ $0.submitProcessTask(task) }) else {
            task.finish(status: .failed, result: nil, error: ProcessPoolError.stopped, at: now)
            return task
        }
        let pool = self.processPoolSlot.withLock { slot -> ProcessPool in
            if let pool = slot {
                return pool
            }
            let pool = self.makeProcessPool(ProcessPoolConfiguration())
            slot = pool
            return pool
        }
        pool.submit(ProcessTaskEntry(task: task, call: call, timeout: timeout, transform: transform))
        return task
    }

    /// Creates the pool; the caller holds `processPoolSlot`'s lock (the supervisor's lock is taken inside it,
    /// never the other way round).
    private func makeProcessPool(_ configuration: ProcessPoolConfiguration) -> ProcessPool {
        let dispatching = self.state.withLock { $0.lifecycle != .initial }
        return ProcessPool(configuration: configuration, supervisor: self, dispatching: dispatching)
    }

    /// A process task has finished: it no longer counts for idleness, stop and ``info()``.
    func processTaskFinished(_ task: SupervisorTask) {
        var effects = SupervisorStateMachine.Effects()
        self.state.withLock { $0.processTaskFinished(task, effects: &effects) }
        if !effects.isEmpty {
            self.perform(effects)
        }
    }

    /// The process pool's snapshot for ``info()``, `nil` when there is no pool.
    func processPoolInfo() -> ProcessPoolInfo? {
        self.processPoolSlot.withLock { $0 }?.info()
    }
}
