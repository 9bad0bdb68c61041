extension TaskSupervisor {
    /// A snapshot of the supervisor, with fields named after atasker's `get_info`.
    public struct Info: Sendable {
        /// The supervisor's id.
        public var id: String
        /// Started and not stopped.
        public var active: Bool
        /// ``TaskSupervisor/start()`` has been called.
        public var started: Bool
        /// The pool size N (`0`: unlimited).
        public var threadPoolSize: Int
        /// The normal reserve.
        public var threadReserveNormal: Int
        /// The high reserve.
        public var threadReserveHigh: Int
        /// Threads kept ready.
        public var threadMinSize: Int
        /// The thread limit in effect; `nil` when unlimited.
        public var threadMaxSize: Int?
        /// Tasks running now.
        public var threadTasksCount: Int
        /// The ids of the tasks running now, ascending.
        public var threadTasks: [Int]
        /// Waiting tasks per class, keyed by ``TaskPriority/critical``, ``TaskPriority/high``,
        /// ``TaskPriority/normal`` and ``TaskPriority/low`` (all four keys are present).
        public var queued: [TaskPriority: Int]
        /// Waiting tasks in total.
        public var queuedCount: Int
        /// Tasks waiting for their delay.
        public var delayedCount: Int
        /// Pool threads alive.
        public var threadsCount: Int
        /// Pool threads waiting for work.
        public var idleThreadsCount: Int
        /// Tasks delayed, queued or running, process-pool tasks included.
        public var tasks: Int
        /// Activities retained with ``TaskSupervisor/retainActivity()``.
        public var activity: Int
        /// Seconds of start latency that log a warning.
        public var timeoutWarning: Double
        /// Seconds of start latency that log a critical message.
        public var timeoutCritical: Double
        /// atasker's polling delay (kept for compatibility).
        public var pollDelay: Double
        /// The supervisor's workers (see ``TaskSupervisor/workers``), in creation order.
        public var workers: [Worker.Info]
        /// The process pool, or `nil` when none was set (see ``TaskSupervisor/setProcessPool(_:)``).
        public var processPool: ProcessPoolInfo?
    }

    /// Returns a snapshot of the supervisor's sizes, threads and tasks (atasker's `get_info`).
    public func info() -> Info {
        let id = String(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque()), radix: 16)
        // Taken before the supervisor's lock: a worker's lock is never taken inside it.
        let workers = self.workers.map { $0.info() }
        let processPool = self.processPoolInfo()
        return self.state.withLock { state in
            let configuration = state.configuration
            // Process tasks count in `tasks`, and in `processPool`, not as thread tasks.
            let running = state.runningTasks.map(\.id).filter { !state.processTaskIDs.contains($0) }
            var queued: [TaskPriority: Int] = [:]
            for priorityClass in PriorityClass.allCases {
                queued[priorityClass.representative] = state.queue.count(of: priorityClass)
            }
            return Info(
                id: id,
                active: state.lifecycle == .running,
                started: state.lifecycle != .initial,
                threadPoolSize: configuration.poolSize,
                threadReserveNormal: configuration.reserveNormal,
                threadReserveHigh: configuration.reserveHigh,
                threadMinSize: configuration.minSize,
                threadMaxSize: configuration.effectiveMaxSize,
                threadTasksCount: running.count,
                threadTasks: running,
                queued: queued,
                queuedCount: state.queue.count,
                delayedCount: state.delayedCount,
                threadsCount: state.threads,
                idleThreadsCount: state.idleThreads + (state.leader == .none ? 0 : 1),
                tasks: state.registry.count,
                activity: state.activity,
                timeoutWarning: configuration.timeoutWarning,
                timeoutCritical: configuration.timeoutCritical,
                pollDelay: configuration.pollDelay,
                workers: workers,
                processPool: processPool
            )
        }
    }
}
