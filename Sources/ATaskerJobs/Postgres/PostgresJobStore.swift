#if Postgres
    import ATasker
    public import Logging
    public import PostgresNIO
    import Synchronization

    /// The PostgreSQL driver of ``JobStore``: one database shared by every host, through postgres-nio.
    ///
    /// The same schema and semantics as ``SQLiteJobStore``, with the server's clock for every time it compares
    /// (`statement_timestamp()`): claims are `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)
    /// RETURNING ...`, so hosts claiming at once never wait for each other nor take the same job; renewals, acks and
    /// releases are fenced by the claim's `fence` and `lease_until >= now`; the unique key is a partial unique index;
    /// puts `NOTIFY` channel `atasker_jobs` with the queue's name, which ``subscribe(queue:_:)`` LISTENs to on a
    /// connection of its own that reconnects (and then wakes its subscribers, for what it missed). Migrations run
    /// under an advisory lock, so hosts that start together migrate once.
    ///
    /// Connection loss: every call waits for the server for up to the URL's `outage` seconds (30 by default),
    /// reconnecting with backoff, and then fails with an error naming the server. A call whose connection breaks
    /// before its change was committed is run again on a new connection; one that broke while its commit was on the
    /// way fails saying that the outcome is unknown (a put may then have been added: look before putting again).
    public final class PostgresJobStore: JobStore {
        public let url: String
        private let connections: PostgresConnections
        private let listener: PostgresListener
        /// When the last prune ran (the host's monotonic clock); claims prune at most every 30 s.
        private let lastPrune = Mutex<Double>(-1e9)

        /// The schema version this build knows.
        public static var schemaVersion: Int { PostgresSchema.migrations.count }

        /// Whether `url` is a PostgreSQL store URL (`postgres://` or `postgresql://`).
        public static func accepts(_ url: String) -> Bool { PostgresStoreURL.isPostgres(url) }

        /// Opens the store at `url`: `postgres://user:password@host:port/database?sslmode=disable&connections=4&outage=30`.
        /// It connects once now (waiting up to `outage` seconds for the server), and does not migrate: call
        /// ``migrate()``.
        public init(url: String, logger: Logger = Logger(label: "atasker.jobs.postgres")) throws {
            let config = try PostgresStoreURL(url)
            let shown = PostgresStoreURL.redacted(url)
            self.url = shown
            self.connections = PostgresConnections(url: shown, config: config, logger: logger)
            self.listener = PostgresListener(connections: self.connections, logger: logger)
            // Fail at the open, not at the first job, when the server cannot be reached.
            _ = try self.connections.statements("open", retry: .safe) { s throws(JobStoreError) in
                try s.execute("SELECT 1")
            }
        }

        deinit {
            self.listener.stop()
            self.connections.close()
        }

        /// Closes the store's connections (the listener's too); later calls fail.
        public func close() {
            self.listener.stop()
            self.connections.close()
        }

        /// The server's clock, in the schema's unit (seconds since the epoch).
        static let now = "extract(epoch from statement_timestamp())::float8"

        // MARK: - Schema

        @discardableResult
        public func migrate() throws -> Int {
            try self.connections.transaction("migrate") { s throws(JobStoreError) -> Int in
                // One host at a time: the others wait here, then find the schema made.
                try s.execute("SELECT pg_advisory_xact_lock(\(PostgresSchema.migrationLock))")
                try s.execute(
                    "CREATE TABLE IF NOT EXISTS atasker_schema_migrations (version bigint PRIMARY KEY, "
                        + "applied_at double precision NOT NULL)")
                let current =
                    try s.query("SELECT coalesce(max(version), 0)::int8 FROM atasker_schema_migrations")
                    .first?.column(0, Int64.self, what: "migrate") ?? 0
                let known = PostgresSchema.migrations.count
                if current > Int64(known) {
                    throw JobStoreError(
                        "the store \(self.url) has schema version \(current), newer than this build knows (\(known)): "
                            + "run a newer atasker-lua on it")
                }
                for version in Int(current)..<known {
                    for statement in PostgresSchema.migrations[version] { try s.execute(statement) }
                    var b = Binds()
                    b.add(Int64(version + 1))
                    try s.query(
                        "INSERT INTO atasker_schema_migrations (version, applied_at) VALUES ($1, \(Self.now))",
                        b.bindings)
                }
                return known
            }
        }

        // MARK: - Jobs

        private static let insert =
            "INSERT INTO atasker_jobs (queue, state, priority, run_at, max_attempts, timeout, unique_key, keep, payload, "
            + "created_at) VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7, $8, \(now)) "

        /// The parameters of ``insert`` for `job`, in its column order.
        private static func insertBinds(_ job: NewJob, uniqueKey: String?) -> Binds {
            var b = Binds()
            b.add(job.queue)
            b.add(Int64(job.priority))
            b.add(job.runAt)
            b.add(Int64(job.maxAttempts))
            b.add(job.timeout)
            b.add(uniqueKey)
            b.add(job.keep)
            b.add(bytes: job.payload)
            return b
        }

        /// One statement that puts `job`: its rows are what ``Puts/record(_:)`` reads. Without a unique key it inserts;
        /// with one it inserts unless a pending or running job of the queue holds the key (the partial unique index),
        /// and then returns that job's id instead.
        fileprivate static func putStatement(_ job: NewJob) -> PostgresQuery {
            let b = Self.insertBinds(job, uniqueKey: job.uniqueKey)
            guard job.uniqueKey != nil else {
                return PostgresQuery(unsafeSQL: Self.insert + "RETURNING id, true", binds: b.bindings)
            }
            return PostgresQuery(
                unsafeSQL: "WITH added AS (" + Self.insert + "ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT "
                    + "NULL AND state IN ('pending', 'running') DO NOTHING RETURNING id) SELECT id, true FROM added "
                    + "UNION ALL SELECT id, false FROM atasker_jobs WHERE queue = $1 AND unique_key = $6 AND state IN "
                    + "('pending', 'running') AND NOT EXISTS (SELECT 1 FROM added) LIMIT 1", binds: b.bindings)
        }

        /// The statements of a put of `jobs`, one after another, and what each did: `next` is the statement to run,
        /// `record` reads its rows. A statement that returns no row runs again: the job that held the unique key
        /// finished between the insert's look at the index and the statement's snapshot (or committed after it), so
        /// neither an insert nor a holder came back.
        private struct Puts {
            let jobs: [NewJob]
            let url: String
            private(set) var outcomes: [PutOutcome] = []
            private var tries = 0
            /// How many times a statement runs before the put gives up on a unique key that keeps changing hands.
            private static let maxTries = 5

            init(_ jobs: [NewJob], url: String) {
                self.jobs = jobs
                self.url = url
                self.outcomes.reserveCapacity(jobs.count)
            }

            var next: PostgresQuery? {
                self.outcomes.count < self.jobs.count
                    ? PostgresJobStore.putStatement(self.jobs[self.outcomes.count]) : nil
            }

            mutating func record(_ rows: [PostgresRow]) throws(JobStoreError) {
                if let row = rows.first {
                    let id = try row.column(0, Int64.self, what: "put")
                    self.outcomes.append(
                        try row.column(1, Bool.self, what: "put") ? .added(id) : .duplicate(existing: id))
                    self.tries = 0
                    return
                }
                self.tries += 1
                guard self.tries < Self.maxTries else {
                    throw JobStoreError(
                        "store \(self.url): put: unique key '\(self.jobs[self.outcomes.count].uniqueKey ?? "")' kept "
                            + "changing hands")
                }
            }
        }

        public func put(_ jobs: [NewJob]) throws -> [PutOutcome] {
            guard !jobs.isEmpty else { return [] }
            let outcomes = try self.connections.transaction("put") { s throws(JobStoreError) -> [PutOutcome] in
                var puts = Puts(jobs, url: self.url)
                while let statement = puts.next { try puts.record(s.query(statement.sql, statement.binds)) }
                for queue in Self.queuesAdded(jobs, puts.outcomes) { try Self.notify(s, queue) }
                return puts.outcomes
            }
            for queue in Self.queuesAdded(jobs, outcomes) { self.listener.wake(queue) }
            return outcomes
        }

        /// The queues that `outcomes` added jobs to, in order (so that hosts take the NOTIFY locks in one order).
        private static func queuesAdded(_ jobs: [NewJob], _ outcomes: [PutOutcome]) -> [String] {
            var added = Set<String>()
            for (job, outcome) in zip(jobs, outcomes) {
                if case .added = outcome { added.insert(job.queue) }
            }
            return added.sorted()
        }

        /// Puts `jobs` inside the transaction that the caller has open on `connection`, a connection of its own to
        /// the store's database: they are visible (and workers are woken) only when the caller commits, and gone if
        /// it rolls back. So a row of the app and the job that handles it are made together or not at all.
        ///
        /// ```swift
        /// try await client.withTransaction(logger: logger) { connection in
        ///     try await connection.query("INSERT INTO orders (id) VALUES (\(orderID))", logger: logger)
        ///     _ = try await store.put([job], on: connection, logger: logger)
        /// }
        /// ```
        ///
        /// The statements run under a savepoint: when one fails, the savepoint is rolled back and the error thrown,
        /// and the caller's transaction is as it was before the call (still usable). The schema must exist on that
        /// database (open the store on it once: ``migrate()``). Connection loss is the caller's to handle: nothing is
        /// retried here, since the transaction is the caller's.
        /// - Throws: ``JobStoreError`` when `connection` has no transaction open (`BEGIN` first), when its
        ///   transaction has already failed, or when a statement fails.
        public func put(_ jobs: [NewJob], on connection: PostgresConnection, logger: Logger) async throws
            -> [PutOutcome]
        {
            guard !jobs.isEmpty else { return [] }
            func run(_ query: PostgresQuery) async throws -> [PostgresRow] {
                try await connection.query(query, logger: logger).collect()
            }
            do {
                _ = try await run("SAVEPOINT atasker_put")
            } catch {
                throw JobStoreError(
                    "store \(self.url): put(on:): " + Self.savepointRefused(error)
                        + " (\(describe(error)))")
            }
            do {
                var puts = Puts(jobs, url: self.url)
                while let statement = puts.next { try puts.record(await run(statement)) }
                for queue in Self.queuesAdded(jobs, puts.outcomes) {
                    _ = try await run("SELECT pg_notify(\(PostgresSchema.channel), \(queue))")
                }
                _ = try await run("RELEASE SAVEPOINT atasker_put")
                return puts.outcomes
            } catch {
                // Back to where the caller's transaction was; if even that fails, the connection is gone.
                _ = try? await run("ROLLBACK TO SAVEPOINT atasker_put")
                _ = try? await run("RELEASE SAVEPOINT atasker_put")
                if let error = error as? JobStoreError { throw error }
                let message = describe(error)
                let hint =
                    message.contains("42P01")
                    ? ": the database of this connection has no atasker_jobs table; open the store on it once "
                        + "(migrate), or give a connection to the store's database"
                    : ""
                throw JobStoreError("store \(self.url): put(on:): \(message)\(hint)")
            }
        }

        /// Why `SAVEPOINT` was refused, in the words of what to do.
        private static func savepointRefused(_ error: any Error) -> String {
            switch (error as? PSQLError)?.serverInfo?[.sqlState] {
            case "25P01": return "the connection has no transaction open: BEGIN one first (or put without a connection)"
            case "25P02": return "the connection's transaction has already failed: roll it back first"
            default: return "cannot start a savepoint on the connection"
            }
        }

        /// Tells every listening host (at the commit) that `queue` has new jobs.
        private static func notify(_ s: PostgresSession, _ queue: String) throws(JobStoreError) {
            var b = Binds()
            b.add(queue)
            try s.query("SELECT pg_notify('\(PostgresSchema.channel)', $1)", b.bindings)
        }

        public func claim(queue: String, limit: Int, leaseSeconds: Double, owner: String) throws -> [ClaimedJob] {
            let prune = self.lastPrune.withLock { last -> Bool in
                let now = Monotonic.now()
                guard now - last >= 30 else { return false }
                last = now
                return true
            }
            return try self.connections.transaction("claim") { s throws(JobStoreError) -> [ClaimedJob] in
                try Self.sweep(s)
                if prune { try Self.prune(s) }
                guard limit > 0 else { return [] }
                var b = Binds()
                b.add(leaseSeconds)
                b.add(owner)
                b.add(queue)
                b.add(Int64(limit))
                let rows = try s.query(
                    "UPDATE atasker_jobs SET state = 'running', fence = fence + 1, attempts = attempts + 1, "
                        + "lease_until = \(Self.now) + $1, lease_owner = $2, started_at = \(Self.now) WHERE id IN ("
                        + "SELECT id FROM atasker_jobs WHERE queue = $3 AND state = 'pending' AND run_at <= \(Self.now) "
                        + "ORDER BY priority, run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id, fence, attempts, "
                        + "max_attempts, priority, timeout, payload, created_at, run_at", b.bindings)
                var claimed: [(ClaimedJob, Double)] = []
                claimed.reserveCapacity(rows.count)
                for row in rows {
                    let what = "claim"
                    let payload = try row.column(6, ByteBuffer.self, what: what)
                    claimed.append(
                        (
                            ClaimedJob(
                                lease: Lease(
                                    id: try row.column(0, Int64.self, what: what),
                                    fence: try row.column(1, Int64.self, what: what)), queue: queue,
                                attempt: Int(try row.column(2, Int64.self, what: what)),
                                maxAttempts: Int(try row.column(3, Int64.self, what: what)),
                                priority: Int(try row.column(4, Int64.self, what: what)),
                                timeout: try row.column(5, Double?.self, what: what),
                                payload: Array(payload.readableBytesView),
                                createdAt: try row.column(7, Double.self, what: what)),
                            try row.column(8, Double.self, what: what)
                        ))
                }
                claimed.sort { a, b in (a.0.priority, a.1, a.0.id) < (b.0.priority, b.1, b.0.id) }
                return claimed.map(\.0)
            }
        }

        /// Gives back the jobs whose lease ran out (pending again, or dead on their last attempt); rows another host is
        /// sweeping or finishing now are skipped.
        private static func sweep(_ s: PostgresSession) throws(JobStoreError) {
            try s.execute(
                "UPDATE atasker_jobs SET state = CASE WHEN attempts >= max_attempts THEN 'dead' ELSE 'pending' END, "
                    + "error = 'attempt ' || attempts || ': the lease of ' || coalesce(lease_owner, '?') || ' ran out "
                    + "(the host died, stalled or lost the store)', traceback = NULL, lease_until = NULL, "
                    + "lease_owner = NULL, run_at = \(now), finished_at = CASE WHEN attempts >= max_attempts THEN "
                    + "\(now) END, expires_at = CASE WHEN attempts >= max_attempts THEN \(now) + keep END "
                    + "WHERE id IN (SELECT id FROM atasker_jobs WHERE state = 'running' AND lease_until < \(now) "
                    + "FOR UPDATE SKIP LOCKED)")
        }

        private static func prune(_ s: PostgresSession) throws(JobStoreError) {
            try s.execute(
                "DELETE FROM atasker_jobs WHERE id IN (SELECT id FROM atasker_jobs WHERE expires_at < \(now) "
                    + "LIMIT 10000 FOR UPDATE SKIP LOCKED)")
        }

        public func renew(_ leases: [Lease], leaseSeconds: Double) throws -> [Lease] {
            guard !leases.isEmpty else { return [] }
            var b = Binds()
            b.add(leases.map(\.id))
            b.add(leases.map(\.fence))
            b.add(leaseSeconds)
            // Renewing twice does no harm: safe to run again after a broken connection.
            let kept = try self.connections.statements("renew", retry: .safe) { s throws(JobStoreError) -> Set<Lease> in
                var kept = Set<Lease>()
                for row in try s.query(
                    "UPDATE atasker_jobs j SET lease_until = \(Self.now) + $3 FROM unnest($1::int8[], $2::int8[]) "
                        + "AS l(id, fence) WHERE j.id = l.id AND j.fence = l.fence AND j.state = 'running' "
                        + "AND j.lease_until >= \(Self.now) RETURNING j.id, j.fence", b.bindings)
                {
                    kept.insert(
                        Lease(
                            id: try row.column(0, Int64.self, what: "renew"),
                            fence: try row.column(1, Int64.self, what: "renew")))
                }
                return kept
            }
            return leases.filter { !kept.contains($0) }
        }

        public func complete(_ lease: Lease, result: [UInt8]) throws -> Bool {
            try self.complete([(lease, result)])[0]
        }

        public func complete(_ items: [(lease: Lease, result: [UInt8])]) throws -> [Bool] {
            guard !items.isEmpty else { return [] }
            var b = Binds()
            b.add(items.map(\.lease.id))
            b.add(items.map(\.lease.fence))
            b.add(bytes: items.map(\.result))
            // Safe to run again after a broken connection: when run again, a job already completed at the claim's
            // fence is that claim's own earlier ack, whose answer was lost (only the holder of a fence completes
            // it), and counts as accepted. Otherwise the job would be left to its lease, and run twice.
            let again =
                " UNION ALL SELECT j.id, j.fence FROM atasker_jobs j JOIN a ON j.id = a.id AND j.fence = a.fence "
                + "WHERE j.state = 'completed'"
            let done = try self.connections.statements("complete", retry: .safe) {
                s throws(JobStoreError) -> Set<Lease> in
                var done = Set<Lease>()
                for row in try s.query(
                    "WITH a AS (SELECT * FROM unnest($1::int8[], $2::int8[], $3::bytea[]) AS a(id, fence, result)), "
                        + "u AS (UPDATE atasker_jobs j SET state = 'completed', result = a.result, lease_until = NULL, "
                        + "lease_owner = NULL, finished_at = \(Self.now), expires_at = \(Self.now) + j.keep FROM a "
                        + "WHERE j.id = a.id AND j.fence = a.fence AND j.state = 'running' "
                        + "AND j.lease_until >= \(Self.now) RETURNING j.id, j.fence) "
                        + "SELECT id, fence FROM u" + (s.isRetry ? again : ""), b.bindings)
                {
                    done.insert(
                        Lease(
                            id: try row.column(0, Int64.self, what: "complete"),
                            fence: try row.column(1, Int64.self, what: "complete")))
                }
                return done
            }
            return items.map { done.contains($0.lease) }
        }

        public func fail(_ lease: Lease, error: String, traceback: String?, retryAt: Double?) throws -> FailOutcome {
            var b = Binds()
            b.add(retryAt)
            b.add(error)
            b.add(traceback)
            b.add(lease.id)
            b.add(lease.fence)
            let retry = "$1::float8 IS NOT NULL AND attempts < max_attempts"
            return try self.connections.statements("fail", retry: .unsafe) { s throws(JobStoreError) -> FailOutcome in
                guard
                    let row = try s.query(
                        "UPDATE atasker_jobs SET state = CASE WHEN \(retry) THEN 'pending' ELSE 'dead' END, "
                            + "run_at = coalesce($1::float8, run_at), error = $2, traceback = $3, lease_until = NULL, "
                            + "lease_owner = NULL, finished_at = CASE WHEN \(retry) THEN NULL ELSE \(Self.now) END, "
                            + "expires_at = CASE WHEN \(retry) THEN NULL ELSE \(Self.now) + keep END WHERE id = $4 AND "
                            + "fence = $5 AND state = 'running' AND lease_until >= \(Self.now) RETURNING state, run_at",
                        b.bindings
                    ).first
                else { return .refused }
                let state = try row.column(0, String.self, what: "fail")
                return state == "pending" ? .retry(at: try row.column(1, Double.self, what: "fail")) : .dead
            }
        }

        @discardableResult
        public func release(_ leases: [Lease]) throws -> Int {
            guard !leases.isEmpty else { return 0 }
            var b = Binds()
            b.add(leases.map(\.id))
            b.add(leases.map(\.fence))
            // Releasing twice finds nothing the second time: safe to run again (the count may then be low).
            return try self.connections.statements("release", retry: .safe) { s throws(JobStoreError) -> Int in
                try s.count(
                    "UPDATE atasker_jobs j SET state = 'pending', attempts = greatest(j.attempts - 1, 0), "
                        + "lease_until = NULL, lease_owner = NULL FROM unnest($1::int8[], $2::int8[]) AS l(id, fence) "
                        + "WHERE j.id = l.id AND j.fence = l.fence AND j.state = 'running' RETURNING j.id", b.bindings)
            }
        }

        public func job(id: Int64) throws -> JobRecord? {
            var b = Binds()
            b.add(id)
            let what = "get job \(id)"
            return try self.connections.statements(what, retry: .safe) { s throws(JobStoreError) -> JobRecord? in
                guard
                    let row = try s.query(
                        "SELECT id, queue, state, priority, attempts, max_attempts, run_at, created_at, started_at, "
                            + "finished_at, unique_key, timeout, payload, result, error, traceback FROM atasker_jobs "
                            + "WHERE id = $1", b.bindings
                    ).first
                else { return nil }
                let state = try row.column(2, String.self, what: what)
                return JobRecord(
                    id: try row.column(0, Int64.self, what: what), queue: try row.column(1, String.self, what: what),
                    state: JobState(rawValue: state) ?? .dead, priority: Int(try row.column(3, Int64.self, what: what)),
                    attempts: Int(try row.column(4, Int64.self, what: what)),
                    maxAttempts: Int(try row.column(5, Int64.self, what: what)),
                    runAt: try row.column(6, Double.self, what: what),
                    createdAt: try row.column(7, Double.self, what: what),
                    startedAt: try row.column(8, Double?.self, what: what),
                    finishedAt: try row.column(9, Double?.self, what: what),
                    uniqueKey: try row.column(10, String?.self, what: what),
                    timeout: try row.column(11, Double?.self, what: what),
                    payload: Array(try row.column(12, ByteBuffer.self, what: what).readableBytesView),
                    result: try row.column(13, ByteBuffer?.self, what: what).map { Array($0.readableBytesView) },
                    error: try row.column(14, String?.self, what: what),
                    traceback: try row.column(15, String?.self, what: what))
            }
        }

        public func cancel(id: Int64) throws -> Bool {
            var b = Binds()
            b.add(id)
            return try self.connections.statements("cancel job \(id)", retry: .unsafe) {
                s throws(JobStoreError) -> Bool in
                try s.count(
                    "UPDATE atasker_jobs SET state = 'canceled', lease_until = NULL, lease_owner = NULL, "
                        + "finished_at = \(Self.now), expires_at = \(Self.now) + keep WHERE id = $1 AND state IN "
                        + "('pending', 'running') RETURNING id", b.bindings) == 1
            }
        }

        public func work(queue: String) throws -> QueueWork {
            var b = Binds()
            b.add(queue)
            return try self.connections.statements("work", retry: .safe) { s throws(JobStoreError) -> QueueWork in
                guard
                    let row = try s.query(
                        "SELECT count(*) FILTER (WHERE run_at <= \(Self.now)), count(*) FILTER (WHERE run_at > "
                            + "\(Self.now)), min(run_at) FILTER (WHERE run_at > \(Self.now)), (SELECT count(*) FROM "
                            + "atasker_jobs WHERE queue = $1 AND state = 'running') FROM atasker_jobs WHERE queue = $1 "
                            + "AND state = 'pending'", b.bindings
                    ).first
                else { return QueueWork(ready: 0, later: 0, nextRunAt: nil, running: 0) }
                return QueueWork(
                    ready: Int(try row.column(0, Int64.self, what: "work")),
                    later: Int(try row.column(1, Int64.self, what: "work")),
                    nextRunAt: try row.column(2, Double?.self, what: "work"),
                    running: Int(try row.column(3, Int64.self, what: "work")))
            }
        }

        public func putPeriodic(name: String, period: Int64, job: NewJob) throws -> Int64? {
            let id = try self.connections.transaction("periodic job '\(name)'") { s throws(JobStoreError) -> Int64? in
                var p = Binds()
                p.add(job.queue)
                p.add(name)
                p.add(period)
                // The row's lock orders hosts that reach one period at once: the first takes it, the others find it taken.
                let taken = try s.count(
                    "INSERT INTO atasker_periodic (queue, name, period) VALUES ($1, $2, $3) ON CONFLICT (queue, name) "
                        + "DO UPDATE SET period = excluded.period WHERE excluded.period > atasker_periodic.period "
                        + "RETURNING period", p.bindings)
                guard taken == 1 else { return nil }
                let b = Self.insertBinds(job, uniqueKey: nil)
                let id = try s.query(Self.insert + "RETURNING id", b.bindings).first?.column(0, Int64.self, what: "put")
                try Self.notify(s, job.queue)
                return id
            }
            if id != nil { self.listener.wake(job.queue) }
            return id
        }

        @discardableResult
        public func prune() throws -> Int {
            try self.connections.statements("prune", retry: .safe) { s throws(JobStoreError) -> Int in
                try s.count(
                    "DELETE FROM atasker_jobs WHERE id IN (SELECT id FROM atasker_jobs WHERE expires_at < \(Self.now) "
                        + "LIMIT 10000 FOR UPDATE SKIP LOCKED) RETURNING id", Binds().bindings)
            }
        }

        // MARK: - Wake-ups

        public func subscribe(queue: String, _ wake: @escaping @Sendable () -> Void) -> any JobStoreSubscription {
            self.listener.subscribe(queue: queue, wake)
        }
    }

    /// The schema, as migrations: item `i` (its statements, in one transaction) takes version `i` to `i + 1`. Append
    /// only; never edit a released one. The same tables and indexes as SQLite's, times in seconds since the epoch.
    enum PostgresSchema {
        /// The channel of wake-ups; the payload is the queue's name.
        static let channel = "atasker_jobs"
        /// The advisory lock key that migrations hold (any fixed number unlikely to be another app's).
        static let migrationLock: Int64 = 0x6174_6173_6b65_72

        static let migrations: [[String]] = [
            [
                """
                CREATE TABLE atasker_jobs (
                    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
                    queue text NOT NULL,
                    state text NOT NULL CHECK (state IN ('pending', 'running', 'completed', 'dead', 'canceled')),
                    priority bigint NOT NULL,
                    run_at double precision NOT NULL,
                    attempts bigint NOT NULL DEFAULT 0,
                    max_attempts bigint NOT NULL,
                    fence bigint NOT NULL DEFAULT 0,
                    lease_until double precision,
                    lease_owner text,
                    timeout double precision,
                    unique_key text,
                    keep double precision NOT NULL,
                    payload bytea NOT NULL,
                    result bytea,
                    error text,
                    traceback text,
                    created_at double precision NOT NULL,
                    started_at double precision,
                    finished_at double precision,
                    expires_at double precision
                )
                """,
                "CREATE INDEX atasker_jobs_ready ON atasker_jobs (queue, priority, run_at, id) WHERE state = 'pending'",
                "CREATE INDEX atasker_jobs_leases ON atasker_jobs (lease_until) WHERE state = 'running'",
                "CREATE INDEX atasker_jobs_expiry ON atasker_jobs (expires_at) WHERE expires_at IS NOT NULL",
                "CREATE UNIQUE INDEX atasker_jobs_unique ON atasker_jobs (queue, unique_key) "
                    + "WHERE unique_key IS NOT NULL AND state IN ('pending', 'running')",
                """
                CREATE TABLE atasker_periodic (
                    queue text NOT NULL,
                    name text NOT NULL,
                    period bigint NOT NULL,
                    PRIMARY KEY (queue, name)
                )
                """,
            ]
        ]
    }
#endif
