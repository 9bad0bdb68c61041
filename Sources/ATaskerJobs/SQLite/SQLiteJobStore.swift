import Glibc
import Synchronization

/// The SQLite driver of ``JobStore``: one file, in WAL mode with a busy timeout, that several processes of one host
/// may share. Each process holds one connection per file, used by one thread at a time; every call is one
/// `BEGIN IMMEDIATE` transaction, so writers of several processes queue on SQLite's lock instead of failing.
public final class SQLiteJobStore: JobStore {
    public let url: String
    /// The file's path.
    public let path: String
    private let connection: Mutex<SQLiteConnection>
    private let subscribers = Mutex<[String: [UInt64: @Sendable () -> Void]]>([:])
    private let nextSubscriber = Atomic<UInt64>(1)
    /// Queues whose last claim here took as many jobs as it asked for.
    private let backlogs = Mutex<Set<String>>([])
    /// Started with the first subscription: wakes the subscribers when another process commits.
    private let watcher = Mutex<SQLiteWalWatcher?>(nil)
    /// When the last prune ran (the wall clock); claims prune at most every ``pruneInterval``.
    private let lastPrune = Mutex<Double>(0)
    static let pruneInterval = 30.0

    public static var schemaVersion: Int { SQLiteSchema.migrations.count }

    /// Opens the store at `url` (`sqlite:///absolute/path.db`, `sqlite://relative/path.db` or `sqlite:path.db`),
    /// creating the file if needed. It does not migrate: call ``migrate()``.
    public convenience init(url: String, busyTimeout: Double = 10) throws {
        guard let path = Self.path(of: url) else {
            throw JobStoreError(
                "'\(url)' is not an SQLite store URL: write sqlite:///absolute/path.db or sqlite:relative/path.db")
        }
        try self.init(path: path, url: url, busyTimeout: busyTimeout)
    }

    /// Opens (creating) the SQLite file at `path`.
    public init(path: String, url: String? = nil, busyTimeout: Double = 10) throws {
        self.path = path
        self.url = url ?? "sqlite://\(path)"
        let ms = Int32(clamping: Int((max(0, min(busyTimeout, 86400)) * 1000).rounded()))
        self.connection = Mutex(try SQLiteConnection(path: path, busyTimeoutMs: ms))
    }

    /// The file path of an SQLite URL, or `nil` when `url` is not one.
    public static func path(of url: String) -> String? {
        for prefix in ["sqlite://", "sqlite:"] where url.hasPrefix(prefix) {
            let path = String(url.dropFirst(prefix.count))
            return path.isEmpty ? nil : path
        }
        return nil
    }

    private func withConnection<R: Sendable>(_ body: (SQLiteConnection) throws(JobStoreError) -> R)
        throws(JobStoreError) -> R
    {
        try self.connection.withLock { (connection: inout SQLiteConnection) throws(JobStoreError) -> R in
            try body(connection)
        }
    }

    private func transaction<R: Sendable>(_ body: (SQLiteConnection) throws(JobStoreError) -> R)
        throws(JobStoreError) -> R
    {
        try self.withConnection { (c: SQLiteConnection) throws(JobStoreError) -> R in try c.transaction(body) }
    }

    // MARK: - Schema

    @discardableResult
    public func migrate() throws -> Int {
        try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> Int in
            try c.execute(
                "CREATE TABLE IF NOT EXISTS atasker_schema_migrations "
                    + "(version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            let current =
                try c.query("SELECT coalesce(max(version), 0) FROM atasker_schema_migrations")
                .first?.first?.int ?? 0
            let known = SQLiteSchema.migrations.count
            if current > Int64(known) {
                throw JobStoreError(
                    "the store \(self.url) has schema version \(current), newer than this build knows (\(known)): "
                        + "run a newer atasker-lua on it")
            }
            for version in Int(current)..<known {
                try c.execute(SQLiteSchema.migrations[version])
                try c.query(
                    "INSERT INTO atasker_schema_migrations (version, applied_at) VALUES (?, ?)",
                    [.integer(Int64(version + 1)), .real(wallClock())])
            }
            return known
        }
    }

    // MARK: - Jobs

    public func put(_ jobs: [NewJob]) throws -> [PutOutcome] {
        let now = wallClock()
        let outcomes = try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> [PutOutcome] in
            var outcomes: [PutOutcome] = []
            outcomes.reserveCapacity(jobs.count)
            for job in jobs {
                if let key = job.uniqueKey,
                    let existing = try c.query(
                        "SELECT id FROM atasker_jobs WHERE queue = ? AND unique_key = ? "
                            + "AND state IN ('pending', 'running') LIMIT 1",
                        [.text(job.queue), .text(key)]
                    ).first?.first?.int
                {
                    outcomes.append(.duplicate(existing: existing))
                    continue
                }
                let rows = try c.query(
                    "INSERT INTO atasker_jobs (queue, state, priority, run_at, max_attempts, timeout, unique_key, "
                        + "keep, payload, created_at) VALUES (?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                    [
                        .text(job.queue), .integer(Int64(job.priority)), .real(job.runAt),
                        .integer(Int64(job.maxAttempts)), job.timeout.map { .real($0) } ?? .null,
                        job.uniqueKey.map { .text($0) } ?? .null, .real(job.keep), .blob(job.payload), .real(now),
                    ])
                guard let id = rows.first?.first?.int else { throw JobStoreError("insert returned no id") }
                outcomes.append(.added(id))
            }
            return outcomes
        }
        var queues = Set<String>()
        for (job, outcome) in zip(jobs, outcomes) {
            if case .added = outcome { queues.insert(job.queue) }
        }
        for queue in queues { self.wake(queue) }
        return outcomes
    }

    public func claim(queue: String, limit: Int, leaseSeconds: Double, owner: String) throws -> [ClaimedJob] {
        let now = wallClock()
        let prune = self.lastPrune.withLock { last -> Bool in
            guard now - last >= Self.pruneInterval || now < last else { return false }
            last = now
            return true
        }
        // A look without the write lock first (WAL readers never wait): an idle worker's poll costs no write
        // transaction when nothing is ready and no lease has run out. After a full claim (a backlog) it would only
        // cost a read.
        let backlog = self.backlogs.withLock { $0.contains(queue) }
        if !prune && !backlog {
            let due = try self.withConnection { (c: SQLiteConnection) throws(JobStoreError) -> Bool in
                let rows = try c.query(
                    "SELECT EXISTS (SELECT 1 FROM atasker_jobs WHERE queue = ?1 AND state = 'pending' AND "
                        + "run_at <= ?2) OR EXISTS (SELECT 1 FROM atasker_jobs WHERE state = 'running' AND "
                        + "lease_until < ?2)",
                    [.text(queue), .real(now)])
                return rows.first?.first?.int == 1
            }
            if !due { return [] }
        }
        let jobs = try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> [ClaimedJob] in
            try Self.sweep(c, now: now)
            if prune { try Self.prune(c, now: now) }
            guard limit > 0 else { return [] }
            let rows = try c.query(
                "UPDATE atasker_jobs SET state = 'running', fence = fence + 1, attempts = attempts + 1, "
                    + "lease_until = ?1, lease_owner = ?2, started_at = ?3 WHERE id IN (SELECT id FROM atasker_jobs "
                    + "WHERE queue = ?4 AND state = 'pending' AND run_at <= ?3 ORDER BY priority, run_at, id "
                    + "LIMIT ?5) RETURNING id, fence, attempts, max_attempts, priority, timeout, payload, created_at, "
                    + "run_at",
                [.real(now + leaseSeconds), .text(owner), .real(now), .text(queue), .integer(Int64(limit))])
            var claimed: [(ClaimedJob, Double)] = rows.map { row in
                (
                    ClaimedJob(
                        lease: Lease(id: row[0].int ?? 0, fence: row[1].int ?? 0), queue: queue,
                        attempt: Int(row[2].int ?? 0), maxAttempts: Int(row[3].int ?? 0),
                        priority: Int(row[4].int ?? 0), timeout: row[5].double, payload: row[6].bytes ?? [],
                        createdAt: row[7].double ?? 0), row[8].double ?? 0
                )
            }
            claimed.sort { a, b in
                (a.0.priority, a.1, a.0.id) < (b.0.priority, b.1, b.0.id)
            }
            return claimed.map(\.0)
        }
        self.backlogs.withLock { queues in
            if jobs.count == limit { queues.insert(queue) } else { queues.remove(queue) }
        }
        return jobs
    }

    /// Gives back the jobs whose lease ran out: pending again, or dead when that was their last attempt.
    private static func sweep(_ c: SQLiteConnection, now: Double) throws(JobStoreError) {
        try c.query(
            "UPDATE atasker_jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END, "
                + "error = 'attempt ' || attempts || ': the lease of ' || coalesce(lease_owner, '?') || ' ran out "
                + "(the host died, stalled or lost the store)', traceback = NULL, lease_until = NULL, "
                + "lease_owner = NULL, run_at = ?1, finished_at = CASE WHEN attempts >= max_attempts THEN ?1 END, "
                + "expires_at = CASE WHEN attempts >= max_attempts THEN ?1 + keep END "
                + "WHERE state = 'running' AND lease_until < ?1",
            [.real(now)])
    }

    private static func prune(_ c: SQLiteConnection, now: Double) throws(JobStoreError) {
        try c.query(
            "DELETE FROM atasker_jobs WHERE id IN (SELECT id FROM atasker_jobs WHERE expires_at < ? LIMIT 10000)",
            [.real(now)])
    }

    public func renew(_ leases: [Lease], leaseSeconds: Double) throws -> [Lease] {
        guard !leases.isEmpty else { return [] }
        let now = wallClock()
        return try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> [Lease] in
            var lost: [Lease] = []
            for lease in leases {
                try c.query(
                    "UPDATE atasker_jobs SET lease_until = ? WHERE id = ? AND fence = ? AND state = 'running' "
                        + "AND lease_until >= ?",
                    [.real(now + leaseSeconds), .integer(lease.id), .integer(lease.fence), .real(now)])
                if c.changes == 0 { lost.append(lease) }
            }
            return lost
        }
    }

    public func complete(_ lease: Lease, result: [UInt8]) throws -> Bool {
        try self.complete([(lease, result)])[0]
    }

    public func complete(_ items: [(lease: Lease, result: [UInt8])]) throws -> [Bool] {
        guard !items.isEmpty else { return [] }
        let now = wallClock()
        return try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> [Bool] in
            var accepted: [Bool] = []
            accepted.reserveCapacity(items.count)
            for (lease, result) in items {
                try c.query(
                    "UPDATE atasker_jobs SET state = 'completed', result = ?1, lease_until = NULL, "
                        + "lease_owner = NULL, finished_at = ?2, expires_at = ?2 + keep WHERE id = ?3 AND fence = ?4 "
                        + "AND state = 'running' AND lease_until >= ?2",
                    [.blob(result), .real(now), .integer(lease.id), .integer(lease.fence)])
                accepted.append(c.changes == 1)
            }
            return accepted
        }
    }

    public func fail(_ lease: Lease, error: String, traceback: String?, retryAt: Double?) throws -> FailOutcome {
        let now = wallClock()
        return try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> FailOutcome in
            let rows = try c.query(
                "UPDATE atasker_jobs SET state = CASE WHEN ?1 IS NOT NULL AND attempts < max_attempts THEN "
                    + "'pending' ELSE 'dead' END, run_at = coalesce(?1, run_at), error = ?2, traceback = ?3, "
                    + "lease_until = NULL, lease_owner = NULL, finished_at = CASE WHEN ?1 IS NOT NULL AND attempts "
                    + "< max_attempts THEN NULL ELSE ?4 END, expires_at = CASE WHEN ?1 IS NOT NULL AND attempts < "
                    + "max_attempts THEN NULL ELSE ?4 + keep END WHERE id = ?5 AND fence = ?6 AND state = 'running' "
                    + "AND lease_until >= ?4 RETURNING state, run_at",
                [
                    retryAt.map { .real($0) } ?? .null, .text(error), traceback.map { .text($0) } ?? .null,
                    .real(now), .integer(lease.id), .integer(lease.fence),
                ])
            guard let row = rows.first else { return .refused }
            return row[0].string == "pending" ? .retry(at: row[1].double ?? now) : .dead
        }
    }

    @discardableResult
    public func release(_ leases: [Lease]) throws -> Int {
        guard !leases.isEmpty else { return 0 }
        let released = try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> Int in
            var n = 0
            for lease in leases {
                try c.query(
                    "UPDATE atasker_jobs SET state = 'pending', attempts = max(attempts - 1, 0), lease_until = NULL, "
                        + "lease_owner = NULL WHERE id = ? AND fence = ? AND state = 'running'",
                    [.integer(lease.id), .integer(lease.fence)])
                n += c.changes
            }
            return n
        }
        return released
    }

    public func job(id: Int64) throws -> JobRecord? {
        let rows = try self.withConnection { (c: SQLiteConnection) throws(JobStoreError) in
            try c.query(
                "SELECT id, queue, state, priority, attempts, max_attempts, run_at, created_at, started_at, "
                    + "finished_at, unique_key, timeout, payload, result, error, traceback FROM atasker_jobs "
                    + "WHERE id = ?",
                [.integer(id)])
        }
        guard let row = rows.first else { return nil }
        return JobRecord(
            id: row[0].int ?? id, queue: row[1].string ?? "", state: JobState(rawValue: row[2].string ?? "") ?? .dead,
            priority: Int(row[3].int ?? 0), attempts: Int(row[4].int ?? 0), maxAttempts: Int(row[5].int ?? 0),
            runAt: row[6].double ?? 0, createdAt: row[7].double ?? 0, startedAt: row[8].double,
            finishedAt: row[9].double, uniqueKey: row[10].string, timeout: row[11].double,
            payload: row[12].bytes ?? [], result: row[13].bytes, error: row[14].string, traceback: row[15].string)
    }

    public func cancel(id: Int64) throws -> Bool {
        let now = wallClock()
        return try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> Bool in
            try c.query(
                "UPDATE atasker_jobs SET state = 'canceled', lease_until = NULL, lease_owner = NULL, "
                    + "finished_at = ?1, expires_at = ?1 + keep WHERE id = ?2 AND state IN ('pending', 'running')",
                [.real(now), .integer(id)])
            return c.changes == 1
        }
    }

    public func work(queue: String) throws -> QueueWork {
        let now = wallClock()
        let rows = try self.withConnection { (c: SQLiteConnection) throws(JobStoreError) in
            try c.query(
                "SELECT coalesce(sum(run_at <= ?1), 0), coalesce(sum(run_at > ?1), 0), "
                    + "min(CASE WHEN run_at > ?1 THEN run_at END), "
                    + "(SELECT count(*) FROM atasker_jobs WHERE queue = ?2 AND state = 'running') "
                    + "FROM atasker_jobs WHERE queue = ?2 AND state = 'pending'",
                [.real(now), .text(queue)])
        }
        let row = rows.first ?? [.integer(0), .integer(0), .null, .integer(0)]
        return QueueWork(
            ready: Int(row[0].int ?? 0), later: Int(row[1].int ?? 0), nextRunAt: row[2].double,
            running: Int(row[3].int ?? 0))
    }

    public func putPeriodic(name: String, period: Int64, job: NewJob) throws -> Int64? {
        let id = try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> Int64? in
            try c.query(
                "INSERT INTO atasker_periodic (queue, name, period) VALUES (?1, ?2, ?3) ON CONFLICT (queue, name) "
                    + "DO UPDATE SET period = excluded.period WHERE excluded.period > atasker_periodic.period",
                [.text(job.queue), .text(name), .integer(period)])
            guard c.changes == 1 else { return nil }
            let rows = try c.query(
                "INSERT INTO atasker_jobs (queue, state, priority, run_at, max_attempts, timeout, unique_key, keep, "
                    + "payload, created_at) VALUES (?, 'pending', ?, ?, ?, ?, NULL, ?, ?, ?) RETURNING id",
                [
                    .text(job.queue), .integer(Int64(job.priority)), .real(job.runAt),
                    .integer(Int64(job.maxAttempts)), job.timeout.map { .real($0) } ?? .null, .real(job.keep),
                    .blob(job.payload), .real(wallClock()),
                ])
            return rows.first?.first?.int
        }
        if id != nil { self.wake(job.queue) }
        return id
    }

    @discardableResult
    public func prune() throws -> Int {
        let now = wallClock()
        return try self.transaction { (c: SQLiteConnection) throws(JobStoreError) -> Int in
            try Self.prune(c, now: now)
            return c.changes
        }
    }

    // MARK: - Wake-ups

    public func subscribe(queue: String, _ wake: @escaping @Sendable () -> Void) -> any JobStoreSubscription {
        let id = self.nextSubscriber.wrappingAdd(1, ordering: .relaxed).oldValue
        self.subscribers.withLock { $0[queue, default: [:]][id] = wake }
        self.watcher.withLock { watcher in
            guard watcher == nil else { return }
            watcher = SQLiteWalWatcher(databasePath: self.path) { [weak self] in self?.wakeAll() }
        }
        return SQLiteSubscription(store: self, queue: queue, id: id)
    }

    fileprivate func unsubscribe(queue: String, id: UInt64) {
        self.subscribers.withLock { $0[queue]?[id] = nil }
    }

    private func wakeAll() {
        let calls = self.subscribers.withLock { $0.values.flatMap(\.values) }
        for call in calls { call() }
    }

    private func wake(_ queue: String) {
        let calls = self.subscribers.withLock { $0[queue].map { Array($0.values) } ?? [] }
        for call in calls { call() }
    }
}

private struct SQLiteSubscription: JobStoreSubscription {
    let store: SQLiteJobStore
    let queue: String
    let id: UInt64

    func cancel() { self.store.unsubscribe(queue: self.queue, id: self.id) }
}

/// The schema, as migrations: item `i` takes version `i` to `i + 1`. Append only; never edit a released one.
enum SQLiteSchema {
    static let migrations: [String] = [
        """
        CREATE TABLE atasker_jobs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            queue TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'dead', 'canceled')),
            priority INTEGER NOT NULL,
            run_at REAL NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            max_attempts INTEGER NOT NULL,
            fence INTEGER NOT NULL DEFAULT 0,
            lease_until REAL,
            lease_owner TEXT,
            timeout REAL,
            unique_key TEXT,
            keep REAL NOT NULL,
            payload BLOB NOT NULL,
            result BLOB,
            error TEXT,
            traceback TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL,
            expires_at REAL
        );
        CREATE INDEX atasker_jobs_ready ON atasker_jobs (queue, priority, run_at, id) WHERE state = 'pending';
        CREATE INDEX atasker_jobs_leases ON atasker_jobs (lease_until) WHERE state = 'running';
        CREATE INDEX atasker_jobs_expiry ON atasker_jobs (expires_at) WHERE expires_at IS NOT NULL;
        CREATE UNIQUE INDEX atasker_jobs_unique ON atasker_jobs (queue, unique_key)
            WHERE unique_key IS NOT NULL AND state IN ('pending', 'running');
        CREATE TABLE atasker_periodic (
            queue TEXT NOT NULL,
            name TEXT NOT NULL,
            period INTEGER NOT NULL,
            PRIMARY KEY (queue, name)
        );
        """
    ]
}

/// The wall clock in seconds since the Unix epoch: the clock that jobs' times and leases use, shared by hosts.
func wallClock() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
