public import ServiceLifecycle

extension TaskSupervisor: Service {
    /// Runs the supervisor as a service: starts it, then waits until it is asked to stop.
    ///
    /// At graceful shutdown, when the surrounding task is cancelled, or when a ``stop(wait:cancelTasks:)`` call
    /// asked for a stop, it runs the library's stop policy, ``shutdown(timeout:cancelTasks:)``: running work may
    /// finish within ``Configuration/stopTimeout``, then the code that still runs is cancelled, what cannot be is
    /// named in the log, and `run()` returns. A cancellation during that (a service group's
    /// `maximumGracefulShutdownDuration`) cancels the running code at once. So `run()` always returns, within about
    /// the stop timeout plus ``cancelGrace``.
    ///
    /// ```swift
    /// let group = ServiceGroup(services: [supervisor], logger: logger)
    /// try await group.run()
    /// ```
    public func run() async throws {
        self.start()
        await self.untilStopRequested()
        await self.shutdown(cancelTasks: true)
    }

    /// Suspends until graceful shutdown, a cancellation of the calling task, or a stop request; the first two
    /// request the stop.
    package func untilStopRequested() async {
        await withTaskCancellationHandler {
            await withGracefulShutdownHandler {
                await self.waitForStopRequest()
            } onGracefulShutdown: {
                _ = self.stopBlocking(wait: .none, cancelTasks: false)
            }
        } onCancel: {
            _ = self.stopBlocking(wait: .none, cancelTasks: false)
        }
    }
}
