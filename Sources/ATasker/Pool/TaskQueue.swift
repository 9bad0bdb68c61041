import DequeModule

/// The tasks waiting for a pool thread, ordered by priority value and then by queue time.
///
/// Each distinct priority value has a FIFO bucket; buckets are sorted by value, so the most urgent
/// waiting task is the first live entry of the first non-empty bucket. With the four named
/// priorities there are at most four buckets, so finding one is a short linear scan.
///
/// A cancelled task is not searched for and removed: ``markCanceled(_:)`` only fixes the counts, and
/// the entry is dropped when it reaches the front (its status is no longer `queued`).
struct TaskQueue: Sendable {
    /// A waiting task and the body that will run it. The body lives here, not in the task, so that
    /// it is released as soon as it has run.
    struct Entry: Sendable {
        let task: SupervisorTask
        let body: @Sendable (SupervisorTask) throws -> (any Sendable)?
    }

    struct Bucket: Sendable {
        let priority: Int
        var entries: Deque<Entry> = []
        /// How many entries from the front have been checked for the warning / critical latency.
        var warnedPrefix = 0
        var criticalPrefix = 0

        mutating func removeFirst() -> Entry {
            if self.warnedPrefix > 0 {
                self.warnedPrefix -= 1
            }
            if self.criticalPrefix > 0 {
                self.criticalPrefix -= 1
            }
            return self.entries.removeFirst()
        }
    }

    private var buckets: [Bucket] = []
    /// Live (not cancelled) entries, in total and per class.
    private(set) var count = 0
    private var countByClass: (Int, Int, Int, Int) = (0, 0, 0, 0)

    var isEmpty: Bool {
        self.count == 0
    }

    /// The number of live entries in a class.
    func count(of priorityClass: PriorityClass) -> Int {
        switch priorityClass {
        case .critical: self.countByClass.0
        case .high: self.countByClass.1
        case .normal: self.countByClass.2
        case .low: self.countByClass.3
        }
    }

    private mutating func adjust(_ priorityClass: PriorityClass, by delta: Int) {
        self.count += delta
        switch priorityClass {
        case .critical: self.countByClass.0 += delta
        case .high: self.countByClass.1 += delta
        case .normal: self.countByClass.2 += delta
        case .low: self.countByClass.3 += delta
        }
    }

    /// Adds a task at the back of its priority's bucket.
    mutating func append(_ entry: Entry) {
        let priority = entry.task.priority.rawValue
        var index = 0
        while index < self.buckets.count {
            let bucketPriority = self.buckets[index].priority
            if bucketPriority == priority {
                self.buckets[index].entries.append(entry)
                self.adjust(entry.task.priority.priorityClass, by: 1)
                return
            }
            if bucketPriority > priority {
                break
            }
            index += 1
        }
        var bucket = Bucket(priority: priority)
        bucket.entries.append(entry)
        self.buckets.insert(bucket, at: index)
        self.adjust(entry.task.priority.priorityClass, by: 1)
    }

    /// Removes and returns the most urgent waiting task if `admissible` accepts it.
    ///
    /// Only the most urgent task is considered: the admission limits grow with urgency, so if it may
    /// not start, no less urgent task may either.
    @inline(__always)
    mutating func removeFirst(where admissible: (PriorityClass) -> Bool) -> Entry? {
        var index = 0
        while index < self.buckets.count {
            while let head = self.buckets[index].entries.first, !head.task.isQueued {
                _ = self.buckets[index].removeFirst()
            }
            if let head = self.buckets[index].entries.first {
                let priorityClass = head.task.priority.priorityClass
                guard admissible(priorityClass) else {
                    return nil
                }
                let entry = self.buckets[index].removeFirst()
                self.adjust(priorityClass, by: -1)
                return entry
            }
            if !Self.isNamed(self.buckets[index].priority) {
                // Keep the four named buckets; drop empty ones for other values.
                self.buckets.remove(at: index)
            } else {
                index += 1
            }
        }
        return nil
    }

    /// The class of the most urgent waiting task.
    var firstClass: PriorityClass? {
        for bucket in self.buckets {
            for entry in bucket.entries where entry.task.isQueued {
                return entry.task.priority.priorityClass
            }
        }
        return nil
    }

    /// Calls `body` with the class of each waiting task, most urgent first, until it returns `false`.
    func forEachClass(_ body: (PriorityClass) -> Bool) {
        for bucket in self.buckets {
            for entry in bucket.entries where entry.task.isQueued {
                if !body(entry.task.priority.priorityClass) {
                    return
                }
            }
        }
    }

    /// Records that a waiting task was cancelled (its status is already `canceled`).
    mutating func markCanceled(_ task: SupervisorTask) {
        self.adjust(task.priority.priorityClass, by: -1)
    }

    /// Removes every entry and returns the live ones.
    mutating func removeAll() -> [Entry] {
        var live: [Entry] = []
        live.reserveCapacity(self.count)
        for bucket in self.buckets {
            for entry in bucket.entries where entry.task.isQueued {
                live.append(entry)
            }
        }
        self.buckets.removeAll()
        self.count = 0
        self.countByClass = (0, 0, 0, 0)
        return live
    }

    // MARK: - Start latency

    /// Collects waiting tasks whose wait passed a threshold and that were not checked for it yet.
    ///
    /// Tasks of one bucket are in queue-time order, so the late ones form a prefix: each call only
    /// looks at entries it has not looked at before.
    mutating func collectLate(
        now: Double,
        warning: Double?,
        critical: Double?,
        into late: inout [(task: SupervisorTask, level: LatencyLevel)]
    ) {
        for index in self.buckets.indices {
            if let warning {
                while self.buckets[index].warnedPrefix < self.buckets[index].entries.count {
                    let task = self.buckets[index].entries[self.buckets[index].warnedPrefix].task
                    guard task.queuedTime + warning <= now else {
                        break
                    }
                    if task.isQueued {
                        late.append((task, .warning))
                    }
                    self.buckets[index].warnedPrefix += 1
                }
            }
            if let critical {
                while self.buckets[index].criticalPrefix < self.buckets[index].entries.count {
                    let task = self.buckets[index].entries[self.buckets[index].criticalPrefix].task
                    guard task.queuedTime + critical <= now else {
                        break
                    }
                    if task.isQueued {
                        late.append((task, .critical))
                    }
                    self.buckets[index].criticalPrefix += 1
                }
            }
        }
    }

    /// The earliest time at which a waiting task not yet checked passes a threshold.
    func nextLatencyDeadline(warning: Double?, critical: Double?) -> Double? {
        var deadline: Double?
        for bucket in self.buckets {
            if let warning, bucket.warnedPrefix < bucket.entries.count {
                let candidate = bucket.entries[bucket.warnedPrefix].task.queuedTime + warning
                deadline = min(deadline ?? candidate, candidate)
            }
            if let critical, bucket.criticalPrefix < bucket.entries.count {
                let candidate = bucket.entries[bucket.criticalPrefix].task.queuedTime + critical
                deadline = min(deadline ?? candidate, candidate)
            }
        }
        return deadline
    }

    private static func isNamed(_ priority: Int) -> Bool {
        priority == 0 || priority == 50 || priority == 100 || priority == 200
    }
}

/// The two levels of start-latency reports.
enum LatencyLevel: UInt8, Sendable {
    case warning = 1
    case critical = 2
}
