import HeapModule

/// Values at deadlines of the monotonic clock, earliest first: the store of ``TimerQueue`` and of an
/// ``Aloop``'s timers.
///
/// A min-heap orders the deadlines (equal deadlines by id, so in the order they were scheduled, as
/// ids grow); a dictionary holds the live values. Cancelling removes the value at once and leaves its
/// entry in the heap until it reaches the top, or until cancelled entries make up most of the heap
/// (then it is rebuilt), so it cannot grow without bound.
struct TimerHeap<Value: Sendable>: Sendable {
    private struct Entry: Comparable, Sendable {
        let deadline: Double
        let id: UInt64

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            if lhs.deadline != rhs.deadline {
                return lhs.deadline < rhs.deadline
            }
            return lhs.id < rhs.id
        }
    }

    private var heap = Heap<Entry>()
    private var values: [UInt64: Value] = [:]

    /// The number of live timers.
    var count: Int {
        self.values.count
    }

    /// Adds `value` at `deadline` under `id`.
    mutating func insert(_ id: UInt64, at deadline: Double, _ value: Value) {
        self.heap.insert(Entry(deadline: deadline, id: id))
        self.values[id] = value
    }

    /// Removes the timer `id`; returns its value, or `nil` if it fired or was cancelled before.
    mutating func cancel(_ id: UInt64) -> Value? {
        guard let value = self.values.removeValue(forKey: id) else {
            return nil
        }
        if self.heap.count > 64 && self.heap.count > 2 * self.values.count {
            self.heap = Heap(self.heap.unordered.filter { self.values[$0.id] != nil })
        }
        return value
    }

    /// Removes the timers due at `now` and returns their values, in deadline order.
    mutating func takeDue(now: Double) -> [Value] {
        var due: [Value] = []
        while let top = self.heap.min, top.deadline <= now {
            self.heap.removeMin()
            if let value = self.values.removeValue(forKey: top.id) {
                due.append(value)
            }
        }
        return due
    }

    /// The earliest deadline of a live timer (cancelled entries on top are dropped, so that nobody
    /// wakes up for them).
    mutating func earliest() -> Double? {
        while let top = self.heap.min, self.values[top.id] == nil {
            self.heap.removeMin()
        }
        return self.heap.min?.deadline
    }

    /// Removes every timer and returns the values of the live ones.
    mutating func removeAll() -> [Value] {
        let live = Array(self.values.values)
        self.values.removeAll()
        self.heap = Heap()
        return live
    }
}
