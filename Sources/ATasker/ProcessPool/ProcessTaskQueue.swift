import DequeModule

/// A process task: the supervisor's task record and what to send.
struct ProcessTaskEntry: Sendable {
    let task: SupervisorTask
    let call: ProcessCall
    /// Seconds from the start of the call in the child, or `nil`.
    let timeout: Double?
    let transform: (@Sendable (ProcessReply) throws -> (any Sendable)?)?
}

/// The process tasks waiting for a child, by priority value and then in queue order.
///
/// Each distinct priority value has a FIFO bucket and buckets are sorted by value (as in ``TaskQueue``).
/// A task that was pipelined to a child that died before starting it goes back to the front of its bucket
/// (``prepend(_:)``). A cancelled task is only counted out (``markCanceled()``); its entry is dropped when it
/// reaches the front, because its status is no longer `queued`.
struct ProcessTaskQueue: Sendable {
    private struct Bucket: Sendable {
        let priority: Int
        var entries: Deque<ProcessTaskEntry> = []
    }

    private var buckets: [Bucket] = []
    /// Live (queued, not cancelled) entries.
    private(set) var count = 0

    var isEmpty: Bool {
        self.count == 0
    }

    /// Adds a task at the back of its priority's bucket.
    mutating func append(_ entry: ProcessTaskEntry) {
        let index = self.bucketIndex(for: entry.task.priority.rawValue)
        self.buckets[index].entries.append(entry)
        self.count += 1
    }

    /// Puts a task back at the front of its priority's bucket.
    mutating func prepend(_ entry: ProcessTaskEntry) {
        let index = self.bucketIndex(for: entry.task.priority.rawValue)
        self.buckets[index].entries.prepend(entry)
        self.count += 1
    }

    /// The most urgent waiting task, without removing it.
    mutating func first() -> ProcessTaskEntry? {
        while !self.buckets.isEmpty {
            while let head = self.buckets[0].entries.first, !head.task.isQueued {
                self.buckets[0].entries.removeFirst()
            }
            if let head = self.buckets[0].entries.first {
                return head
            }
            self.buckets.removeFirst()
        }
        return nil
    }

    /// Removes the most urgent waiting task (the one ``first()`` returned).
    mutating func removeFirst() -> ProcessTaskEntry? {
        guard self.first() != nil else {
            return nil
        }
        self.count -= 1
        return self.buckets[0].entries.removeFirst()
    }

    /// Calls `body` with each waiting task, most urgent first, until it returns `false`.
    func forEach(_ body: (ProcessTaskEntry) -> Bool) {
        for bucket in self.buckets {
            for entry in bucket.entries where entry.task.isQueued {
                if !body(entry) {
                    return
                }
            }
        }
    }

    /// Records that a waiting task was cancelled (its status is already `canceled`).
    mutating func markCanceled() {
        self.count -= 1
    }

    /// Removes every entry and returns the live ones, most urgent first.
    mutating func removeAll() -> [ProcessTaskEntry] {
        var live: [ProcessTaskEntry] = []
        live.reserveCapacity(self.count)
        self.forEach { entry in
            live.append(entry)
            return true
        }
        self.buckets.removeAll()
        self.count = 0
        return live
    }

    private mutating func bucketIndex(for priority: Int) -> Int {
        var index = 0
        while index < self.buckets.count {
            let bucketPriority = self.buckets[index].priority
            if bucketPriority == priority {
                return index
            }
            if bucketPriority > priority {
                break
            }
            index += 1
        }
        self.buckets.insert(Bucket(priority: priority), at: index)
        return index
    }
}
