public import ServiceLifecycle

extension TaskSupervisor: Service {
    /// Runs the supervisor as a service: starts it, then waits until it is stopped.
    ///
    /// On graceful shutdown (or when the surrounding task is cancelled) it requests a stop without
    /// cancelling tasks, then returns once the work has drained or once a ``stop(wait:cancelTasks:)``
    /// call that waited (for example with a deadline) has returned.
    ///
    /// ```swift
    /// let group = ServiceGroup(services: [supervisor], logger: logger)
    /// try await group.run()
    /// ```
    public func run() async throws {
        self.start()
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await self.waitForStopRequest()
            } onGracefulShutdown: {
                _ = self.stopBlocking(wait: .none, cancelTasks: false)
            }
        } onCancel: {
            _ = self.stopBlocking(wait: .none, cancelTasks: false)
        }
        await self.waitForStopFinished()
    }
}
