import DequeModule
import HeapModule

/// The items of a ``QueueWorker``, kept in the worker's ``QueueOrder``.
struct WorkerItemQueue<Item> {
    /// An item of a priority queue: ordered by priority, then by arrival.
    struct Prioritized: Comparable {
        let priority: Int
        let sequence: UInt64
        let item: Item

        static func < (lhs: Prioritized, rhs: Prioritized) -> Bool {
            if lhs.priority != rhs.priority {
                return lhs.priority < rhs.priority
            }
            return lhs.sequence < rhs.sequence
        }

        static func == (lhs: Prioritized, rhs: Prioritized) -> Bool {
            lhs.priority == rhs.priority && lhs.sequence == rhs.sequence
        }
    }

    let order: QueueOrder
    /// The items of a FIFO or LIFO queue, oldest first.
    private(set) var list = Deque<Item>()
    /// The items of a priority queue.
    private var heap = Heap<Prioritized>()
    private var sequence: UInt64 = 0

    init(order: QueueOrder) {
        self.order = order
    }

    var count: Int {
        self.order == .priority ? self.heap.count : self.list.count
    }

    var isEmpty: Bool {
        self.order == .priority ? self.heap.isEmpty : self.list.isEmpty
    }

    /// Adds an item; `priority` matters only for a priority queue.
    @inline(__always)
    mutating func append(_ item: Item, priority: Int) {
        if self.order == .priority {
            self.heap.insert(Prioritized(priority: priority, sequence: self.sequence, item: item))
            self.sequence &+= 1
        } else {
            self.list.append(item)
        }
    }

    /// Removes and returns the next item in the queue's order.
    mutating func popNext() -> Item? {
        switch self.order {
        case .fifo: self.list.popFirst()
        case .lifo: self.list.popLast()
        case .priority: self.heap.popMin()?.item
        }
    }

    /// Hands every item of a FIFO queue to `batch` (which must be empty) in one swap, so that the
    /// items can be run without the lock; `batch`'s spare capacity becomes the queue's.
    mutating func takeAll(into batch: inout Deque<Item>) {
        precondition(self.order == .fifo && batch.isEmpty, "takeAll is for FIFO queues and an empty batch")
        swap(&self.list, &batch)
    }

    /// Drops every item.
    mutating func removeAll() {
        self.list.removeAll()
        self.heap = Heap()
    }
}
