import CProcessSpawn
import Glibc

/// Runs short callbacks at deadlines of the monotonic clock.
///
/// The queue keeps its timers in a min-heap of deadlines, served by one of two kinds of thread:
/// - **a server**: a thread of a ``TaskSupervisor``'s pool that has nothing to run calls
///   `serve(until:)` and sleeps until the earliest deadline (or until a timer with an earlier one is
///   scheduled); in two steps when the deadline is far, since a long sleep ends late (see
///   `longSleep`). When timers are due, it takes them and returns to run them, and then the tasks they
///   submitted: a worker's tick wakes one thread, the one that runs it, and not a timer thread that
///   then wakes a pool thread. At most one server waits at a time.
/// - **the queue's own thread**, for when no server waits (every pool thread busy, or a queue with
///   no pool). It sleeps on a `timerfd` alarm armed for the earliest deadline only while no server
///   waits: arming and disarming the alarm is a system call that wakes nobody, so a server that
///   leaves to run a tick and comes back before the next deadline costs this thread nothing, and a
///   server that is still busy at the next deadline is replaced by it then.
///
/// Nothing polls. The thread starts with the first ``schedule(at:_:)``.
///
/// ```swift
/// let timers = TimerQueue()
/// let id = timers.schedule(after: 0.5) { print("half a second later") }
/// timers.cancel(id)  // true: it had not fired
/// timers.shutdown()
/// ```
///
/// - Important: Callbacks run on the serving thread, one after another. Keep them short (hand real
///   work to a ``TaskSupervisor``), or every later timer fires late.

public final class TimerQueue: Sendable {
    struct State: Sendable {
        var timers = TimerHeap<@Sendable () -> Void>()
        var threadStarted = false
        var isShutdown = false
        /// The deadline the alarm is armed for; `nil` while disarmed. Armed only while no server serves.
        var alarm: Double?
        /// Whether a server serves, and how.
        var server = Server.none
        /// The deadline the server sleeps until (`.infinity` for an untimed wait).
        var serverSleepingUntil = Double.infinity
        /// `interruptServer()` asked the waiting server to return.
        var serverInterrupted = false
    }

    /// A server's part.
    enum Server: Sendable {
        case none
        /// It waits in `serve(until:)`.
        case waiting
        /// It runs the timers that `serve(until:)` returned with `staying: true`, and comes back.
        case firing
    }

    /// When the next timer is this close (seconds), a server that returns with due timers stays the
    /// server: it runs them and serves again, and the tasks they submit go to other threads. With
    /// timers further apart it leaves to run those tasks itself, and the alarm stands in meanwhile.
    static let stayWindow = 0.001

    /// A server that would sleep longer than `longSleep` (seconds) until the next timer sleeps until
    /// `earlyWake` before it instead, and then the rest of the way. A thread that sleeps long wakes up
    /// late: the CPU has gone into a deep idle state (a virtual machine's CPU is descheduled by its
    /// host), and coming back takes ~100 µs on the machine of the benchmarks (`bench/c/timer_floor.c`:
    /// p50 ~100 µs late after 10 ms asleep, ~25 µs after 1 ms or less). The second, short sleep ends
    /// on time, or the first one already ended at the deadline: at 10 ms that made a bare timed wait's
    /// lateness p50 / p99 ~100 / ~140 µs → ~20 / ~40 µs, for one more wake-up per long sleep.
    static let longSleep = 0.002
    static let earlyWake = 0.0001

    /// How a call to `serve(until:)` ended.
    enum Served {
        /// These timers were due: the caller runs them, in order, now. With `staying`, the caller is
        /// still the server and must call `serve(until:)` again once they have run.
        case fired([@Sendable () -> Void], staying: Bool)
        /// `interruptServer()` was called.
        case interrupted
        /// The caller's idle deadline passed with no timer due.
        case idleTimeout
        /// The queue was shut down, or another server waits.
        case unavailable
    }

    private let state = ConditionLock(State())
    private let threadName: String
    /// The `timerfd` that the queue's own thread sleeps on.
    private let alarmDescriptor: Int32

    /// Creates a timer queue. Its thread is started by the first ``schedule(at:_:)``.
    ///
    /// - Parameter name: The name of the timer thread (Linux keeps 15 bytes).
    public init(name: String = "atasker-timer") {
        self.threadName = name
        self.alarmDescriptor = atp_alarm_create()
        precondition(self.alarmDescriptor >= 0, "cannot create the timer thread's timerfd: errno \(errno)")
    }

    deinit {
        close(self.alarmDescriptor)
    }

    /// Schedules `fire` to run at a monotonic deadline.
    ///
    /// A deadline in the past fires as soon as a thread gets to it. Timers with equal deadlines fire
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

    /// Schedules `fire` to run after a number of seconds.
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
            state.timers.cancel(id.rawValue) != nil
        }
    }

    /// Stops the timers. Timers that have not fired never will; a waiting server returns.
    ///
    /// The call does not wait for the thread to end (so a timer callback may call it too); a callback
    /// that is running finishes.
    public func shutdown() {
        let wakeServer = self.state.withLock { state in
            state.isShutdown = true
            _ = state.timers.removeAll()
            if state.threadStarted {
                // An alarm in the past fires at once: the thread sees the shutdown and ends.
                self.setAlarm(1e-9, &state)
            }
            return state.server == .waiting
        }
        if wakeServer {
            self.state.broadcast()
        }
    }

    /// The number of timers that are scheduled and have not fired or been cancelled.
    public var count: Int {
        self.state.withLock { $0.timers.count }
    }

    // MARK: - Internal: scheduling in two steps

    /// Schedules a timer under an identifier taken earlier with `TimerID.next()`, so that a caller can
    /// record the id under its own lock and schedule after releasing that lock. Cancelling the id
    /// before this call does not prevent the timer: callers must check, when it fires, that it is
    /// still wanted.
    func schedule(_ id: TimerID, at deadline: Double, _ fire: @escaping @Sendable () -> Void) {
        let (wakeServer, startThread) = self.state.withLock { state -> (Bool, Bool) in
            guard !state.isShutdown else {
                return (false, false)
            }
            state.timers.insert(id.rawValue, at: deadline, fire)
            let startThread = !state.threadStarted
            state.threadStarted = true
            switch state.server {
            case .waiting:
                return (deadline < state.serverSleepingUntil, startThread)
            case .firing:
                // The server looks at the heap when it comes back.
                return (false, startThread)
            case .none:
                if state.alarm.map({ deadline < $0 }) ?? true {
                    self.setAlarm(deadline, &state)
                }
                return (false, startThread)
            }
        }
        if startThread {
            let started = PoolThread.spawn(name: self.threadName, keepsTime: true) { [self] in
                self.threadMain()
            }
            precondition(started, "cannot start the timer thread")
        }
        if wakeServer {
            self.state.signal()
        }
    }

    // MARK: - Internal: a pool thread serves the timers

    /// Waits, on the calling thread, for the earliest timer, and returns the timers that are due then
    /// for the caller to run; or returns at `idleDeadline` (a ``Monotonic/now()`` time, `nil` for
    /// none) with no timer due, or when ``interruptServer()`` is called.
    ///
    /// While the caller waits, the queue's own thread stays asleep (its alarm disarmed); when the
    /// caller returns, the alarm is armed again for the earliest timer left, so that the timers do not
    /// depend on when the caller comes back; except when it returns with `staying: true` (the next
    /// timer is near): then it runs the due timers as the server and calls this method again.
    func serve(until idleDeadline: Double?) -> Served {
        let lock = self.state
        lock.lock()
        defer { lock.unlock() }
        guard !lock.lockedValue.isShutdown else {
            return .unavailable
        }
        guard lock.lockedValue.server != .waiting else {
            // Only one thread serves at a time (the supervisor has one leader): look again.
            return .interrupted
        }
        lock.lockedValue.server = .waiting
        if lock.lockedValue.alarm != nil {
            self.setAlarm(nil, &lock.lockedValue)
        }
        while true {
            if lock.lockedValue.isShutdown {
                lock.lockedValue.server = .none
                return .unavailable
            }
            if lock.lockedValue.serverInterrupted {
                lock.lockedValue.serverInterrupted = false
                self.leaveServing(&lock.lockedValue)
                return .interrupted
            }
            let now = Monotonic.now()
            let due = lock.lockedValue.timers.takeDue(now: now)
            if !due.isEmpty {
                if let next = lock.lockedValue.timers.earliest(), next - now < Self.stayWindow {
                    lock.lockedValue.server = .firing
                    return .fired(due, staying: true)
                }
                self.leaveServing(&lock.lockedValue)
                return .fired(due, staying: false)
            }
            let next = lock.lockedValue.timers.earliest() ?? .infinity
            var until = min(next, idleDeadline ?? .infinity)
            if until == next && next - now > Self.longSleep {
                until = next - Self.earlyWake
            }
            lock.lockedValue.serverSleepingUntil = until
            if until == .infinity {
                lock.wait()
            } else if !lock.wait(until: until), let idleDeadline, until == idleDeadline,
                next > Monotonic.now()
            {
                lock.lockedValue.serverSleepingUntil = .infinity
                self.leaveServing(&lock.lockedValue)
                return .idleTimeout
            }
            lock.lockedValue.serverSleepingUntil = .infinity
        }
    }

    /// Makes the waiting server return from `serve(until:)` with `.interrupted`; if none waits yet, the
    /// next call to `serve(until:)` returns so at once (the supervisor may interrupt its leader before
    /// that thread has begun to wait, and that interrupt must not be lost).
    func interruptServer() {
        let wake = self.state.withLock { state in
            state.serverInterrupted = true
            return state.server == .waiting
        }
        if wake {
            self.state.broadcast()
        }
    }

    // MARK: - Private

    /// The server leaves: the queue's own thread takes over, its alarm armed for the earliest timer.
    private func leaveServing(_ state: inout State) {
        state.server = .none
        self.armForEarliest(&state)
    }

    /// Arms the alarm for the earliest live timer, if any.
    private func armForEarliest(_ state: inout State) {
        if let earliest = state.timers.earliest() {
            self.setAlarm(earliest, &state)
        }
    }

    /// Arms the alarm for `deadline`, or disarms it for `nil`. Called with the lock held, so that
    /// `state.alarm` is what the kernel has.
    private func setAlarm(_ deadline: Double?, _ state: inout State) {
        guard state.alarm != deadline else {
            return
        }
        state.alarm = deadline
        var seconds = 0
        var nanoseconds = 0
        if let deadline {
            let spec = Monotonic.absoluteTime(at: max(deadline, 1e-9))
            seconds = spec.tv_sec
            nanoseconds = spec.tv_nsec
        }
        let status = atp_alarm_set(self.alarmDescriptor, seconds, nanoseconds)
        precondition(status == 0, "cannot arm the timer thread's timerfd: errno \(status)")
    }

    /// The queue's own thread: sleeps on the alarm, and runs the timers that are due when it fires,
    /// unless a server waits (then the alarm was stale).
    private func threadMain() {
        let lock = self.state
        while true {
            let status = atp_alarm_wait(self.alarmDescriptor)
            precondition(status == 0, "cannot read the timer thread's timerfd: errno \(status)")
            lock.lock()
            lock.lockedValue.alarm = nil
            while !lock.lockedValue.isShutdown && lock.lockedValue.server == .none {
                let due = lock.lockedValue.timers.takeDue(now: Monotonic.now())
                if due.isEmpty {
                    self.armForEarliest(&lock.lockedValue)
                    break
                }
                lock.unlock()
                for fire in due {
                    fire()
                }
                lock.lock()
            }
            if lock.lockedValue.isShutdown {
                lock.lockedValue.threadStarted = false
                lock.unlock()
                return
            }
            lock.unlock()
        }
    }
}
