import Logging
import Synchronization

/// Code that runs on pool threads and that only its own layer can interrupt: the Lua host, whose executions are
/// cancelled by a hook that a signal arms on the thread that runs them.
package protocol CodeCanceller: AnyObject, Sendable {
    /// Asks every execution that runs now to cancel; returns how many were asked.
    func cancelRunningCode() -> Int
    /// The executions that run now, each named with its place (`worker 'w' at script.lua:12`).
    func runningCode() -> [String]
}

/// A canceller held weakly: the supervisor does not keep its host alive.
struct WeakCodeCanceller: Sendable {
    // set once, in `init`
    nonisolated(unsafe) weak var canceller: (any CodeCanceller)?
}

extension TaskSupervisor {
    /// How long cancelled code may take to get back to the host before a shutdown returns without it.
    public static let cancelGrace: Duration = .milliseconds(500)

    /// Adds what cancels the running code of a layer above (a Lua host does this when it is made).
    package func addCodeCanceller(_ canceller: any CodeCanceller) {
        self.codeCancellers.withLock { cancellers in
            cancellers.removeAll { $0.canceller == nil }
            cancellers.append(WeakCodeCanceller(canceller: canceller))
        }
    }

    /// Cancels the code that runs now in tasks and workers and cannot be interrupted from outside by the pool: the
    /// Lua executions of every ``LuaHost`` on this supervisor. Each fails with a cancel error as soon as its thread
    /// runs Lua again. Code inside one long C call is not reached (see ``runningCode()``).
    ///
    /// - Returns: How many executions were asked to cancel.
    @discardableResult
    public func cancelRunningCode() -> Int {
        self.liveCodeCancellers().reduce(0) { $0 + $1.cancelRunningCode() }
    }

    /// The executions that run now in the layers above, each named with its place.
    public func runningCode() -> [String] {
        self.liveCodeCancellers().flatMap { $0.runningCode() }
    }

    /// Kills the process pool's children now (`SIGKILL`), so that a stop that cannot wait does not wait for the
    /// pool's own stop timeout.
    package func killProcessChildren() {
        self.processPoolSlot.withLock { $0 }?.killChildren()
    }

    private func liveCodeCancellers() -> [any CodeCanceller] {
        self.codeCancellers.withLock { $0.compactMap(\.canceller) }
    }

    /// Stops the supervisor with a bounded wait: the one stop policy of the library, which the command line and
    /// the ``run()`` service use.
    ///
    /// 1. A graceful stop (``stop(wait:cancelTasks:)``): no new executions; queued and delayed tasks are cancelled
    ///    with `cancelTasks`; running work may finish within `timeout`.
    /// 2. At that deadline, the code that still runs is cancelled (``cancelRunningCode()``) and given
    ///    ``cancelGrace`` to get back; the process pool's children are killed (their tasks fail).
    /// 3. What still runs then — code inside one long C call or a `__gc` finalizer — is named in the log at
    ///    warning level, with its place, and the call returns: it is left behind.
    ///
    /// Blocks the calling thread for at most about `timeout` plus ``cancelGrace`` plus the process pool's stop
    /// timeout. Calling ``cancelRunningCode()`` from another thread meanwhile (a second Ctrl-C) ends step 1 early.
    ///
    /// - Parameters:
    ///   - timeout: How long running work may take; `nil` for ``Configuration/stopTimeout``.
    ///   - cancelTasks: Whether queued and delayed tasks are cancelled. Default: `true`.
    /// - Returns: The tasks still running when it returned (empty when all finished), in id order.
    @discardableResult
    public func shutdown(timeout: Duration? = nil, cancelTasks: Bool = true) -> [SupervisorTask] {
        let timeout = timeout ?? self.configuration.stopTimeout
        let seconds = Self.seconds(timeout)
        var left = self.stopBlocking(wait: .seconds(seconds), cancelTasks: cancelTasks)
        guard !left.isEmpty else { return left }
        let count = self.cancelRunningCode()
        self.killProcessChildren()
        if count > 0 {
            self.logger.warning(
                "cancelling the code that still runs at the stop deadline (\(count) executions)",
                metadata: ["stop_timeout": "\(seconds)"])
        }
        left = self.stopBlocking(wait: .seconds(count > 0 ? Self.seconds(Self.cancelGrace) : 0), cancelTasks: true)
        for place in self.runningCode() {
            self.logger.warning(
                "\(place) is stuck in one long C call or a __gc finalizer, where it cannot be cancelled; it is left behind"
            )
        }
        for task in left {
            let name = task.name.map { " (\($0))" } ?? ""
            self.logger.warning(
                "task \(task.id)\(name) still runs at the stop deadline; it is left behind",
                metadata: ["task": "\(task.id)", "stop_timeout": "\(seconds)"])
        }
        return left
    }

    /// ``shutdown(timeout:cancelTasks:)`` without blocking a thread of Swift concurrency: the policy runs on a
    /// thread of its own. When the calling task is cancelled meanwhile (a service group past its graceful
    /// shutdown period), the code that still runs is cancelled at once.
    @discardableResult
    public func shutdown(timeout: Duration? = nil, cancelTasks: Bool = true) async -> [SupervisorTask] {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[SupervisorTask], Never>) in
                let started = PoolThread.spawn(name: "atasker-stop") { [self] in
                    continuation.resume(returning: self.shutdown(timeout: timeout, cancelTasks: cancelTasks))
                }
                if !started {
                    // No thread available: cancel at once rather than block the caller's thread.
                    continuation.resume(returning: self.shutdown(timeout: .zero, cancelTasks: true))
                }
            }
        } onCancel: {
            _ = self.cancelRunningCode()
        }
    }

    /// Seconds in a duration, as the stop waits take them.
    static func seconds(_ duration: Duration) -> Double {
        let (seconds, attoseconds) = duration.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
