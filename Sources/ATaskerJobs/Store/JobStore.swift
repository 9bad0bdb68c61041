/// The states of a durable job.
///
/// ```
/// pending --claim--> running --complete--> completed
///    ^                  |  \--fail, attempts left--> pending (run_at = now + backoff)
///    |                  |   \-fail, none left / lease lost on the last attempt--> dead
///    +--release (stop)--+
/// pending/running --cancel--> canceled
/// ```
public enum JobState: String, Sendable, Hashable, CaseIterable {
    /// Waiting for its `run_at` and a free worker (also a job that failed and waits for its retry).
    case pending
    /// Claimed by a host, under a lease.
    case running
    /// Done: its result is kept for the queue's keep time.
    case completed
    /// Failed on its last attempt (or could not be decoded): its last error is kept.
    case dead
    /// Cancelled before it completed.
    case canceled

    /// Whether the job will not run again.
    public var isFinal: Bool { self == .completed || self == .dead || self == .canceled }
}

/// A job to add to a queue.
public struct NewJob: Sendable, Hashable {
    /// The queue's name.
    public var queue: String
    /// The job's value, in the jobs' storage format (``JobPayload``).
    public var payload: [UInt8]
    /// Lower runs first (atasker's priorities: 0 critical, 50 high, 100 normal, 200 low).
    public var priority: Int
    /// When the job may start: seconds since the Unix epoch (the wall clock, shared by hosts).
    public var runAt: Double
    /// Runs (claims that were not given back) before the job is dead.
    public var maxAttempts: Int
    /// While a job with this key is pending or running in the queue, another put with it is refused.
    public var uniqueKey: String?
    /// Seconds one run may take before it is cancelled and counts as a failed attempt; `nil`: no limit.
    public var timeout: Double?
    /// Seconds that the job is kept once it is finished (completed, dead or cancelled), with its result or error.
    public var keep: Double

    /// A job with these fields.
    public init(
        queue: String, payload: [UInt8], priority: Int = 100, runAt: Double, maxAttempts: Int = 5,
        uniqueKey: String? = nil, timeout: Double? = nil, keep: Double = 86400
    ) {
        self.keep = keep
        self.queue = queue
        self.payload = payload
        self.priority = priority
        self.runAt = runAt
        self.maxAttempts = maxAttempts
        self.uniqueKey = uniqueKey
        self.timeout = timeout
    }
}

/// What a put did.
public enum PutOutcome: Sendable, Hashable {
    /// The job was added with this id.
    case added(Int64)
    /// A job with the same unique key is pending or running: nothing was added.
    case duplicate(existing: Int64)
}

/// The right to finish one claim of a job: its id and its fence, which grows at every claim. A store accepts a
/// renewal, an ack or a release only from the current fence while the lease runs, so a host whose lease ran out
/// (it stalled, or lost the store) can never finish a job that another host has claimed since.
public struct Lease: Sendable, Hashable, CustomStringConvertible {
    /// The job.
    public var id: Int64
    /// The claim: the job's fence when it was claimed.
    public var fence: Int64

    /// A lease of job `id` at `fence`.
    public init(id: Int64, fence: Int64) {
        self.id = id
        self.fence = fence
    }

    /// `job 12 (fence 3)`.
    public var description: String { "job \(self.id) (fence \(self.fence))" }
}

/// A job that a host claimed.
public struct ClaimedJob: Sendable, Hashable {
    /// The lease that finishes it.
    public var lease: Lease
    /// The queue's name.
    public var queue: String
    /// This run's attempt number (1 for the first run).
    public var attempt: Int
    /// The job's attempt limit.
    public var maxAttempts: Int
    /// The job's priority.
    public var priority: Int
    /// The job's run timeout in seconds, if it has one.
    public var timeout: Double?
    /// The job's value, in the storage format.
    public var payload: [UInt8]
    /// When the job was added (seconds since the epoch).
    public var createdAt: Double

    /// The job's id.
    public var id: Int64 { self.lease.id }
}

/// A job as the store keeps it (what `get_job` shows).
public struct JobRecord: Sendable, Hashable {
    public var id: Int64
    public var queue: String
    public var state: JobState
    public var priority: Int
    /// Claims that counted (a release at a graceful stop does not count).
    public var attempts: Int
    public var maxAttempts: Int
    /// The next (or last) start time, seconds since the epoch.
    public var runAt: Double
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var uniqueKey: String?
    public var timeout: Double?
    /// The value, in the storage format.
    public var payload: [UInt8]
    /// The result of a completed job, in the storage format.
    public var result: [UInt8]?
    /// The last error (a failed attempt, a lease that ran out), if any.
    public var error: String?
    /// The Lua traceback of the last error, when there was one.
    public var traceback: String?
}

/// What a failure did to a job.
public enum FailOutcome: Sendable, Hashable {
    /// Attempts are left: it runs again at this time.
    case retry(at: Double)
    /// It is dead (no attempt left, or a failure that a retry cannot mend).
    case dead
    /// The lease was lost (or the job cancelled): the failure is not recorded.
    case refused
}

/// The work a queue has, for a runner deciding whether to sleep or stop.
public struct QueueWork: Sendable, Hashable {
    /// Jobs pending whose run time has come.
    public var ready: Int
    /// Jobs pending later, and the earliest time one of them runs.
    public var later: Int
    public var nextRunAt: Double?
    /// Jobs running (on any host).
    public var running: Int

    /// A count of a queue's work.
    public init(ready: Int, later: Int, nextRunAt: Double?, running: Int) {
        self.ready = ready
        self.later = later
        self.nextRunAt = nextRunAt
        self.running = running
    }

    /// Whether the queue has nothing left to run now or later.
    public var isEmpty: Bool { self.ready == 0 && self.later == 0 && self.running == 0 }
}

/// A registration with ``JobStore/subscribe(queue:_:)``; cancel it to stop the calls.
public protocol JobStoreSubscription: Sendable {
    /// Stops the wake-up calls.
    func cancel()
}

/// A durable store of jobs: one protocol for every driver (``SQLiteJobStore``; ``PostgresJobStore`` with
/// `FOR UPDATE SKIP LOCKED` and LISTEN/NOTIFY, in builds with the package trait `Postgres`).
///
/// Every call is one transaction. Claims come in batches (one transaction per batch); renewals, completions and
/// releases take several leases at once. Times are seconds since the Unix epoch; a driver with a server uses the
/// server's clock for leases.
///
/// What the PostgreSQL driver does for each call, with the same schema and semantics: ``claim(queue:limit:leaseSeconds:owner:)``
/// as `UPDATE ... WHERE id IN (SELECT id ... ORDER BY priority, run_at, id LIMIT $n FOR UPDATE SKIP LOCKED)
/// RETURNING ...` after the same sweep of leases that ran out; acks, renewals and releases fenced by `fence` and
/// `lease_until >= now()` exactly as SQLite's; ``put(_:)`` and ``putPeriodic(name:period:job:)`` end with
/// `NOTIFY` on the queue's channel, which ``subscribe(queue:_:)`` LISTENs to (SQLite's hook reaches this process
/// only); the unique key is the same partial unique index; migrations are the same versioned table, applied under
/// an advisory lock.
///
/// Calls are synchronous and block their thread (a file lock, a round trip, an outage of the server): call them
/// from threads of your own or of the pool, not from Swift concurrency's cooperative threads (``PeriodicJob`` moves
/// its calls to a thread of its own).
public protocol JobStore: AnyObject, Sendable {
    /// The store's URL, as given (`sqlite:///var/lib/app/jobs.db`).
    var url: String { get }

    /// The schema version this build knows; ``migrate()`` brings the store to it.
    static var schemaVersion: Int { get }

    /// Applies the schema migrations that the store lacks, in order, each in its own transaction, and returns the
    /// version. A store written by a newer build (a higher version) is refused.
    @discardableResult
    func migrate() throws -> Int

    /// Adds jobs, all in one transaction. A job whose unique key is taken is not added (``PutOutcome/duplicate``).
    func put(_ jobs: [NewJob]) throws -> [PutOutcome]

    /// Claims up to `limit` jobs of `queue` whose time has come, most urgent first, each with a lease of
    /// `leaseSeconds`, in one transaction. Leases that ran out (a host died or stalled) are given back first: their
    /// jobs run again (the lost run counts as an attempt).
    func claim(queue: String, limit: Int, leaseSeconds: Double, owner: String) throws -> [ClaimedJob]

    /// Extends the leases that are still held by `leaseSeconds` from now; returns those that were lost.
    func renew(_ leases: [Lease], leaseSeconds: Double) throws -> [Lease]

    /// Completes a job with its result; `false` (nothing recorded) when the lease was lost.
    func complete(_ lease: Lease, result: [UInt8]) throws -> Bool

    /// Completes several jobs in one transaction (a group commit of acks); for each, whether it was accepted.
    func complete(_ items: [(lease: Lease, result: [UInt8])]) throws -> [Bool]

    /// Records a failed run: retried at `retryAt` while attempts are left, dead otherwise or when `retryAt` is
    /// `nil`.
    func fail(_ lease: Lease, error: String, traceback: String?, retryAt: Double?) throws -> FailOutcome

    /// Gives claimed jobs back at once (a graceful stop, jobs claimed but not started): they are pending again and
    /// the claim does not count as an attempt. Returns how many were still held.
    @discardableResult
    func release(_ leases: [Lease]) throws -> Int

    /// The job with this id, or `nil` (never added, or deleted after its keep time).
    func job(id: Int64) throws -> JobRecord?

    /// Cancels a pending or running job (a running one's ack is then refused); `false` when it had finished.
    func cancel(id: Int64) throws -> Bool

    /// What `queue` has left to run.
    func work(queue: String) throws -> QueueWork

    /// Adds `job` for period `period` of the periodic job `name` of `job.queue` unless a host has added it already (once per
    /// period across hosts); returns the new job's id, or `nil` when this period was taken.
    func putPeriodic(name: String, period: Int64, job: NewJob) throws -> Int64?

    /// Deletes finished jobs whose keep time has passed; returns how many.
    @discardableResult
    func prune() throws -> Int

    /// Calls `wake` when jobs may have been added to `queue` (the wake-up hook: a put in this process for SQLite,
    /// LISTEN/NOTIFY for PostgreSQL). Runners still look at the store now and then, for jobs whose time comes and
    /// for leases that run out.
    func subscribe(queue: String, _ wake: @escaping @Sendable () -> Void) -> any JobStoreSubscription
}
