/// How urgent a task is: a lower raw value is more urgent.
///
/// The four named priorities are atasker's `TASK_CRITICAL` (0), `TASK_HIGH` (50), `TASK_NORMAL` (100)
/// and `TASK_LOW` (200). Any `Int` is allowed. For the pool's reserves a value belongs to a class:
/// `<= 0` is critical, `<= 50` high, `<= 100` normal, anything larger low.
///
/// Waiting tasks start in order of their raw value (more urgent first), and in submission order
/// among equal values. ``TaskPriority`` compares by raw value, so `.critical < .low`.
///
/// ```swift
/// supervisor.submit(priority: .high) { _ in refreshCache() }
/// supervisor.submit(priority: TaskPriority(rawValue: 75)) { _ in work() }  // a normal-class task
/// ```
public struct TaskPriority: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    /// The priority value; lower is more urgent.
    public let rawValue: Int

    /// Creates a priority from any integer.
    ///
    /// - Parameter rawValue: The value; lower is more urgent.
    public init(rawValue: Int) {
        self.rawValue = rawValue
    }

    /// Starts at once, beyond every pool limit (atasker's `TASK_CRITICAL`, 0).
    public static let critical = TaskPriority(rawValue: 0)

    /// May use both reserves (atasker's `TASK_HIGH`, 50).
    public static let high = TaskPriority(rawValue: 50)

    /// May use the normal reserve (atasker's `TASK_NORMAL`, 100). The default.
    public static let normal = TaskPriority(rawValue: 100)

    /// Runs only within the pool size (atasker's `TASK_LOW`, 200).
    public static let low = TaskPriority(rawValue: 200)

    /// Orders priorities by raw value: the more urgent one is the smaller.
    public static func < (lhs: TaskPriority, rhs: TaskPriority) -> Bool {
        lhs.rawValue < rhs.rawValue
    }

    /// `critical`, `high`, `normal`, `low` for the named values, else `priority(N)`.
    public var description: String {
        switch self.rawValue {
        case 0: "critical"
        case 50: "high"
        case 100: "normal"
        case 200: "low"
        default: "priority(\(self.rawValue))"
        }
    }

    /// The reserve class this priority belongs to.
    var priorityClass: PriorityClass {
        PriorityClass(self)
    }
}

/// The four classes that the pool's admission rules know.
enum PriorityClass: Int, Sendable, CaseIterable {
    case critical = 0
    case high = 1
    case normal = 2
    case low = 3

    @inline(__always)
    init(_ priority: TaskPriority) {
        let value = priority.rawValue
        if value <= 0 {
            self = .critical
        } else if value <= 50 {
            self = .high
        } else if value <= 100 {
            self = .normal
        } else {
            self = .low
        }
    }

    /// How many may be busy (threads running tasks, or children running calls) while a task of this class
    /// starts, under the rule of reserves: LOW up to N, NORMAL up to N + reserveNormal, HIGH up to N + both
    /// reserves, CRITICAL always (`Int.max`, as for a pool size of 0, unlimited).
    @inline(__always)
    func busyLimit(poolSize: Int, reserveNormal: Int, reserveHigh: Int) -> Int {
        if poolSize == 0 {
            return Int.max
        }
        switch self {
        case .critical: return Int.max
        case .high: return poolSize + reserveNormal + reserveHigh
        case .normal: return poolSize + reserveNormal
        case .low: return poolSize
        }
    }

    /// The named priority that stands for this class (used as a key in ``TaskSupervisor/Info``).
    var representative: TaskPriority {
        switch self {
        case .critical: .critical
        case .high: .high
        case .normal: .normal
        case .low: .low
        }
    }
}
