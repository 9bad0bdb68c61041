/// How long ``TaskSupervisor/stop(wait:cancelTasks:)`` waits for running and queued tasks.
public enum StopWait: Sendable, Hashable {
    /// Do not wait: return at once with the tasks running now.
    case none
    /// Wait until every task has finished.
    case forever
    /// Wait at most this many seconds.
    case seconds(Double)

    /// The monotonic deadline this wait ends at, measured from `now`; `nil` for ever.
    func deadline(from now: Double) -> Double? {
        switch self {
        case .none: now
        case .forever: nil
        case .seconds(let seconds): now + max(0, seconds)
        }
    }
}
