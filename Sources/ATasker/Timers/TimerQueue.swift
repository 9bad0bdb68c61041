import HeapModule

/// Runs short callbacks at deadlines of the monotonic clock, on one dedicated thread.
///
/// The queue keeps a min-heap of deadlines. Its thread sleeps with `pthread_cond_timedwait` (on a
/// condition variable whose clock is `CLOCK_MONOTONIC`) until the earliest deadline, or until a
/// timer with an earlier deadline is scheduled. Nothing polls. The thread starts with the first
/// ``schedule(at:_:)``.
///
/// ```swift
/// let timers = TimerQueue()
/// let id = timers.schedule(after: 0.5) { print("half a second later") }
/// timers.cancel(id)  // true: it had not fired
/// timers.shutdown()
/// ```
///
/// - Important: Callbacks run on the timer thread, one after another. Keep them short (hand real work
///   to a ``TaskSupervisor``), or every later timer fires late.
public final class TimerQueue: Sendable {
    struct Entry: Comparable, Sendable {
        let deadline: Double
        let id: UInt64

        static func < (lhs: Entry, rhs: Entry) -> Bool {
            if lhs.deadline != rhs.deadline {
                return lhs.deadline < rhs.deadline
            }
            return lhs.id < rhs.id
        }
    }

    struct State: Sendable {
        // Cancelled timers stay in the heap until they reach its top (or a rebuild); `callbacks`
        // says which ones are live.
        var heap = Heap<Entry>()
        var callbacks: [UInt64: @Sendable () -> Void] = [:]
        var threadStarted = false
        var isShutdown = false
        // The deadline the thread sleeps until (`.infinity` for an untimed wait), `nil` while awake.
        var sleepingUntil: Double?
    }

    private let state = ConditionLock(State())
    private let threadName: String

    /// Creates a timer queue. Its thread is started by the first ``schedule(at:_:)``.
    ///
    /// - Parameter name: The name of the timer thread (Linux keeps 15 bytes).
    public init(name: String = "atasker-timer") {
        self.threadName = name
    }

    /// Schedules `fire` to run on the timer thread at a monotonic deadline.
    ///
    /// A deadline in the past fires as soon as the thread gets to it. Timers with equal deadlines fire
    /// in the order they were scheduled. After ``shutdown()`` the timer is accepted but never fires.
    ///
    /// - Parameters:
    ///   - deadline: A time of ``Monotonic/now()``, in seconds.
    ///   - fire: The callback. It must be short.
    /// - Returns: The timer's identifier, for ``cancel(_:)``.
    @discardableResult
    public func schedule(at deadline: Double, _ fire: @escaping @Sendable () -> Void) -> TimerID {
        let id = TimerID.next()
        self.schedule(id, at: deadline, fire)
        return id
    }

    /// Schedules `fire` to run on the timer thread after a number of seconds.
    ///
    /// - Parameters:
    ///   - seconds: The delay from now, in seconds.
    ///   - fire: The callback. It must be short.
    /// - Returns: The timer's identifier, for ``cancel(_:)``.
    @discardableResult
    public func schedule(after seconds: Double, _ fire: @escaping @Sendable () -> Void) -> TimerID {
        self.schedule(at: Monotonic.now() + seconds, fire)
    }

    /// Cancels a timer.
    ///
    /// - Parameter id: The identifier returned by ``schedule(at:_:)``.
    /// - Returns: `true` if the timer had not fired yet (it now never will), `false` if it already
    ///   fired, is firing, or was cancelled before.
    @discardableResult
    public func cancel(_ id: TimerID) -> Bool {
        self.state.withLock { state in
            guard state.callbacks.removeValue(forKey: id.rawValue) != nil else {
                return false
            }
            // Rebuild the heap when cancelled entries dominate it, so that it cannot grow without bound.
            if state.heap.count > 64 && state.heap.count > 2 * state.callbacks.count {
                let live = state.heap.unordered.filter { state.callbacks[$0.id] != nil }
                state.heap = Heap(live)
            }
            return true
        }
    }

    /// Stops the timer thread. Timers that have not fired never will.
    ///
    /// The call does not wait for the thread to end (so a timer callback may call it too); a callback
    /// that is running finishes.
    public func shutdown() {
        let wake = self.state.withLock { state in
            state.isShutdown = true
            state.callbacks.removeAll()
            state.heap = Heap()
            return state.sleepingUntil != nil
        }
        if wake {
            self.state.broadcast()
        }
    }

    /// The number of timers that are scheduled and have not fired or been cancelled.
    public var count: Int {
        self.state.withLock { $0.callbacks.count }
    }

    // MARK: - Internal: scheduling in two steps

    /// Schedules a timer under an identifier taken earlier with `TimerID.next()`, so that a caller can
    /// record the id under its own lock and schedule after releasing that lock. Cancelling the id
    /// before this call does not prevent the timer: callers must check, when it fires, that it is
    /// still wanted.
    func schedule(_ id: TimerID, at deadline: Double, _ fire: @escaping @Sendable () -> Void) {
        let (wake, startThread) = self.state.withLock { state -> (Bool, Bool) in
            guard !state.isShutdown else {
                return (false, false)
            }
            state.heap.insert(Entry(deadline: deadline, id: id.rawValue))
            state.callbacks[id.rawValue] = fire
            let startThread = !state.threadStarted
            state.threadStarted = true
            let wake = state.sleepingUntil.map { deadline < $0 } ?? false
            return (wake, startThread)
        }
        if startThread {
            let started = PoolThread.spawn(name: self.threadName, keepsTime: true) { [self] in
                self.threadMain()
            }
            precondition(started, "cannot start the timer thread")
        } else if wake {
            self.state.signal()
        }
    }

    private func threadMain() {
        let lock = self.state
        lock.lock()
        while !lock.lockedValue.isShutdown {
            let now = Monotonic.now()
            var due: [@Sendable () -> Void] = []
            while let top = lock.lockedValue.heap.min, top.deadline <= now {
                lock.lockedValue.heap.removeMin()
                if let fire = lock.lockedValue.callbacks.removeValue(forKey: top.id) {
                    due.append(fire)
                }
            }
            if !due.isEmpty {
                lock.unlock()
                for fire in due {
                    fire()
                }
                lock.lock()
                continue
            }
            // Drop cancelled entries from the top so that we do not wake up for them.
            while let top = lock.lockedValue.heap.min, lock.lockedValue.callbacks[top.id] == nil {
                lock.lockedValue.heap.removeMin()
            }
            if let top = lock.lockedValue.heap.min {
                lock.lockedValue.sleepingUntil = top.deadline
                _ = lock.wait(until: top.deadline)
            } else {
                lock.lockedValue.sleepingUntil = .infinity
                lock.wait()
            }
            lock.lockedValue.sleepingUntil = nil
        }
        lock.lockedValue.threadStarted = false
        lock.unlock()
    }
}
