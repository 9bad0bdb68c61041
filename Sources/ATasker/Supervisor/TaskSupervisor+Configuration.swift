import Glibc

extension TaskSupervisor {
    /// The sizes, limits and timeouts of a ``TaskSupervisor``. Defaults follow atasker.
    ///
    /// ```swift
    /// let supervisor = TaskSupervisor(configuration: .init(poolSize: 4, reserveNormal: 2, reserveHigh: 2))
    /// ```
    ///
    /// Admission, with N = ``poolSize``: a low-priority task starts while fewer than N tasks run, a
    /// normal one while fewer than N + ``reserveNormal``, a high one while fewer than
    /// N + ``reserveNormal`` + ``reserveHigh``, and a critical one always starts at once.
    public struct Configuration: Sendable, Hashable {
        /// The pool size N. Default: 5 × the number of online processors. `0` means no limit.
        public var poolSize: Int

        /// Extra running tasks allowed for normal and more urgent tasks. Default: 5.
        public var reserveNormal: Int

        /// Extra running tasks allowed for high and critical tasks, beyond ``reserveNormal``. Default: 5.
        public var reserveHigh: Int

        /// Threads kept ready even when idle. Default: 0 (threads are created on demand).
        public var minSize: Int

        /// The most threads the pool keeps (critical tasks may exceed it).
        ///
        /// Default `nil`: ``poolSize`` + ``reserveNormal`` + ``reserveHigh``, or unlimited when
        /// ``poolSize`` is 0.
        public var maxSize: Int?

        /// Seconds of start latency after which a task is reported with a warning. Default: 5.
        public var timeoutWarning: Double

        /// Seconds of start latency after which a task is reported as critical. Default: 10.
        public var timeoutCritical: Double

        /// atasker's polling delay, in seconds. Default: 0.1.
        ///
        /// Kept so that atasker configurations carry over. Nothing in ``ATasker`` polls: threads wait
        /// on condition variables and timers on deadlines. The value is stored and reported by
        /// ``TaskSupervisor/info()`` for workers that want a pause of that length.
        public var pollDelay: Double

        /// Seconds an idle thread above ``minSize`` waits for work before it exits. Default: 30.
        ///
        /// This is a timed wait on a condition variable, not polling: the thread wakes once, at the end.
        public var idleThreadTimeout: Double

        /// How long ``TaskSupervisor/shutdown(timeout:cancelTasks:)`` — and so a ``TaskSupervisor/run()`` service
        /// at graceful shutdown — lets running work finish before it cancels the code that still runs. Default:
        /// 10 seconds.
        public var stopTimeout: Duration

        /// Creates a configuration.
        ///
        /// - Parameters:
        ///   - poolSize: The pool size N; `0` for no limit. Default: 5 × processors.
        ///   - reserveNormal: The normal reserve. Default: 5.
        ///   - reserveHigh: The high reserve. Default: 5.
        ///   - minSize: Threads kept ready. Default: 0.
        ///   - maxSize: The thread limit; `nil` for the default (see ``maxSize``).
        ///   - timeoutWarning: Start latency that logs a warning, in seconds. Default: 5.
        ///   - timeoutCritical: Start latency that logs a critical message, in seconds. Default: 10.
        ///   - pollDelay: atasker's polling delay, kept for compatibility. Default: 0.1.
        ///   - idleThreadTimeout: How long an extra idle thread lives, in seconds. Default: 30.
        ///   - stopTimeout: How long a shutdown lets running work finish before it cancels it. Default: 10 s.
        public init(
            poolSize: Int = Configuration.defaultPoolSize,
            reserveNormal: Int = 5,
            reserveHigh: Int = 5,
            minSize: Int = 0,
            maxSize: Int? = nil,
            timeoutWarning: Double = 5,
            timeoutCritical: Double = 10,
            pollDelay: Double = 0.1,
            idleThreadTimeout: Double = 30,
            stopTimeout: Duration = .seconds(10)
        ) {
            self.poolSize = max(0, poolSize)
            self.reserveNormal = max(0, reserveNormal)
            self.reserveHigh = max(0, reserveHigh)
            self.minSize = max(0, minSize)
            self.maxSize = maxSize.map { max(1, $0) }
            self.timeoutWarning = timeoutWarning
            self.timeoutCritical = timeoutCritical
            self.pollDelay = pollDelay
            self.idleThreadTimeout = idleThreadTimeout
            self.stopTimeout = max(.zero, stopTimeout)
        }

        /// 5 × the number of online processors (`sysconf(_SC_NPROCESSORS_ONLN)`), as in atasker.
        public static var defaultPoolSize: Int {
            5 * max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        }

        /// The thread limit in effect: ``maxSize``, or its default; `nil` when unlimited.
        public var effectiveMaxSize: Int? {
            if let maxSize = self.maxSize {
                return maxSize
            }
            if self.poolSize == 0 {
                return nil
            }
            return self.poolSize + self.reserveNormal + self.reserveHigh
        }

        /// How many tasks may run while a task of `priorityClass` starts (`Int.max`: no limit).
        @inline(__always)
        func runningLimit(for priorityClass: PriorityClass) -> Int {
            priorityClass.busyLimit(
                poolSize: self.poolSize, reserveNormal: self.reserveNormal, reserveHigh: self.reserveHigh)
        }
    }
}
