public import ATasker
import Synchronization

/// Async Lua code from Swift: the never-yielding watchdog's limits.
extension LuaHost {
    /// Sets how long a Lua coroutine may run on an aloop without yielding (`s.aloop_block_warning` and
    /// `s.aloop_block_cancel` in Lua).
    ///
    /// Past `warning` seconds the coroutine is reported in the log, with its execution's name and the Lua traceback
    /// of where it runs; past `cancel` seconds it is cancelled (it fails with `... cancelled at file:line`).
    ///
    /// - Parameters:
    ///   - warning: Seconds before the report (default 1).
    ///   - cancel: Seconds before the cancel; `nil` (the default) never cancels.
    public func setAloopBlockLimits(warning: Double = 1, cancel: Double? = nil) {
        self.core.asyncState.limits.warningBits.store(max(0.001, warning).bitPattern, ordering: .relaxed)
        self.core.asyncState.limits.cancelBits.store((cancel ?? .infinity).bitPattern, ordering: .relaxed)
    }

    /// ``setAloopBlockLimits(warning:cancel:)`` with `Duration`s (`.milliseconds(200)`); `cancel: nil` never
    /// cancels.
    public func setAloopBlockLimits(warning: Duration, cancel: Duration?) {
        self.setAloopBlockLimits(warning: warning.inSeconds, cancel: cancel.map(\.inSeconds))
    }

    /// The aloop that async Lua code of this host uses when it names none: the supervisor's default aloop, made
    /// (as `default`) if there is none.
    ///
    /// - Throws: ``AloopError`` when it must be made after the supervisor stopped.
    public func defaultAloop() throws -> Aloop {
        guard let aloop = try self.core.supervisor.defaultAloop(creating: true) else {
            throw AloopError(.notFound, "no default aloop")
        }
        return aloop
    }
}
