/// A snapshot of a ``TaskSupervisor``'s process pool (``TaskSupervisor/Info/processPool``).
public struct ProcessPoolInfo: Sendable {
    /// One live child.
    public struct Child: Sendable {
        /// The child's process id (`0` while it is being spawned).
        public var pid: Int32
        /// Whether it is running a call now.
        public var busy: Bool
        /// Calls sent to it and not answered yet (more than one when calls are pipelined).
        public var outstandingCalls: Int
        /// Whether it has reported ready (it is still starting otherwise).
        public var ready: Bool
        /// Calls it has answered.
        public var tasksRun: Int
    }

    /// The pool size N (`0`: unlimited).
    public var poolSize: Int
    /// The normal reserve.
    public var reserveNormal: Int
    /// The high reserve.
    public var reserveHigh: Int
    /// The live children, in spawn order.
    public var children: [Child]
    /// Children spawned since the pool was created.
    public var childrenSpawned: Int
    /// Children that died (crashed, were killed, failed to start or broke the protocol) since the pool was
    /// created; children stopped by the pool are not counted.
    public var childDeaths: Int
    /// Tasks waiting for a child.
    public var queuedCount: Int
    /// Tasks sent to a child and not finished.
    public var runningCount: Int
    /// Why the pool is broken, or `nil` when it is not.
    public var brokenCause: String?
}
