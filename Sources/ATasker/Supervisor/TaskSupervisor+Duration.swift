/// The supervisor's API with `Duration` times, beside the forms that take `Double` seconds.
extension TaskSupervisor {
    /// ``submit(priority:delay:name:_:)`` with the delay as a `Duration` (`.milliseconds(250)`).
    @discardableResult
    public func submit(
        priority: TaskPriority = .normal,
        delay: Duration,
        name: String? = nil,
        _ body: @escaping @Sendable (SupervisorTask) throws -> (any Sendable)?
    ) -> SupervisorTask {
        self.submit(priority: priority, delay: delay.inSeconds, name: name, body)
    }

    /// ``run(priority:delay:name:_:)`` with the delay as a `Duration`.
    public func run<T: Sendable>(
        priority: TaskPriority = .normal,
        delay: Duration,
        name: String? = nil,
        _ body: @escaping @Sendable () throws -> T
    ) async throws -> T {
        try await self.run(priority: priority, delay: delay.inSeconds, name: name, body)
    }

    /// ``setTimeouts(warning:critical:)`` with `Duration`s; `nil` leaves a value unchanged.
    public func setTimeouts(warning: Duration?, critical: Duration?) {
        self.setTimeouts(warning: warning.map(\.inSeconds), critical: critical.map(\.inSeconds))
    }
}

extension TimerQueue {
    /// ``schedule(after:_:)`` with a `Duration`.
    @discardableResult
    public func schedule(after delay: Duration, _ fire: @escaping @Sendable () -> Void) -> TimerID {
        self.schedule(after: delay.inSeconds, fire)
    }
}
