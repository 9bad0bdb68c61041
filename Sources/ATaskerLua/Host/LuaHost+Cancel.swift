import ATasker
internal import CLuaShim

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

/// One Lua execution that runs now, with its traceback: what ``LuaHost/executionReports(within:)`` gives (and what
/// `atasker-lua` prints on SIGUSR1).
public struct LuaExecutionReport: Sendable, Equatable {
    /// What runs: `worker 'w'`, `task 7`, an async worker's or aloop task's step.
    public var label: String
    /// The execution's id (each run of a worker, each task run and each async step has its own).
    public var id: UInt64
    /// How long it has run (to a few milliseconds).
    public var runningFor: Duration
    /// The last place known, `file:line`.
    public var place: String
    /// Its Lua traceback, taken by its own thread; `nil` when that thread did not answer in time: it runs one long
    /// C call or a `__gc` finalizer, where Lua code cannot be reached.
    public var traceback: String?

    /// The report as the operator reads it: a head line, then the traceback.
    public var description: String {
        let ms = Int((self.runningFor.inSeconds * 1000).rounded())
        let head = "\(self.label) (execution \(self.id)) has run \(ms) ms, at \(self.place)"
        guard let traceback = self.traceback else {
            return head + ": in one long C call or a __gc finalizer, where no traceback can be taken"
        }
        return head + "\n" + traceback
    }
}

extension LuaHost {
    /// Every Lua execution of this host that runs now, each with its traceback, in the order they began. Each
    /// execution's own thread takes its traceback (the hook of "Cancelling running Lua code", armed without a
    /// cancel): the call waits up to `timeout` in all for them, and an execution whose thread has not answered by
    /// then (one long C call, a `__gc` finalizer) is reported with its last place only. The executions go on.
    public func executionReports(within timeout: Duration = .milliseconds(80)) -> [LuaExecutionReport] {
        self.core.executionReports(within: max(0, timeout.inSeconds))
    }
}

extension HostCore {
    func executionReports(within seconds: Double) -> [LuaExecutionReport] {
        let current = LuaState.currentExecution
        // Announced but not begun (no label yet): nothing runs there to report.
        let running = LuaState.runningExecutions(host: self).filter { !$0.label.isEmpty && $0.id != current }
        var asked: [(id: UInt64, label: String, elapsed: Double)] = []
        for execution in running.sorted(by: { $0.id < $1.id }) {
            let elapsed = atl_exec_elapsed(execution.id)
            guard elapsed >= 0,
                LuaState.requestExecution(execution.id, cancel: false, traceback: true) == .sent
            else { continue }
            asked.append((execution.id, execution.label, elapsed))
        }
        let deadline = Monotonic.now() + seconds
        return asked.compactMap { execution in
            guard
                let report = LuaState.reportExecution(execution.id, waiting: max(0.000_001, deadline - Monotonic.now()))
            else { return nil }
            return LuaExecutionReport(
                label: execution.label, id: execution.id, runningFor: .milliseconds(Int64(execution.elapsed * 1000)),
                place: report.place, traceback: report.traceback)
        }
    }
}
