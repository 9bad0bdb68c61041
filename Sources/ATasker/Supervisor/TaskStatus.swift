/// Where a ``SupervisorTask`` is in its life. Raw values are atasker's status strings.
///
/// A task goes `delayed` (only with a delay) → `queued` → `started` → `completed` or `failed`;
/// a delayed or queued task may instead become `canceled`.
public enum TaskStatus: String, Sendable {
    /// Waiting for a pool thread.
    case queued
    /// Waiting for its delay to elapse; it then becomes `queued`.
    case delayed
    /// Running on a pool thread.
    case started
    /// Finished; its body returned a result.
    case completed
    /// Finished; its body threw an error, or the supervisor refused it.
    case failed
    /// Cancelled before it started.
    case canceled

    /// The compact code stored in a task's atomic status.
    var code: UInt8 {
        switch self {
        case .queued: 0
        case .delayed: 1
        case .started: 2
        case .completed: 3
        case .failed: 4
        case .canceled: 5
        }
    }

    init(code: UInt8) {
        switch code {
        case 0: self = .queued
        case 1: self = .delayed
        case 2: self = .started
        case 3: self = .completed
        case 4: self = .failed
        default: self = .canceled
        }
    }

    /// Whether the status is final (`completed`, `failed` or `canceled`).
    var isFinal: Bool {
        switch self {
        case .completed, .failed, .canceled: true
        case .queued, .delayed, .started: false
        }
    }
}
