/// The order in which a ``QueueWorker`` takes its items.
public enum QueueOrder: String, Sendable, Hashable {
    /// First in, first out (the default; atasker's `q=True`).
    case fifo
    /// Last in, first out (atasker's `LifoQueue`).
    case lifo
    /// Lowest priority value first, and first in, first out among equal values (atasker's
    /// `PriorityQueue`); the priority is given to ``QueueWorker/put(_:priority:)``.
    case priority
}
