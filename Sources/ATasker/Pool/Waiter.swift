/// A one-shot event that one or more threads can block on until it is signalled.
///
/// Blocking waits (``SupervisorTask/wait(timeout:)``, ``TaskSupervisor/waitUntilIdle()``,
/// ``TaskSupervisor/stop(wait:cancelTasks:)``) register a `Waiter` in the state they watch and
/// sleep on it, so no condition variable is allocated per task: only a thread that actually waits
/// pays for one.
final class Waiter: Sendable {
    private let event = ConditionLock<Bool>(false)

    init() {}

    /// Marks the event as happened and wakes every thread waiting on it.
    func signal() {
        self.event.lock()
        self.event.lockedValue = true
        self.event.unlock()
        // `self` is retained by the caller, so broadcasting after the unlock is safe.
        self.event.broadcast()
    }

    /// Blocks until ``signal()`` or until the monotonic deadline.
    ///
    /// - Parameter deadline: A ``Monotonic/now()`` deadline, or `nil` to wait for ever.
    /// - Returns: `true` if the event happened, `false` on timeout.
    func wait(until deadline: Double?) -> Bool {
        self.event.lock()
        defer { self.event.unlock() }
        while !self.event.lockedValue {
            if let deadline {
                if !self.event.wait(until: deadline) {
                    return self.event.lockedValue
                }
            } else {
                self.event.wait()
            }
        }
        return true
    }
}
