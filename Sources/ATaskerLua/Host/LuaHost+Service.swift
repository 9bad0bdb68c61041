import ATasker
public import ServiceLifecycle

extension LuaHost: Service {
    /// Runs the host as a service of a `ServiceGroup`, beside or instead of its supervisor.
    ///
    /// It starts the supervisor, waits for graceful shutdown (or a cancellation, or a stop request), then runs the
    /// supervisor's stop policy, ``ATasker/TaskSupervisor/shutdown(timeout:cancelTasks:)``: running Lua code may
    /// finish within the supervisor's `stopTimeout`, then it is cancelled; code stuck in one long C call is named in
    /// the log. Then the host closes its main state and `run()` returns. It never waits longer than about the stop
    /// timeout plus ``ATasker/TaskSupervisor/cancelGrace``.
    ///
    /// ```swift
    /// let host = LuaHost(supervisor: supervisor, logger: logger)
    /// try host.register("double") { args in .integer((args.first?.intValue ?? 0) * 2) }
    /// try await host.run(file: "workers.lua")
    /// let group = ServiceGroup(services: [host], gracefulShutdownSignals: [.sigterm], logger: logger)
    /// try await group.run()
    /// ```
    public func run() async throws {
        self.supervisor.start()
        await self.supervisor.untilStopRequested()
        await self.supervisor.shutdown(cancelTasks: true)
        self.close()
    }
}
