import Synchronization

/// The source of timer ids, shared by every ``TimerQueue`` so that an id can be taken without a lock.
private let nextTimerID = Atomic<UInt64>(1)

/// Identifies one timer scheduled on a ``TimerQueue``, so that it can be cancelled.
public struct TimerID: Hashable, Sendable, CustomStringConvertible {
    let rawValue: UInt64

    init(rawValue: UInt64) {
        self.rawValue = rawValue
    }

    /// Takes a new, process-unique id.
    static func next() -> TimerID {
        TimerID(rawValue: nextTimerID.wrappingAdd(1, ordering: .relaxed).oldValue)
    }

    /// A readable form, `timer#N`.
    public var description: String {
        "timer#\(self.rawValue)"
    }
}
