extension TaskSupervisor {
    /// Counts one more activity that keeps the supervisor from being idle (for example a running
    /// worker), until the matching ``releaseActivity()``.
    public func retainActivity() {
        self.state.withLock { $0.retainActivity() }
    }

    /// Ends an activity counted by ``retainActivity()``.
    ///
    /// - Important: Each call must match one earlier ``retainActivity()``.
    public func releaseActivity() {
        var effects = SupervisorStateMachine.Effects()
        self.state.withLock { $0.releaseActivity(&effects) }
        self.perform(effects)
    }

    /// Whether nothing is delayed, queued or running and no activity is retained.
    public var isIdle: Bool {
        self.state.withLock { $0.isIdle }
    }

    /// Blocks the calling thread until the supervisor is idle (see ``isIdle``) or a stop is requested.
    ///
    /// A task's ``SupervisorTask/onFinish(_:)`` handlers run before the task counts as done, so a
    /// task submitted from such a handler keeps this call waiting.
    public func waitUntilIdle() {
        let waiter = Waiter()
        if self.state.withLock({ $0.addIdleWaiter(waiter) }) {
            _ = waiter.wait(until: nil)
        }
    }

    /// Suspends until the supervisor is idle (see ``isIdle``) or a stop is requested.
    public func waitUntilIdle() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            if !self.state.withLock({ $0.addIdleContinuation(continuation) }) {
                continuation.resume()
            }
        }
    }
}
