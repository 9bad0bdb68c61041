import ATasker

/// Cancelling the Lua code of a host that still runs when a program stops.
extension LuaHost {
    /// Cancels every Lua execution of this host that runs now on a pool thread.
    ///
    /// Each one fails with `worker 'w' cancelled at file:line` (or `task N cancelled at ...`) as soon as its thread
    /// runs Lua again: the request reaches the thread as a signal, whose handler only arms a hook. Code inside one
    /// long C call (`os.execute`, a blocking read) or a `__gc` finalizer is not reached until it is back in Lua; see
    /// ``runningCode()`` to name it.
    ///
    /// - Returns: How many executions were asked to cancel.
    @discardableResult
    public func cancelRunningCode() -> Int {
        self.core.cancelRunning()
    }

    /// The Lua executions of this host that run now, each named with the place last known:
    /// `worker 'w' at script.lua:12`, `task 7 at script.lua:30`.
    ///
    /// After ``cancelRunningCode()`` and a short wait, what is left is stuck in one long C call or a finalizer.
    public func runningCode() -> [String] {
        self.core.runningReports()
    }
}

extension HostCore: CodeCanceller {
    func cancelRunningCode() -> Int { self.cancelRunning() }
    func runningCode() -> [String] { self.runningReports() }
}
